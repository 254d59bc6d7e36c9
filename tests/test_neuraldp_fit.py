"""NeuralDP end to end on a small MNIST subset: training, ledger, guard, model files,
the canary audit and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from npdpsnn.data import load_dataset
from npdpsnn.network import Network
from npdpsnn.neuraldp.canary_audit import audit_neuraldp, input_canaries
from npdpsnn.neuraldp.config import NeuralDPConfig
from npdpsnn.neuraldp.fit import fit_neuraldp
from npdpsnn.neuraldp.guard import PrivacyAssumptionError
from npdpsnn.neuraldp.model import load_neuraldp_model
from npdpsnn.privacy.accountants import PrivacyAccountant
from npdpsnn.privacy.events import ActivationReleaseEvent, ReplaceOneEvent, flatten

SPEC = "8C5S2-P2S2-16-10"


@pytest.fixture(scope="module")
def mnist(shared_data_dir):
    return load_dataset("mnist", data_dir=shared_data_dir)


def _config(**values) -> NeuralDPConfig:
    return NeuralDPConfig.from_values("mnist", {
        "net": SPEC, "model.kind": "snn", "model.T": 2, "optim.epochs": 2, "optim.batch_size": 50, "optim.lr": 0.5,
        "run.limit_train": 300, "neuraldp.layer": 2, "neuraldp.clip": 4.0, "neuraldp.center_clip": 8.0,
        "neuraldp.target_epsilon": 4.0, **values})


@pytest.mark.parametrize("labels", ["private", "public"])
def test_fit_end_to_end(mnist, tmp_path, labels):
    res = fit_neuraldp(_config(**{"neuraldp.labels": labels}), mnist, test_limit=200)
    s = res.summary
    assert s["n_train"] == 300 and s["feature_size"] == 8 * 6 * 6 and s["head_spec"] == "16-10"
    assert 0.0 <= s["test_accuracy"] <= 1.0 and len(res.metrics) == 2
    assert res.report.epsilon("rdp") <= 4.0  # calibrated to the target
    assert res.config.neuraldp.sigma == s["sigma"] and res.config.neuraldp.target_epsilon is None
    atoms = [type(a) for a, _ in flatten(res.ledger.event)]
    assert atoms.count(ActivationReleaseEvent) == 2  # the centre and the rows, once each
    assert (ReplaceOneEvent in atoms) == (labels == "private")
    if labels == "private":
        assert res.report.epsilon("pld") is None and s["head_steps"] == 12
    else:
        assert res.report.epsilon("pld") <= res.report.epsilon("rdp")
    assert res.metrics[-1]["rdp_epsilon"] == pytest.approx(res.report.epsilon("rdp"))
    assert PrivacyAccountant.from_state_dict(json.loads(json.dumps(s["ledger"]))) == res.ledger
    res.model.save(tmp_path)
    back = load_neuraldp_model(tmp_path)
    x, y = mnist.test_x.head(50), mnist.test_y[:50]
    np.testing.assert_allclose(back.evaluate(x, y).logits, res.model.evaluate(x, y).logits)


def test_fit_refuses_an_encoder_that_is_not_what_it_is_declared_to_be(mnist):
    cfg = _config()
    trained = Network(SPEC, mnist.input_shape, cfg.base.model, seed=0)
    trained.params["conv1.weight"][:] *= 1.1  # e.g. trained on the private data without DP
    with pytest.raises(PrivacyAssumptionError, match="not the initialisation"):
        fit_neuraldp(cfg, mnist, encoder=trained, test_limit=10)
    with pytest.raises(PrivacyAssumptionError, match="ledger"):
        fit_neuraldp(cfg.with_values({"neuraldp.lower": "dp-sgd"}), mnist, encoder=trained, test_limit=10)


def test_input_canaries_keep_the_data_size_and_differ_in_one_image(mnist):
    c = input_canaries(mnist, 100, 20, seed=1)
    assert len(c.data.train_y) == 120 and np.all(c.data.train_y[100:] == c.labels)
    assert np.all(c.labels != mnist.train_y[100:120])  # mislabelled
    inc = c.included
    np.testing.assert_array_equal(c.data.train_x[100:][inc], c.images[inc])
    assert np.ptp(c.data.train_x[100:][~inc]) == 0  # blank images in the excluded slots


def test_canary_audit_stays_below_the_accounted_epsilon(mnist):
    run = audit_neuraldp(_config(**{"neuraldp.labels": "public", "model.kind": "ann"}), mnist, n_train=200, m=64,
                         seed=0, test_limit=10)
    assert run.audit.m == 64 and run.scores.shape == (64,)
    assert run.audit.epsilon <= run.result.report.epsilon("rdp")


def test_cli_trains_and_writes_the_run_folder(shared_data_dir, tmp_path):
    from npdpsnn.cli.main import main

    out = tmp_path / "run"
    args = ["train-neuraldp", "mnist", "--net", SPEC, "-T", "2", "--model", "ann", "--privatize-layer", "2",
            "--labels", "public", "--act-clip", "4", "--center-clip", "8", "--target-epsilon", "3", "--epochs", "1",
            "--batch-size", "50", "--limit-train", "200", "--data-dir", str(shared_data_dir), "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "NeuralDP guarantee" in r.output and "replace-one" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mechanism"] == "neuraldp" and summary["rdp_epsilon"] <= 3.0
    assert {"encoder.h5", "head.h5", "neuraldp.json", "metrics.csv", "config.json"} <= {p.name for p in out.iterdir()}
    r = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "other"), "--center-clip", "-1"])
    assert r.exit_code == 2 and "--center-clip must be > 0" in r.output


def test_train_mechanism_neuraldp_flag(tmp_path, shared_data_dir):
    from click.testing import CliRunner

    from npdpsnn.cli.main import main

    out = tmp_path / "ndp"
    args = ["train", "mnist", "--mechanism", "neuraldp", "--privatize-layer", "4", "--labels", "public",
            "--activation-clip", "5", "--target-epsilon", "8", "--limit-train", "300", "--epochs", "1", "--quiet",
            "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert {"summary.json", "metrics.csv", "head.h5"} <= {p.name for p in out.iterdir()}
    r = CliRunner().invoke(main, ["train", "mnist", "--mechanism", "neuraldp", "--sigma", "1", "--quiet"])
    assert r.exit_code == 2 and "--privatize-layer" in r.output
    r = CliRunner().invoke(main, [*args[:6], "--labels", "public", "--target-epsilon", "8", "--out", str(out / "x")])
    assert r.exit_code == 2 and "--activation-clip is required" in r.output
