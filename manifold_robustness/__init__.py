"""manifold-robustness: on- and off-manifold adversarial robustness vs. generalization in JAX.

Subpackages: ``data`` (datasets as arrays), ``transforms`` (the differentiable affine
transformer), ``manifolds`` (true and learned data manifolds), ``report`` (figures), ``cli``.
"""

__version__ = "0.1.0"
