"""The claims report on synthetic run records: aggregation, Spearman, verdicts, files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from manifold_robustness.report import claims, paper
from manifold_robustness.report.summary import write_report
from manifold_robustness.runner.records import RunKey, RunRecord

NS = (250, 1000, 5000)


def record(ds, method, n, seed, error, success: dict, *, correct=100, distances=None, gallery=False, rng=None):
    """A RunRecord with the documented metric keys; ``success``: attack → success rate."""
    rng = rng or np.random.default_rng(0)
    attacks = {a: {"success_rate": s, "worst_case_success_rate": min(1.0, s + 0.05), "num_examples": 120,
                   "num_correct": correct, "restarts": 1, "eps": 0.3, "iterations": 40, "mean_l2": None,
                   "mean_linf": None} for a, s in success.items()}
    metrics = {"test_error": error, "train_error": 0.0, "train_loss": 0.1, "history": {"loss": [1.0], "error": [0.5]},
               "attacks": attacks, "distances": None, "timing": {"train_s": 1.0}}
    arrays = {}
    if distances is not None:
        for g, (loc, m) in distances.items():
            d = np.abs(rng.normal(loc, 0.05 * max(loc, 0.1), m)).astype(np.float32)
            arrays[f"distances/{g}/distance"] = d
            arrays[f"distances/{g}/norm"] = (d * 1.02 if g != "test" else np.zeros(m)).astype(np.float32)
            arrays[f"distances/{g}/angle"] = np.full(m, 85.0, np.float32)
            arrays[f"distances/{g}/example"] = np.arange(m, dtype=np.int32)
            arrays[f"distances/{g}/restart"] = np.zeros(m, np.int32)
    if gallery:
        k = 4
        clean = rng.uniform(0, 1, (k, 28, 28, 1)).astype(np.float32)
        arrays.update({"gallery/clean": clean, "gallery/regular": np.clip(clean + 0.3 * rng.choice([-1, 1], clean.shape), 0, 1),
                       "gallery/on_manifold": np.roll(clean, 1, axis=1), "gallery/on_manifold_clean": clean,
                       "gallery/label": np.arange(k, dtype=np.int32), "gallery/regular_pred": np.arange(k, dtype=np.int32) + 1,
                       "gallery/on_manifold_pred": np.arange(k, dtype=np.int32) + 2})
    return RunRecord(RunKey(ds, method, n, seed), metrics, arrays)


# error per N, and how each method's on-manifold / regular success follows it
ERRORS = {"normal": (0.70, 0.45, 0.20), "on_true_manifold_at": (0.50, 0.25, 0.08), "regular_at": (0.65, 0.45, 0.22)}
REGULAR = {"normal": (1.0, 0.99, 0.97), "on_true_manifold_at": (1.0, 1.0, 1.0), "regular_at": (0.95, 0.80, 0.55)}


def consistent_store(seeds=(0, 1), ns=NS, with_extras=True):
    """On-manifold success falls with error, on-manifold AT lowers error, regular success of
    normal training stays flat and regular AT's falls: all four claims should hold."""
    rng = np.random.default_rng(1)
    out = []
    for m, errs in ERRORS.items():
        for i, n in enumerate(NS):
            if n not in ns:
                continue
            for s in seeds:
                e = errs[i] + 0.01 * s
                extras = with_extras and m == "normal" and n == ns[-1]
                out.append(record("fonts", m, n, s, e, {"regular": REGULAR[m][i], "on_true": 0.2 + e},
                                  distances={"test": (0.02, 60), "regular": (1.0, 80), "on_manifold": (0.05, 40)}
                                  if extras else None, gallery=extras, rng=rng))
    return out


def reversed_store():
    """On-manifold success rises as error falls, on-manifold AT hurts, normal's regular success
    rises with N: claims 3 and 4 should fail."""
    out = []
    for m, errs in ERRORS.items():
        errs = ERRORS["regular_at"] if m == "on_true_manifold_at" else errs  # on-manifold AT no better…
        errs = tuple(e + 0.05 for e in errs) if m == "on_true_manifold_at" else errs  # …worse
        for i, n in enumerate(NS):
            for s in (0, 1):
                e = errs[i] + 0.01 * s
                reg = (0.5, 0.7, 0.9)[i] if m == "normal" else REGULAR[m][i]
                out.append(record("fonts", m, n, s, e, {"regular": reg, "on_true": 1.0 - e}))
    return out


def test_rankdata_averages_ties():
    np.testing.assert_allclose(claims.rankdata([10, 20, 20, 5]), [2.0, 3.5, 3.5, 1.0])


