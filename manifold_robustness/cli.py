"""Command line: ``python -m manifold_robustness <command> …`` (``--help`` on every level).

Exit codes: 0 success, 2 bad arguments or input (a message says what to change), 1 other failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _fonts_config(args):
    from manifold_robustness.data import FontsConfig

    return FontsConfig(
        num_fonts=None if args.num_fonts == 0 else args.num_fonts,
        repetitions=args.repetitions,
        test_repetitions=args.test_repetitions,
        split=args.split,
        difficulty=args.difficulty,
        seed=args.seed,
        font_dirs=tuple(args.font_dir) if args.font_dir else None,
    )


def _add_fonts_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("FONTS build (defaults: the paper's)")
    g.add_argument("--num-fonts", type=int, default=1000, help="fonts to use; 0 = every usable face (default 1000)")
    g.add_argument("--repetitions", type=int, default=112, help="random transforms per (font, letter) (default 112)")
    g.add_argument("--test-repetitions", type=int, default=16, help="of those, how many form the test split (default 16)")
    g.add_argument("--split", choices=("repetition", "font"), default="repetition", help="hold out transforms or fonts")
    g.add_argument("--difficulty", choices=("easy", "moderate", "hard"), default="hard", help="θ ranges (default hard)")
    g.add_argument("--seed", type=int, default=0, help="font permutation and θ seed")
    g.add_argument("--font-dir", action="append", default=None, help="use only the fonts in this folder (repeatable; default: the system's)")
    p.add_argument("--data-dir", default=None, help="data directory (default $MANIFOLD_ROBUSTNESS_DATA or ~/.cache/manifold_robustness)")


def cmd_data_build(args) -> int:
    from manifold_robustness.data import fonts

    built = fonts.build(_fonts_config(args), data_dir=args.data_dir, progress=args.progress)
    disc = built.meta["discovery"]
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(disc["dropped"].items())) or "none"
    print(f"FONTS: {built.num_fonts} fonts, {built.images.shape[0]} images of {built.images.shape[1]}x{built.images.shape[2]}")
    print(f"  faces found {disc['found']}, usable {disc['kept']}; dropped: {dropped}")
    print(f"  train {built.split_rows('train').size}, test {built.split_rows('test').size} ({built.config.split} split)")
    print(f"  stored in {built.path}")
    return 0


def cmd_data_info(args) -> int:
    import json

    from manifold_robustness.data import cache, fonts

    path, _ = fonts.entry_path(_fonts_config(args), args.data_dir)
    if not (path / "meta.json").exists():
        print(f"FONTS with this config is not built yet (it would be stored in {path}); run `data build`.")
        return 0
    meta = json.loads((path / "meta.json").read_text())
    print(json.dumps({k: v for k, v in meta.items() if k != "arrays"}, indent=1))
    print(f"data directory: {cache.data_dir(args.data_dir)}")
    return 0


def cmd_data_samples(args) -> int:
    import numpy as np

    from manifold_robustness import data
    from manifold_robustness.data.fontfaces import LETTERS
    from manifold_robustness.report.grids import save_image_grid

    ds = data.load("fonts", args.which, limit=10 * args.rows, config=_fonts_config(args), data_dir=args.data_dir)
    out = save_image_grid(ds.images, args.out, ncols=10, col_titles=list(LETTERS), title=f"FONTS {args.which}: first {len(ds)}")
    print(f"sample grid written to {Path(out).resolve()}")
    del np
    return 0


def _parse_classes(text: str):
    if text == "all":
        return "all"
    if text == "agnostic":
        return None
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise ValueError(f"--classes must be 'all', 'agnostic' or labels like 0,1,2; got {text!r}") from None


def cmd_vaegan_train(args) -> int:
    import dataclasses

    import numpy as np

    from manifold_robustness import data
    from manifold_robustness.manifolds import vaegan, vaegan_train
    from manifold_robustness.report.vaegan import write_quality_report

    name, classes = args.dataset, _parse_classes(args.classes)
    kwargs = {"config": _fonts_config(args)} if name == "fonts" else {"source_dir": args.source_dir}
    train = data.load(name, "train", args.limit, data_dir=args.data_dir, dtype=np.uint8, **kwargs)
    test = data.load(name, "test", data_dir=args.data_dir, dtype=np.uint8, **kwargs)
    overrides = {k: v for k, v in (("latent_dim", args.latent_dim), ("channels", args.channels)) if v is not None}
    config = vaegan.VAEGANConfig.paper(name, **overrides)
    if args.epochs is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=args.epochs))
    checkpoints = args.checkpoint_dir or str(Path(args.out) / "checkpoints")
    result = vaegan_train.train(train, config, classes=classes, seed=args.train_seed, checkpoint_dir=checkpoints, progress=not args.quiet)
    paths = write_quality_report(result.vae, result.variables, test, args.out, reference=train)
    errors = json.loads(Path(paths["errors"]).read_text())["all"]
    print(f"VAE-GAN {name}: test reconstruction L1 {errors['l1']:.4f} (class mean image {errors['mean_image_l1']:.4f}), "
          f"L2 {errors['l2']:.3f} (class mean image {errors['mean_image_l2']:.3f})")
    print(f"checkpoints in {Path(checkpoints).resolve()}; report in {Path(args.out).resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m manifold_robustness",
        description="Disentangling adversarial robustness and generalization (Stutz et al., CVPR 2019) in JAX.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    data_p = sub.add_parser("data", help="build and inspect datasets")
    data_sub = data_p.add_subparsers(dest="data_command", required=True)
    b = data_sub.add_parser("build", help="render FONTS (cached: a second call with the same config is instant)")
    _add_fonts_args(b)
    b.add_argument("--progress", action="store_true", help="show progress bars")
    b.set_defaults(func=cmd_data_build)
    i = data_sub.add_parser("info", help="show the build report of a cached FONTS")
    _add_fonts_args(i)
    i.set_defaults(func=cmd_data_info)
    s = data_sub.add_parser("samples", help="write a PNG grid of FONTS examples")
    _add_fonts_args(s)
    s.add_argument("--out", default="results/fonts_samples.png", help="PNG path")
    s.add_argument("--rows", type=int, default=8, help="rows of ten letters")
    s.add_argument("--which", choices=("train", "test"), default="train")
    s.set_defaults(func=cmd_data_samples)

    vae_p = sub.add_parser("vaegan", help="learned manifolds: class-specific VAE-GANs")
    vae_sub = vae_p.add_subparsers(dest="vaegan_command", required=True)
    t = vae_sub.add_parser("train", help="train one VAE-GAN per class (all at once), then write a quality report")
    t.add_argument("--dataset", choices=("fonts", "emnist", "fashion_mnist", "celeba"), default="fonts")
    t.add_argument("--classes", default="all", help="'all' (default), 'agnostic' (one model on all data) or labels, e.g. 0,1")
    t.add_argument("--limit", type=int, default=None, help="train on the first N training images (default: all)")
    t.add_argument("--epochs", type=int, default=None, help="default: the paper's (FONTS 10, EMNIST 30, F-MNIST 60, CelebA 30)")
    t.add_argument("--latent-dim", type=int, default=None, help="default 10 (the original code used 25 on CelebA)")
    t.add_argument("--channels", type=int, default=None, help="first layer's channels (default 64, doubling per layer)")
    t.add_argument("--train-seed", type=int, default=0, help="initialisation and shuffling seed (default 0)")
    t.add_argument("--source-dir", default=None, help="folder with the original dataset files (not FONTS)")
    t.add_argument("--out", default="results/vaegan", help="report folder (default results/vaegan)")
    t.add_argument("--checkpoint-dir", default=None, help="default <out>/checkpoints; a rerun resumes or returns the finished models")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_fonts_args(t)
    t.set_defaults(func=cmd_vaegan_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the message matters more than the trace for users
        from manifold_robustness.data.fontfaces import NoUsableFontsError

        if isinstance(err, NoUsableFontsError):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
