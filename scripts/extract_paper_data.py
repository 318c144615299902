"""Extract the few paper series the report compares against into ``paper_data.json``.

Usage::

    python scripts/extract_paper_data.py FIGURE_DATA DIGEST [-o manifold_robustness/report/paper_data.json]

FIGURE_DATA is the text file of figure series read from the paper's vector figures (one
``## <figure>.pdf`` header per figure, then one line per method: ``Method  n=K (x, y) (x, y) …``);
DIGEST is the paper digest (markdown) whose claim-1 table holds the Fig. 3 distance numbers.

Series written (fractions, N rounded to integers):

- ``test_error`` vs N: ``experiments_hypo3_<ds>_error.pdf``;
- ``on_true_success`` vs N (FONTS): ``experiments_hypo3_fonts_on_true.pdf``;
- ``regular_success`` vs N: ``experiments_hypo4_fonts_off.pdf`` (FONTS); for EMNIST and
  Fashion-MNIST only the success-vs-error plot ``experiments_hypo4_<ds>_error_off_alt.pdf`` exists;
- ``on_learned_success`` vs N: ``experiments_hypo3_<ds>_error_on_learned_alt.pdf``.

The ``*_alt`` plots have x = test error, points in increasing-N order; their N is recovered by
aligning the points with the same method's test-error-vs-N series (the x values are those errors),
and the alignment is checked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DATASETS = {"fonts": "fonts", "emnist": "emnist", "fashion": "fashion_mnist"}
METHODS = {"Normal": "normal", "RegAdvTrain": "regular_at", "OnTrueAdvTrain": "on_true_manifold_at",
           "DataAugm": "augment", "AdvTransfTrain": "adversarial_transformation",
           "OnLearnedAdvTrain": "on_learned_manifold_at"}
ALIGN_TOL = 0.002  # an *_alt point's x must equal the error at its N to this precision

_POINT = re.compile(r"\(([-\d.eE+]+),([-\d.eE+]+)\)")


def parse_figures(text: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """figure file name → method label (as printed, dash style included) → [(x, y)]."""
    figures: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = figures.setdefault(line[3:].split()[0], {})
        elif current is not None and line.startswith("  ") and "n=" in line:
            label = line.split(" n=")[0].strip()
            current[label] = [(float(a), float(b)) for a, b in _POINT.findall(line)]
    return figures


def _vs_n(points):
    return [int(round(x)) for x, _ in points], [round(y, 4) for _, y in points]


def _align(alt, error_points, what: str):
    """N for each point of an error-vs-success series, from the error-vs-N series."""
    ns, errors = _vs_n(error_points)
    best = None
    for offset in range(len(errors) - len(alt) + 1):
        dev = max(abs(x - errors[offset + i]) for i, (x, _) in enumerate(alt))
        if best is None or dev < best[0]:
            best = (dev, offset)
    if best is None or best[0] > ALIGN_TOL:
        raise ValueError(f"{what}: cannot align the points with the test-error series (max deviation {best})")
    return ns[best[1] : best[1] + len(alt)], [round(y, 4) for _, y in alt]


def series(figures) -> list[dict]:
    out = []

    def add(ds, quantity, method, x, y, source):
        out.append({"dataset": ds, "quantity": quantity, "method": method, "x": x, "y": y, "source": source})

    for short, ds in DATASETS.items():
        err_fig = f"experiments_hypo3_{short}_error.pdf"
        errors = {m: pts for m, pts in figures[err_fig].items() if m in METHODS}
        for label, pts in errors.items():
            add(ds, "test_error", METHODS[label], *_vs_n(pts), err_fig)
        direct = {"on_true_success": f"experiments_hypo3_{short}_on_true.pdf",
                  "regular_success": f"experiments_hypo4_{short}_off.pdf"}
        for quantity, fig in direct.items():
            for label, pts in figures.get(fig, {}).items():
                if label in METHODS:
                    add(ds, quantity, METHODS[label], *_vs_n(pts), fig)
        alt = {"on_learned_success": f"experiments_hypo3_{short}_error_on_learned_alt.pdf",
               "regular_success": f"experiments_hypo4_{short}_error_off_alt.pdf"}
        for quantity, fig in alt.items():
            if quantity == "regular_success" and direct["regular_success"] in figures:
                continue
            for label, pts in figures.get(fig, {}).items():
                if label in METHODS:
                    x, y = _align(pts, errors[label], f"{fig} {label}")
                    add(ds, quantity, METHODS[label], x, y, f"{fig} (N from {err_fig})")
    return out


def _num(s: str) -> float:
    return float(s.replace("−", "-"))


def distances(digest: str) -> dict:
    """The claim-1 histogram statistics from the digest's table (L2 distance to the manifold)."""
    rows = {}
    for line in digest.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] and not cells[0].startswith(("Setting", "---")):
            rows[cells[0]] = cells[1:]
    section = "paper digest §7.1 (Fig. 3 histogram statistics)"

    def stats(cells, count=None):
        support, mean, median, q = cells
        out = {"mean": _num(mean)}
        if median:
            out["median"] = _num(median)
        if support:
            out["min"], out["max"] = (_num(v) for v in support.split("–"))
        if q:
            out["q05"], out["q95"] = (_num(v) for v in q.split("–"))
        if count is not None:
            out["count"] = count
        return out

    counts = re.search(r"FONTS, true manifold: (\d+) regular AEs\. EMNIST, 50-NN approximation: (\d+) regular AEs "
                       r"and (\d+) on-manifold AEs", digest)
    c = [int(v) for v in counts.groups()] if counts else [None] * 3
    out = {
        "fonts": {"manifold": "true", "source": section,
                  "regular": stats(rows["FONTS, regular AEs, true manifold (main)"], c[0])},
        "emnist": {"manifold": "50-NN approximation", "source": section,
                   "regular": stats(rows["EMNIST, regular AEs, 50-NN (x-centered)"], c[1]),
                   "on_manifold": stats(rows["EMNIST, on-manifold AEs, 50-NN"], c[2])},
    }
    for short, ds in (("FONTS", "fonts"), ("EMNIST", "emnist"), ("F-MNIST", "fashion_mnist")):
        cells = rows.get(f"Supp., mean-centered NN, {short}: test / regular / on-manifold")
        if cells:
            means = [_num(v) for v in cells[1].split("/")]
            out.setdefault(ds, {})["mean_centered_nn_means"] = {
                **dict(zip(("test", "regular", "on_manifold"), means)),
                "source": "paper digest §7.1 (supplement: distance to the mean of the 50 nearest neighbours)"}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("figure_data")
    ap.add_argument("digest")
    ap.add_argument("-o", "--out", default=str(Path(__file__).resolve().parents[1] / "manifold_robustness" / "report" / "paper_data.json"))
    args = ap.parse_args(argv)
    figures = parse_figures(Path(args.figure_data).read_text())
    data = {
        "about": "Numbers read from the figures of Stutz, Hein & Schiele (CVPR 2019); fractions (0.25 = 25 %), "
                 "x = training-set size N; averaged over the paper's 5 models per N.",
        "series": series(figures),
        "distances": distances(Path(args.digest).read_text()),
    }
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {len(data['series'])} series and distances for {sorted(data['distances'])} to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