def test_spearman_hand_computed():
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]; centred products sum 4.5, squares 4.5 and 5
    assert claims.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))
    assert claims.spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear
    assert claims.spearman([1, 2, 3, 4], [3, 2, 1, 0]) == pytest.approx(-1.0)
    assert math.isnan(claims.spearman([1, 2, 3], [5, 5, 5]))
    assert math.isnan(claims.spearman([1], [2]))


def test_aggregate_means_and_stds_over_seeds():
    recs = [record("fonts", "normal", 250, s, e, {"regular": r}) for s, e, r in ((0, 0.2, 1.0), (1, 0.4, 0.8), (2, 0.3, 0.9))]
    cell = claims.aggregate(recs)[("fonts", "normal", 250)]
    assert cell.seeds == (0, 1, 2)
    assert cell.test_error == pytest.approx(0.3) and cell.test_error_std == pytest.approx(0.1)
    assert cell.success["regular"] == pytest.approx(0.9) and cell.num_correct["regular"] == 300
    assert "on_true" not in cell.success


def test_paper_series_loader():
    n, err = paper.paper_series("fonts", "test_error", "normal")
    assert n[0] == 250 and n[-1] == 40000 and np.all(np.diff(n) > 0)
    assert err[list(n).index(1000)] == pytest.approx(0.4953)
    assert paper.paper_value("fonts", "regular_success", "regular_at", 1000) == pytest.approx(0.8851)
    # EMNIST's regular success only exists against test error; its N come from the error curve
    assert paper.paper_value("emnist", "regular_success", "normal", 250) == pytest.approx(1.0)
    assert paper.paper_series("emnist", "on_true_success", "normal") is None
    assert paper.paper_value("fonts", "test_error", "normal", 123) is None
    assert paper.paper_distances("fonts")["regular"]["mean"] == pytest.approx(1.08)
    # what the report gives a "paper" column: on-learned success on FONTS yes, on-data success nowhere
    assert paper.has_curves("fonts", "on_learned_success") and paper.has_curves("fonts", "on_true_success")
    assert not paper.has_curves("emnist", "on_true_success") and not paper.has_curves("fonts", "on_data_success")


def test_consistent_store_all_claims_hold(tmp_path):
    recs = consistent_store()
    planned = [r.key for r in recs] + [RunKey("fonts", "normal", 20000, 0)]
    rep = write_report(recs, tmp_path, planned=planned, experiment={"datasets": ["fonts"], "seeds": 2})
    assert {k: v["verdict"] for k, v in rep.verdicts.items()} == {c: "holds" for c in claims.CLAIMS}
    for name in ("markdown", "html", "verdicts", "claim1_distances_fonts", "claim2_gallery_fonts", "claim3_fonts",
                 "claim4_fonts"):
        assert rep.paths[name].is_file() and rep.paths[name].stat().st_size > 0, name
    assert json.loads(rep.paths["verdicts"].read_text())["claim3"]["verdict"] == "holds"
    md = rep.paths["markdown"].read_text()
    # our number and the paper's at the same N share a row: normal at N=1000 (paper 49.5 %, regular AT 88.5 %)
    row = next(line for line in md.splitlines() if line.startswith("| normal | 1000 |"))
    assert "45.5 ± 0.71" in row and "49.5" in row
    row = next(line for line in md.splitlines() if line.startswith("| regular_at | 1000 |"))
    assert "80.0" in row and "88.5" in row
    assert "1.08" in md  # Fig. 3's FONTS regular mean distance beside ours
    assert "20000 (0)" in md  # the planned run that did not finish
    html = rep.paths["html"].read_text()
    assert "data:image/png;base64," in html and "49.5" in html


def test_reversed_store_claims_3_and_4_do_not_hold(tmp_path):
    rep = write_report(reversed_store(), tmp_path)
    v = rep.verdicts
    assert v["claim3"]["verdict"] == "does not hold"
    parts = v["claim3"]["numbers"]["per_dataset"]["fonts"]["numbers"]["parts"]
    assert parts["correlation"]["verdict"] == "does not hold" and parts["training"]["verdict"] == "does not hold"
    assert parts["correlation"]["numbers"]["rho"] < 0
    assert v["claim4"]["verdict"] == "does not hold"
    assert v["claim1"]["verdict"] == "not enough data"  # no distances measured


def test_single_n_is_not_enough_data(tmp_path):
    rep = write_report(consistent_store(ns=(1000,), with_extras=False), tmp_path)
    assert rep.verdicts["claim3"]["verdict"] == "not enough data"
    assert rep.verdicts["claim4"]["verdict"] == "not enough data"
    assert "need ≥ 2 N" in rep.verdicts["claim3"]["reason"]
    # the on-manifold attack ran on normal models, so claim 2 is still decided
    assert rep.verdicts["claim2"]["verdict"] == "holds"


