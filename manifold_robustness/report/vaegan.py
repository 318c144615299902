"""How good is a learned manifold?  Reconstruction errors per class and PNG grids to look at.

>>> errors = reconstruction_errors(vae, variables, data.load("fonts", "test"), reference=train)
>>> write_quality_report(vae, variables, test, "results/vaegan_fonts", reference=train)

Errors are on the test split (images the VAE-GANs never saw), reconstructing each image with its
class model through the encoder mean (eval mode, no sampling): ``l1`` is the mean absolute pixel
error ‖x − x̂‖₁ / #pixels, ``l2`` the mean Euclidean distance ‖x − x̂‖₂ per image (the unit of the
L2 attacks' ε).  With ``reference`` (the training split), the same errors of each class's *mean
training image* are given as a baseline a useful manifold must beat clearly.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness.manifolds import vaegan


def _float(images) -> np.ndarray:
    images = np.asarray(images)
    return images.astype(np.float32) / np.float32(255.0) if images.dtype == np.uint8 else images.astype(np.float32)


def _served(vae: vaegan.VAEGAN, labels: np.ndarray) -> np.ndarray:
    return np.ones(labels.shape, bool) if vae.class_agnostic else np.isin(labels, vae.classes)


_reconstruct = jax.jit(vaegan.reconstruct, static_argnums=0)
_decode = jax.jit(vaegan.decode, static_argnums=0)


def reconstructions(vae: vaegan.VAEGAN, variables: Any, images, labels, batch_size: int = 500) -> np.ndarray:
    """float32[N, H, W, C] reconstructions, computed in fixed-size batches (one compiled shape)."""
    images, labels = _float(images), np.asarray(labels, np.int32)
    fn = functools.partial(_reconstruct, vae)
    out = []
    for a in range(0, len(labels), batch_size):
        x, y = images[a : a + batch_size], labels[a : a + batch_size]
        pad = batch_size - len(y)
        if pad:  # pad the last batch with its own first row, drop it afterwards
            x, y = np.concatenate([x, np.repeat(x[:1], pad, 0)]), np.concatenate([y, np.repeat(y[:1], pad)])
        out.append(np.asarray(fn(variables, jnp.asarray(x), jnp.asarray(y)))[: batch_size - pad])
    return np.concatenate(out) if out else np.zeros((0, *vae.input_shape), np.float32)


def _errors(x: np.ndarray, xhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = (x - xhat).reshape(len(x), -1)
    return np.abs(diff).mean(axis=1), np.sqrt((diff**2).sum(axis=1))


def reconstruction_errors(vae: vaegan.VAEGAN, variables: Any, dataset, *, reference=None, batch_size: int = 500) -> dict:
    """Per class served by ``vae``: {"n", "l1", "l2"} of the reconstructions of ``dataset``'s
    images, and with ``reference`` also {"mean_image_l1", "mean_image_l2"}; plus an "all" entry
    (means over every image)."""
    labels = np.asarray(dataset.labels)
    keep = _served(vae, labels)
    images, labels = _float(dataset.images)[keep], labels[keep]
    l1, l2 = _errors(images, reconstructions(vae, variables, images, labels, batch_size))
    result: dict[str, dict] = {}
    if reference is not None:
        ref_images, ref_labels = _float(reference.images), np.asarray(reference.labels)
        base1, base2 = np.zeros_like(l1), np.zeros_like(l2)
    for c in np.unique(labels):
        m = labels == c
        entry = {"n": int(m.sum()), "l1": float(l1[m].mean()), "l2": float(l2[m].mean())}
        if reference is not None:
            mean_image = ref_images[ref_labels == c].mean(axis=0, keepdims=True)
            base1[m], base2[m] = _errors(images[m], np.broadcast_to(mean_image, images[m].shape))
            entry.update(mean_image_l1=float(base1[m].mean()), mean_image_l2=float(base2[m].mean()))
        result[str(int(c))] = entry
    result["all"] = {"n": int(len(labels)), "l1": float(l1.mean()), "l2": float(l2.mean())}
    if reference is not None:
        result["all"].update(mean_image_l1=float(base1.mean()), mean_image_l2=float(base2.mean()))
    return result


def _class_labels(vae: vaegan.VAEGAN, dataset) -> list[int]:
    return sorted(set(np.asarray(dataset.labels).tolist())) if vae.class_agnostic else list(vae.classes)


def write_quality_report(
    vae: vaegan.VAEGAN, variables: Any, dataset, out_dir: str | Path, *, reference=None, key: jax.Array | None = None, per_class: int = 10
) -> dict[str, Path]:
    """Write ``reconstruction_errors.json``, ``samples.png`` (one row per class: decodings of
    z ~ N(0, I) truncated to [−2, 2]^d) and ``reconstructions.png`` (per class a row of test images
    and a row of their reconstructions) into ``out_dir``; returns the paths."""
    from manifold_robustness.report.grids import save_image_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(0) if key is None else key
    classes = _class_labels(vae, dataset)

    errors = reconstruction_errors(vae, variables, dataset, reference=reference)
    errors_path = out / "reconstruction_errors.json"
    errors_path.write_text(json.dumps(errors, indent=1))

    z = vaegan.sample_latents(key, len(classes) * per_class, vae.latent_dim)
    labels = np.repeat(np.asarray(classes, np.int32), per_class)
    samples = np.asarray(_decode(vae, variables, z, jnp.asarray(labels)))
    what = "class-agnostic model" if vae.class_agnostic else "one row per class"
    samples_path = save_image_grid(samples, out / "samples.png", ncols=per_class, title=f"samples, z ~ N(0, I) in [-2, 2]^{vae.latent_dim} ({what})")

    all_labels = np.asarray(dataset.labels)
    rows = [np.flatnonzero(all_labels == c)[:per_class] for c in classes]
    chosen = np.concatenate(rows)
    x = _float(np.asarray(dataset.images)[chosen])
    xh = reconstructions(vae, variables, x, all_labels[chosen], batch_size=max(len(chosen), 1))
    grid, at = [], 0
    for r in rows:  # per class: a row of originals, a row of reconstructions (blank-filled)
        fill = np.zeros((per_class - len(r), *vae.input_shape), np.float32)
        grid += [x[at : at + len(r)], fill, xh[at : at + len(r)], fill]
        at += len(r)
    grid = np.concatenate(grid)
    err = errors["all"]
    recon_path = save_image_grid(
        grid, out / "reconstructions.png", ncols=per_class,
        title=f"test images and their reconstructions, a pair of rows per class; L1 {err['l1']:.3f}, L2 {err['l2']:.2f}",
    )
    return {"errors": errors_path, "samples": samples_path, "reconstructions": recon_path}
