"""Data manifolds as objects (DESIGN principle 2b).

:mod:`.protocol` says what a manifold is to the rest of the library (its fields, context, attack
space, random baseline and distance) and holds the one rule that refuses a method or attack a
dataset's manifolds cannot serve; :mod:`.objects` has the three: FONTS' true manifold
(:mod:`.fonts` renders it), the class-specific learned manifold and the class-agnostic one
(:mod:`.vaegan`, trained by :mod:`.vaegan_train`).  :mod:`.measure` measures claim 1 on any of
them with their projection (:mod:`.projection`); :mod:`.knn` is the k-NN local subspace
distance, which needs no decoder.
"""
