"""Command line: ``python -m manifold_robustness <command> …`` (``--help`` on every level).

Exit codes: 0 success, 2 bad arguments or input (a message says what to change), 1 other failure.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import warnings
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
        selection=args.selection,
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
    from manifold_robustness.data.fonts import SELECTIONS, FontsConfig

    g.add_argument("--selection", choices=SELECTIONS, default=FontsConfig.selection,
                   help=f"legible: drop faces the legibility rules score low; random: every usable face "
                        f"(FONTS before the rules); default {FontsConfig.selection}")
    p.add_argument("--data-dir", default=None, help="data directory (default $MANIFOLD_ROBUSTNESS_DATA or ~/.cache/manifold_robustness)")


def cmd_data_build(args) -> int:
    from manifold_robustness.data import fonts

    built = fonts.build(_fonts_config(args), data_dir=args.data_dir, progress=args.progress)
    disc = built.meta["discovery"]
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(disc["dropped"].items())) or "none"
    print(f"FONTS: {built.num_fonts} fonts, {built.images.shape[0]} images of {built.images.shape[1]}x{built.images.shape[2]}")
    print(f"  faces found {disc['found']}, usable {disc['kept']}; dropped: {dropped}")
    if built.config.selection == "legible":
        print(f"  legibility rules: readability >= {built.config.min_readability} (cropped: survival >= "
              f"{built.config.min_survival}); scores per face in {built.path / 'fonts.json'}")
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

    from manifold_robustness.data import specs

    name, classes = args.dataset, _parse_classes(args.classes)
    options = {**dataclasses.asdict(_fonts_config(args)), "source_dir": args.source_dir}
    kwargs = specs.get(name).load_kwargs(options)
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


# -- experiments --------------------------------------------------------------------------------


def _load_config(args):
    from manifold_robustness.runner import config

    return config.load(args.config, args.override or [])


def _mesh(args, local: bool = False):
    """The data mesh of --data-parallel: over every process's devices (``local``: this process's)."""
    if not getattr(args, "data_parallel", False):
        return None
    import jax

    from manifold_robustness import parallel

    devices = jax.local_devices() if local else jax.devices()
    if len(devices) < 2:
        print("note: --data-parallel with one device: nothing to shard", file=sys.stderr)
        return None
    return parallel.data_mesh(devices)


def _add_distributed_args(p: argparse.ArgumentParser, one_program: bool) -> None:
    g = p.add_argument_group(
        "several processes (hosts)",
        "one program over every process's devices: start the same command on each process with --data-parallel, "
        "the same --coordinator and its own --process-id; only process 0 writes files" if one_program else
        "each process runs its own shard of the grid (--shard defaults to --process-id/--num-processes) on its own "
        "devices; the processes share the results folder (its claims keep them off each other's groups) and "
        "need no coordinator")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="address of process 0, the same on every process (jax.distributed.initialize)"
                   if one_program else "accepted for symmetry with train / attack; not needed")
    g.add_argument("--num-processes", type=int, default=None, metavar="N", help="how many processes take part")
    g.add_argument("--process-id", type=int, default=None, metavar="I", help="this process's index, 0..N-1")
    g.add_argument("--distributed", action="store_true",
                   help="read what is not given from the cluster (Slurm, Open MPI, Kubernetes, Cloud TPU)")


def _start_processes(args) -> tuple[int, int]:
    """``train`` / ``attack``: join the other processes (jax.distributed) → (index, count)."""
    from manifold_robustness import distributed

    index, count = distributed.initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    if count > 1 and not args.data_parallel:
        raise ValueError(f"{args.command} with {count} processes runs one program over all their devices: add "
                         "--data-parallel (or use `experiment run`, where each process runs its own shard of the grid)")
    return index, count


def _results_root(args, c) -> Path:
    return Path(args.results or f"results/{c.dataset}_{args.config.partition(':')[2] or 'paper'}")


def cmd_experiment_run(args) -> int:
    from manifold_robustness.runner import experiment

    from manifold_robustness import distributed

    if args.coordinator is not None:
        distributed.parse_address(args.coordinator)
    index, count = distributed.identity(args.num_processes, args.process_id, auto=args.distributed)
    if args.shard is None and count > 1:
        args.shard = f"{index}/{count}"
        print(f"process {index} of {count}: shard {args.shard}", file=sys.stderr)
    c = _load_config(args)
    root = _results_root(args, c)
    counts = experiment.run(c, root, shard_spec=args.shard, progress=not args.quiet, mesh=_mesh(args, local=True))
    states = experiment.status(c, root)
    left = sum(v != "done" for v in states.values())
    claimed = f", {counts['claimed']} left to the other workers that claimed them" if counts["claimed"] else ""
    print(f"{counts['trained']} groups run now, {counts['skipped']} were finished{claimed}; "
          f"{len(states) - left}/{len(states)} runs of the whole grid done in {root}")
    if left and args.shard in (None, "0/1") and not counts["claimed"]:
        return 1
    return 0


def cmd_experiment_status(args) -> int:
    from manifold_robustness.runner import experiment
    from manifold_robustness.runner.store import STATUSES, ResultsStore

    c = _load_config(args)
    root = _results_root(args, c)
    states = experiment.status(c, root)
    width = max((len(k.name) for k in states), default=10)
    for key, state in states.items():
        if args.all or state != "done":
            why = f"  ({ResultsStore(root).damage(key)}; `experiment run` redoes it)" if state == "damaged" else ""
            print(f"{key.name:{width}s}  {state}{why}")
    counts = ", ".join(f"{sum(v == s for v in states.values())} {s}" for s in STATUSES)
    print(f"{root}: {counts} of {len(states)} runs")
    return 0


def cmd_report(args) -> int:
    from manifold_robustness.runner import experiment

    report = experiment.report(args.results, args.out, say=lambda text: print(text, file=sys.stderr))
    for claim, v in report.verdicts.items():
        print(f"{claim}: {v['verdict']} - {v['reason']}")
    print(f"report: {Path(report.paths['markdown']).resolve()} (and report.html beside it)")
    return 0


def cmd_train(args) -> int:
    from manifold_robustness.runner import config, experiment

    index, _ = _start_processes(args)
    overrides = [f"methods={args.method}", f"sizes={args.n}", f"seeds={args.seeds}", "distances.methods=()",
                 *([f"train.epochs={args.epochs}"] if args.epochs is not None else []), *(args.override or [])]
    c = config.load(args.config, overrides)
    if args.attack_examples is not None:
        if not 1 <= args.attack_examples <= c.eval.test_examples:
            raise ValueError(f"--attack-examples must lie in [1, {c.eval.test_examples}] (the test images "
                             f"{args.config} evaluates, eval.test_examples); got {args.attack_examples}")
        c = config.load(args.config, [*overrides, f"eval.regular_examples={args.attack_examples}",
                                      f"eval.on_manifold_examples={args.attack_examples}"])
    root = Path(args.results or f"results/train/{c.dataset}_{args.method}_n{args.n}")
    experiment.run(c, root, progress=not args.quiet, mesh=_mesh(args))
    if index:  # process 0 wrote the runs and reports them
        return 0
    from manifold_robustness.runner.store import ResultsStore

    for rec in ResultsStore(root).records(arrays=False):
        rates = ", ".join(f"{n} {v['success_rate']:.3f}" for n, v in rec.metrics["attacks"].items())
        print(f"{rec.key.name}: test error {rec.metrics['test_error']:.4f}; success rate {rates}")
    print(f"models in {root.resolve()}/runs (attack them with `attack --results {root}`)")
    return 0


def cmd_attack(args) -> int:
    import inspect

    import jax
    import numpy as np

    from manifold_robustness import attacks
    from manifold_robustness.data import specs
    from manifold_robustness.manifolds import protocol
    from manifold_robustness.runner import experiment, setting
    from manifold_robustness.runner.config import apply_override
    from manifold_robustness.runner.records import RunKey
    from manifold_robustness.runner.store import ResultsStore

    for flag, value, least in (("--examples", args.examples, 1), ("--restarts", args.restarts, 1),
                               ("--iterations", args.iterations, 0)):
        if value < least:
            raise ValueError(f"{flag} must be >= {least}; got {value}")
    index, count = _start_processes(args)
    store = ResultsStore(args.results)
    c = experiment.stored_config(args.results)
    done = store.finished()
    if not done:
        raise ValueError(f"{args.results} has no finished run to attack")
    key = RunKey.parse(args.run) if args.run else done[0]
    if key not in done:
        raise ValueError(f"run {key.name} is not finished in {args.results}; finished: {', '.join(k.name for k in done)}")
    entry = attacks.ATTACKS.lookup(args.attack)  # an unknown name lists the known attacks
    protocol.require(entry.needs, specs.get(c.dataset).manifolds, c.dataset, f"attack {args.attack}")  # before any work
    for item in (f"eval.regular_examples={args.examples}", f"eval.on_manifold_examples={args.examples}",
                 f"eval.test_examples={max(args.examples, c.eval.test_examples)}"):
        apply_override(c, item)
    progress = not args.quiet and index == 0  # of several processes, process 0 shows progress
    s = setting.prepare(c, store, progress=progress)
    manifold = s.manifold(entry.needs, f"attack {args.attack}")
    variables = store.load_model(key)["variables"]  # every process reads it (a shared results folder)
    kw = dict(iterations=args.iterations, restarts=args.restarts)
    if args.eps is not None:
        kw["eps"] = args.eps
    if manifold is not None:
        kw["space"] = manifold.space
    elif "ranges" in inspect.signature(entry.factory).parameters:  # a transformation box: the dataset's
        kw["ranges"] = s.ranges
    attack = attacks.make(args.attack, **kw)
    name = setting.REGULAR if manifold is None else manifold.attack_key
    out = setting.attack_model(c, s, jax.tree.map(np.asarray, variables), jax.random.key(args.seed), name, attack,
                               args.examples, manifold, progress=progress, mesh=_mesh(args))
    if index:  # every process has the gathered outcome; process 0 reports it
        return 0
    summary = setting.summarize_attack(out, attack)
    print(f"{key.name}, {args.attack} (eps {summary['eps']}, {summary['iterations']} iterations, {summary['restarts']} restarts) "
          f"on {summary['num_examples']} test images ({summary['num_correct']} correctly classified):")
    print(f"  success rate {summary['success_rate']:.4f} (paper: over restarts), worst case {summary['worst_case_success_rate']:.4f}")
    if args.out:
        from manifold_robustness.report.grids import save_image_grid

        k = min(10, args.examples)
        r = np.where(out["success"][:, :k].any(0), out["success"][:, :k].argmax(0), 0)
        adv = out["x"][r, np.arange(k)]
        clean = out["clean"][:k]
        diff = np.clip(0.5 + (adv - clean) / 2, 0, 1)
        save_image_grid(np.concatenate([clean, adv, diff]), args.out, ncols=k, title=f"{key.name}: {args.attack} (rows: clean, adversarial, perturbation)")
        print(f"  clean / adversarial / perturbation rows: {Path(args.out).resolve()}")
    return 0


def _add_config_args(p: argparse.ArgumentParser, default: str = "fonts:quick") -> None:
    p.add_argument("--config", default=default,
                   help=f"NAME[:PRESET] of manifold_robustness.configs (fonts, fashion_mnist, emnist, celeba; "
                        f"presets paper, quick, tiny for fonts) or PATH.py[:PRESET] (default {default})")
    p.add_argument("--override", "-o", action="append", metavar="KEY=VALUE",
                   help="change a config value, e.g. -o sizes=250,1000 -o train.epochs=5 (repeatable)")
    p.add_argument("--results", default=None, help="results folder (default results/<dataset>_<preset>)")


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

    tr = sub.add_parser("train", help="train one (method, N) for some seeds, attack the models and store them as runs",
                        description="Train classifiers with one method on the first N training images (all seeds at once), "
                                    "then attack each model and store model, optimiser and results in a results folder.")
    _add_config_args(tr)
    tr.add_argument("--method", default="normal", help="training method (normal, regular_at, on_true_manifold_at, augment, …)")
    tr.add_argument("--n", type=int, default=1000, help="training-set size N (default 1000)")
    tr.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    tr.add_argument("--epochs", type=int, default=None, help="default: the config's (paper: 20)")
    tr.add_argument("--attack-examples", type=int, default=None,
                    help="test images each attack runs on (default: the config's eval.regular_examples and "
                         "eval.on_manifold_examples)")
    tr.add_argument("--data-parallel", action="store_true", help="shard batches over all devices (of every process)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_distributed_args(tr, one_program=True)
    tr.set_defaults(func=cmd_train)

    at = sub.add_parser("attack", help="attack a stored model and print its success rates",
                        description="Run an attack on a finished run of a results folder (from `train` or `experiment run`).")
    at.add_argument("--results", required=True, help="results folder")
    at.add_argument("--run", default=None, help="run name, e.g. fonts/normal/n1000/seed0 (default: the first finished)")
    at.add_argument("--attack", default="linf", help="an attack of attacks.ATTACKS: linf, l2, cw_l2, transformation, "
                    "on_true_manifold, on_learned_manifold, on_data_manifold, … (on-manifold ones need that manifold in "
                    "the experiment)")
    at.add_argument("--examples", type=int, default=500, help="attacked test images (default 500)")
    at.add_argument("--eps", type=float, default=None, help="budget ε / η (default: the paper's for the attack)")
    at.add_argument("--iterations", type=int, default=40)
    at.add_argument("--restarts", type=int, default=5)
    at.add_argument("--seed", type=int, default=0, help="attack key")
    at.add_argument("--out", default=None, help="also write a PNG of clean / adversarial / perturbation rows")
    at.add_argument("--data-parallel", action="store_true", help="shard attacked images over all devices (of every process)")
    at.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_distributed_args(at, one_program=True)
    at.set_defaults(func=cmd_attack)

    ex = sub.add_parser("experiment", help="run a whole grid (dataset × method × N × seed) and see how far it got")
    ex_sub = ex.add_subparsers(dest="experiment_command", required=True)
    er = ex_sub.add_parser("run", help="run or resume an experiment config; finished runs are skipped",
                           description="Expand a config into runs, train every (method, N) with its seeds at once, attack, "
                                       "measure and store each run.  Killed runs resume from their last epoch.  Exit code 0 "
                                       "when every run of the shard finished.")
    _add_config_args(er)
    er.add_argument("--shard", default=None, help="i/n: run every n-th (method, N) group starting at i (e.g. 0/2, 1/2; "
                    "default: --process-id/--num-processes)")
    er.add_argument("--data-parallel", action="store_true", help="shard batches over this process's devices (jax.sharding)")
    er.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_distributed_args(er, one_program=False)
    er.set_defaults(func=cmd_experiment_run)
    es = ex_sub.add_parser("status", help="list done / partial / pending runs of a config in its results folder")
    _add_config_args(es)
    es.add_argument("--all", action="store_true", help="also list finished runs")
    es.set_defaults(func=cmd_experiment_status)

    rp = sub.add_parser("report", help="write the four-claims report (figures, REPORT.md, report.html) from a results folder")
    rp.add_argument("--results", default="results/fonts_quick", help="results folder (default results/fonts_quick)")
    rp.add_argument("--out", default=None, help="report folder (default <results>/report)")
    rp.set_defaults(func=cmd_report)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """The library's own warnings (user-facing, e.g. FONTS built with fewer fonts than asked for)
    as one plain line; everything else as Python shows it."""
    if category.__module__.startswith("manifold_robustness"):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


_FILE_SYSTEM_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                       errno.EEXIST, errno.EISDIR}


def use_compilation_cache() -> str | None:
    """Keep compiled programs between commands: JAX's persistent compilation cache in the data
    directory's ``jax_cache`` (a warm ``attack`` command starts in seconds instead of compiling
    again).  A folder the user chose (``JAX_COMPILATION_CACHE_DIR``, or the config set in the
    process) is kept; ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off.  Returns the
    folder used (None when the data directory is not writable: then nothing is cached)."""
    import jax

    from manifold_robustness.data import cache

    if not jax.config.jax_compilation_cache_dir:
        try:
            # resolved: JAX's cache keys hash the folder's name as spelled (it rides along in the
            # compile options), so two spellings of one folder would never share a program
            jax.config.update("jax_compilation_cache_dir", str(cache.data_dir().resolve() / "jax_cache"))
        except PermissionError:
            return None
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            # jax's default (1 s) leaves out the many small programs a command's start-up compiles;
            # from 0.05 s on a program is kept (the key's threefry programs compile in ~0.1 s and
            # load in ~0.01), below that compiling is about as fast as loading
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)
    return jax.config.jax_compilation_cache_dir


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.showwarning = _show_warning
    try:
        use_compilation_cache()
        return args.func(args)
    except (ValueError, PermissionError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in _FILE_SYSTEM_ERRORS:
            raise
        print(f"error: cannot write {err.filename or 'a file'}: {err.strerror}; choose a writable folder "
              "(--results, --out) or free some space", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the message matters more than the trace for users
        from manifold_robustness.data.fontfaces import NoUsableFontsError

        if isinstance(err, NoUsableFontsError):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


def reproduce(name: str, argv: list[str] | None = None) -> int:
    """The scripts in ``experiments/``: run ``name``'s preset (``experiment run``, resuming), then
    write its report; ``argv`` = ``[PRESET] [-o KEY=VALUE ...] [--results DIR] [--quiet]``."""
    p = argparse.ArgumentParser(prog=f"python experiments/{name}.py",
                                description=f"Run a preset of the {name} experiment, then write its report.")
    p.add_argument("preset", nargs="?", default="quick", help="paper, quick, … (default quick)")
    p.add_argument("--override", "-o", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", default=None, help=f"results folder (default results/{name}_<preset>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    results = args.results or f"results/{name}_{args.preset}"
    run = ["experiment", "run", "--config", f"{name}:{args.preset}", "--results", results,
           *(x for o in args.override for x in ("-o", o)), *(["--quiet"] if args.quiet else [])]
    return main(run) or main(["report", "--results", results])


if __name__ == "__main__":
    raise SystemExit(main())