def test_missing_regular_at_is_not_enough_data():
    recs = [r for r in consistent_store(with_extras=False) if r.key.method != "regular_at"]
    v = claims.claim4(claims.aggregate(recs))
    assert v["verdict"] == "not enough data"
    assert v["numbers"]["per_dataset"]["fonts"]["numbers"]["parts"]["normal"]["verdict"] == "holds"


def test_records_without_distances_or_gallery(tmp_path):
    recs = [record("fonts", "normal", n, 0, e, {"regular": 1.0}) for n, e in zip(NS, ERRORS["normal"])]
    rep = write_report(recs, tmp_path)
    assert rep.verdicts["claim1"]["verdict"] == "not enough data"
    assert rep.verdicts["claim2"]["verdict"] == "not enough data"
    assert not any(k.startswith(("claim1_", "claim2_")) for k in rep.paths)
    assert "no run kept a gallery" in rep.paths["markdown"].read_text()


def test_claim1_fails_when_regular_examples_stay_close():
    recs = [record("fonts", "normal", 1000, 0, 0.3, {"regular": 1.0},
                   distances={"test": (0.5, 50), "regular": (0.6, 50), "on_manifold": (0.5, 30)})]
    v = claims.claim1(recs)
    assert v["verdict"] == "does not hold"
    assert v["numbers"]["per_dataset"]["fonts"]["numbers"]["factor"] < claims.CLAIM1_DISTANCE_FACTOR


def test_claim2_fails_without_successes():
    recs = [record("emnist", "normal", n, 0, 0.05, {"regular": 0.9, "on_learned": 0.01}) for n in NS]
    v = claims.claim2(recs)
    assert v["verdict"] == "does not hold" and v["numbers"]["per_dataset"]["emnist"]["numbers"]["attack"] == "on_learned"


def test_empty_report_says_nothing_ran(tmp_path):
    planned = [RunKey("fonts", "normal", 1000, 0), RunKey("fonts", "regular_at", 1000, 0)]
    rep = write_report([], tmp_path, planned=planned)
    assert all(v["verdict"] == "not enough data" for v in rep.verdicts.values())
    md = rep.paths["markdown"].read_text()
    assert "No runs have finished" in md and "0 of 2 planned run(s) finished" in md
    assert "regular_at" in md and rep.paths["html"].is_file()


@pytest.mark.parametrize("ds,attack", [("fonts", "on_true"), ("emnist", "on_learned"), ("fashion_mnist", "on_learned")])
def test_paper_curves_pass_the_rules_for_claims_3_and_4(ds, attack):
    """Records made of the paper's own curves: the rules must accept the paper's claims 3 and 4."""
    recs = []
    methods = {s["method"] for s in paper.paper_data()["series"] if s["dataset"] == ds}
    for m in sorted(methods):
        err = dict(zip(*paper.paper_series(ds, "test_error", m)))
        reg = dict(zip(*paper.paper_series(ds, "regular_success", m)))
        on = dict(zip(*paper.paper_series(ds, paper.ATTACK_QUANTITY[attack], m)))
        for n in sorted(set(err) & set(reg) & set(on)):
            recs.append(record(ds, m, int(n), 0, err[n], {"regular": reg[n], attack: on[n]}))
    cells = claims.aggregate(recs)
    assert claims.claim4(cells)["verdict"] == "holds"
    v3 = claims.claim3(cells)
    rho = v3["numbers"]["per_dataset"][ds]["numbers"]["parts"]["correlation"]["numbers"]["rho"]
    assert rho > claims.CLAIM3_MIN_RHO
    assert v3["verdict"] == "holds"


def test_tradeoff_figure_has_one_point_per_model_beside_the_papers(tmp_path):
    """Fig. 7 bottom: at the largest N two methods share, one point per model; FONTS' paper
    points (its largest N) stand beside them."""
    runs = [record("fonts", m, 5000, s, e + 0.01 * s, {"regular": r}) for m, e, r in
            (("normal", 0.2, 0.97), ("regular_at", 0.3, 0.6), ("combined_true", 0.25, 0.75)) for s in (0, 1, 2)]
    runs.append(record("fonts", "normal", 250, 0, 0.7, {"regular": 1.0}))  # a smaller N: not in the figure
    rep = write_report(runs, tmp_path)
    md = (tmp_path / "REPORT.md").read_text()
    assert "Accuracy against regular robustness (paper Fig. 7 bottom)" in md and "at N = 5000" in md
    assert rep.paths["tradeoff_fonts"].stat().st_size > 1000
    theirs = paper.paper_tradeoff("fonts")
    assert set(theirs) == {"normal", "regular_at", "combined_true", "combined_learned"}
    assert theirs["regular_at"][0] > theirs["normal"][0] and theirs["regular_at"][1] < theirs["normal"][1]
    assert paper.paper_tradeoff("fashion_mnist") is None
    only_one = write_report([record("fonts", "normal", 5000, 0, 0.2, {"regular": 0.9})], tmp_path / "one")
    assert "tradeoff_fonts" not in only_one.paths  # one method: nothing to trade off


