"""Evaluation attacks chosen by config (``eval.attacks``): L∞, L2 PGD, C&W L2 and transfer from a
source model trained once per results root, each stored per run and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from manifold_robustness.runner import config, experiment, setting, store
from manifold_robustness.runner.records import RunKey

# the store-integrity tests' grid (an MLP, no distances): the same compiled training programs
GRID = ["model=mlp", "methods=normal", "sizes=100", "distances.methods=()"]
ATTACKS = ["eval.attacks=linf,l2,cw_l2,transfer", "eval.transfer.examples=1000", "eval.transfer.epochs=2"]


def _source_correct(c, root, rows):
    """The stored transfer source's correct mask on the first ``rows`` test images (loaded from
    its checkpoint, as a second worker or a resumed experiment would)."""
    from manifold_robustness import attacks

    s = setting.load_setting(c)
    meta = json.loads((root / setting.TRANSFER_SOURCE / "config.json").read_text())
    assert meta["role"] == "transfer source" and meta["num_examples"] == c.eval.transfer.examples
    assert meta["seeds"] == [c.eval.transfer.seed]
    folder = root / setting.TRANSFER_SOURCE
    stamp = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    trained = setting.add_sources(c, s, store.ResultsStore(root), progress=False, say=lambda t: None)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamp  # loaded, not trained again
    x = np.asarray(s.test.images[:rows], np.float32)
    return np.asarray(attacks.correct(s.classifier.logits_fn(trained.sources["transfer"]), x, s.test.labels[:rows]))


def test_every_evaluation_attack_runs_from_the_config_and_transfer_counts_both_models(tmp_path):
    root = tmp_path / "attacks"
    c = config.load("fonts:tiny", [*GRID, *ATTACKS])
    said = []
    experiment.run(c, root, progress=False, say=said.append)
    assert sum("transfer source" in t for t in said) == 1

    rec = store.ResultsStore(root).record(RunKey("fonts", "normal", 100, 0))
    attacks = rec.metrics["attacks"]
    assert set(attacks) == {"regular", "regular_l2", "regular_cw_l2", "transfer", "on_true"}
    for name, s in attacks.items():
        assert 0.0 <= s["success_rate"] <= s["worst_case_success_rate"] <= 1.0, name
        assert rec.arrays[f"attacks/{name}/success"].shape == (s["restarts"], s["num_examples"])
    assert attacks["regular_l2"]["eps"] == pytest.approx(1.5)  # the paper's L2 ε, from the attack registry
    assert float(rec.arrays["attacks/regular_l2/l2"].max()) <= 1.5 + 1e-4
    assert attacks["regular_cw_l2"]["iterations"] == 120 and attacks["regular_cw_l2"]["restarts"] == 1
    # transfer: examples count where both the run's model and the source classify them right
    target_correct = rec.arrays["attacks/regular/correct"]
    source_correct = _source_correct(c, root, len(target_correct))
    np.testing.assert_array_equal(rec.arrays["attacks/transfer/correct"], target_correct & source_correct)
    assert attacks["transfer"]["num_correct"] == int((target_correct & source_correct).sum())

    experiment.report(root, say=lambda t: None)
    md = (root / "report" / "REPORT.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method | N |") and "transfer" in line)
    assert "regular_l2 success" in header and "regular_cw_l2 success" in header
    assert "worst case" in md


def test_bad_evaluation_attack_settings_are_refused():
    with pytest.raises(ValueError, match="unknown: 'pgd'"):
        config.load("fonts:tiny", ["eval.attacks=linf,pgd"])
    with pytest.raises(ValueError, match="add linf to eval.attacks"):
        config.load("fonts:tiny", ["eval.attacks=l2"])  # the tiny preset measures distances
    with pytest.raises(ValueError, match="one of the grid's seeds"):
        config.load("fonts:tiny", ["eval.attacks=linf,transfer", "eval.transfer.seed=0"])
    with pytest.raises(ValueError, match="eval.transfer.epochs must be"):
        config.load("fonts:tiny", ["eval.attacks=linf,transfer", "eval.transfer.epochs=0"])


def test_a_transfer_source_larger_than_the_training_split_is_refused(tmp_path):
    c = config.load("fonts:tiny", [*GRID, "eval.attacks=linf,transfer", "eval.transfer.examples=1000000000"])
    with pytest.raises(ValueError, match="eval.transfer.examples asks for 1000000000 train images.*has 10000"):
        experiment.run(c, tmp_path / "big", progress=False, say=lambda t: None)
    assert not (tmp_path / "big").exists()  # refused with the data checks, before the root's first write


def test_the_audit_is_never_weaker_than_the_paper_attack_and_flags_a_planted_weak_one(tmp_path):
    """A paper attack of one iteration (planted weak) audited by 40-iteration versions with both
    objectives: per image the audit breaks everything the paper attack broke (by construction),
    and on the regular attack it finds more, so the report flags the cell."""
    root = tmp_path / "audit"
    c = config.load("fonts:tiny", ["model=mlp", "methods=normal", "sizes=200", "distances.methods=()",
                                   "train.epochs=4", "train.batch_size=20", "eval.iterations=1", "audit.examples=20",
                                   "audit.iteration_factor=40", "audit.restart_factor=1"])
    experiment.run(c, root, progress=False, say=lambda t: None)
    rec = store.ResultsStore(root).record(RunKey("fonts", "normal", 200, 0))
    audit = rec.metrics["audit"]
    assert set(audit) == {"regular", "on_true"}
    for name, a in audit.items():
        paper = rec.arrays[f"attacks/{name}/success"][:, :20].any(0)
        broken = rec.arrays[f"audit/{name}/success"]
        assert broken.shape == (20,) and not (paper & ~broken).any(), name  # a superset of the paper's
        assert a["strong_worst_case"] >= a["paper_worst_case"] and a["iterations"] == 40
        assert a["objectives"] == ["cross_entropy", "margin"]
    assert audit["regular"]["num_correct"] > 0
    assert audit["regular"]["strong_worst_case"] - audit["regular"]["paper_worst_case"] >= 0.03
    experiment.report(root, say=lambda t: None)
    md = (root / "report" / "REPORT.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| normal | 200 | regular |"))
    assert "⚠ understated" in row


def test_an_audit_weaker_than_the_paper_attack_is_refused():
    with pytest.raises(ValueError, match="fewer iterations than the paper attack .* at least as strong"):
        config.load("fonts:tiny", ["audit.examples=20", "audit.iteration_factor=0"])
    with pytest.raises(ValueError, match="fewer restarts"):
        config.load("fonts:tiny", ["audit.examples=20", "audit.restart_factor=0"])
    with pytest.raises(ValueError, match="choose among cross_entropy, margin"):
        config.load("fonts:tiny", ["audit.examples=20", "audit.objectives=hinge"])
    config.load("fonts:tiny", ["audit.iteration_factor=0"])  # no audit (examples 0): nothing to refuse