def test_paper_curves_follow_the_experiments_architecture(tmp_path):
    """ResNet-13 runs stand beside the paper's ResNet-13 curve (Fig. 7 top); an architecture the
    paper did not plot (the MLP) beside its main CNN's."""
    assert paper.curve_model("resnet13") == "resnet13" and paper.curve_model("mlp") == paper.PAPER_MODEL
    assert paper.paper_value("fonts", "test_error", "normal", 900000, "resnet13") == pytest.approx(0.0005)
    assert paper.paper_value("fonts", "test_error", "normal", 1000, "resnet13") != paper.paper_value(
        "fonts", "test_error", "normal", 1000)
    assert not paper.has_curves("fonts", "regular_success", "resnet13")  # the paper gives only its endpoints
    runs = [record("fonts", m, 1000, 0, 0.3, {"regular": 0.9}) for m in ("normal", "regular_at")]
    write_report(runs, tmp_path, experiment={"config": {"model": "resnet13"}})
    row = next(line for line in (tmp_path / "REPORT.md").read_text().splitlines() if line.startswith("| normal | 1000 "))
    assert "| 33.4 |" in row  # the paper's ResNet-13 error at N = 1k, not its CNN's


def test_mean_linf_of_successes_is_reported_beside_the_papers_celeba_values(tmp_path):
    """CelebA's regular robustness (Fig. 8): the mean ‖δ‖∞ of successful perturbations per cell,
    the mean over seeds, beside the paper's flat values."""
    runs = []
    for s, norm in ((0, 0.14), (1, 0.16)):
        r = record("celeba", "normal", 1000, s, 0.1, {"regular": 0.5})
        r.metrics["attacks"]["regular"]["mean_linf"] = norm
        runs.append(r)
    write_report(runs, tmp_path)
    md = (tmp_path / "REPORT.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| normal | 1000 | 0.150 |"))
    assert "0.152" in row  # the paper's
    assert paper.paper_mean_linf("celeba")["adversarial_transformation"] == (0.153, 0.165)
    assert paper.paper_mean_linf("fonts") is None


def test_distance_to_the_paper_table_on_curves_with_known_offsets(tmp_path):
    """Our normal-training error is the paper's + 10 points at every N; our regular success lies 2
    points above the paper's success-vs-error curve at our error: the table says 10.0 and 2.0."""
    from manifold_robustness.report import fidelity

    ns = (250, 1000, 5000)
    err = {n: paper.paper_value("fonts", "test_error", "normal", n) + 0.10 for n in ns}
    pe, ps = paper.paper_series("fonts", "test_error", "normal"), paper.paper_series("fonts", "regular_success", "normal")
    common, ia, ib = np.intersect1d(pe[0], ps[0], return_indices=True)
    order = np.argsort(pe[1][ia])
    on_curve = {n: float(np.interp(err[n], pe[1][ia][order], ps[1][ib][order])) for n in ns}
    runs = [record("fonts", "normal", n, 0, err[n], {"regular": min(on_curve[n] + 0.02, 1.0)}) for n in ns]
    rep = write_report(runs, tmp_path)
    md = (tmp_path / "REPORT.md").read_text()
    assert "## Distance to the paper" in md and "| test error vs N | normal | 3 | 10.0 |" in md
    diffs = {d.curve: d for d in fidelity.curve_differences(claims.aggregate(runs))}
    inside = [n for n in ns if pe[1][ia].min() <= err[n] <= pe[1][ia].max()]
    assert diffs["regular success vs test error"].points == len(inside) > 0
    expected = np.mean([min(on_curve[n] + 0.02, 1.0) - on_curve[n] for n in inside])
    assert diffs["regular success vs test error"].mad == pytest.approx(expected, abs=1e-9)
    saved = json.loads(rep.paths["fidelity"].read_text())
    row = next(c for c in saved["curves"] if c["curve"] == "test error vs N")
    assert (row["dataset"], row["method"], row["points"]) == ("fonts", "normal", 3)
    assert row["mad"] == pytest.approx(0.10)


def test_fig3_statistics_difference_is_per_measure():
    from manifold_robustness.report import fidelity

    rows = fidelity.distance_differences("emnist", {
        "manifold": {"regular": {"mean": 0.5, "median": 0.5}},  # the paper has no projection numbers here
        "knn_point": {"regular": {"mean": 1.0, "median": 1.3}, "on_manifold": {"mean": 0.58, "median": None}}})
    assert rows == [{"measure": "knn_point", "group": "regular", "mean": pytest.approx(0.12), "median": pytest.approx(0.18)},
                    {"measure": "knn_point", "group": "on_manifold", "mean": pytest.approx(0.0)}]
