"""``npdpsnn convert`` and ``npdpsnn leakage`` end to end on a tiny MNIST ANN."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.data import load_dataset
from npdpsnn.training import RunRecorder, TrainConfig, fit


@pytest.fixture(scope="module")
def ann_run(tmp_path_factory):
    try:
        data = load_dataset("mnist", download=False)
    except Exception as exc:  # no data here
        pytest.skip(f"MNIST not available: {exc}")
    out = tmp_path_factory.mktemp("ann")
    cfg = TrainConfig.from_values("mnist", {
        "net": "4C7S3-A2S2-10", "model.kind": "ann", "model.activation": "relu", "model.bias": False,
        "dp.enabled": False, "dp.sampling": "shuffle", "optim.batch_size": 50, "optim.lr": 0.05,
        "optim.epochs": 1, "run.limit_train": 300})
    fit(cfg, data, backend="reference", evaluate_test=False, callbacks=[RunRecorder(out)])
    return out


def test_convert_then_leakage(ann_run, tmp_path):
    snn_dir = tmp_path / "snn"
    r = CliRunner().invoke(main, ["convert", str(ann_run), "--out", str(snn_dir), "-T", "10", "--per-class", "1",
                                  "--iterations", "3", "--evaluate", "50"])
    assert r.exit_code == 0, r.output
    rec = json.loads((snn_dir / "conversion.json").read_text())
    assert len(rec["thresholds"]) == 1 and 0 <= rec["snn_test_accuracy"] <= 1
    assert (snn_dir / "model.h5").is_file() and (snn_dir / "impressions.npz").is_file()
    r = CliRunner().invoke(main, ["leakage", str(snn_dir / "model.h5"), "mnist", "--judge", str(ann_run),
                                  "--per-class", "1", "--iterations", "2", "--means-from", "500"])
    assert r.exit_code == 0, r.output
    scores = json.loads((snn_dir / "leakage.json").read_text())
    assert 0 <= scores["judge_confidence"] <= 1 and scores["n"] == 10


def test_convert_refuses_a_tanh_ann(tmp_path):
    from npdpsnn.network import Network
    from npdpsnn.training.checkpoint import save_model

    save_model(tmp_path / "model.h5", Network.from_spec("10", (1, 28, 28), kind="ann"))
    r = CliRunner().invoke(main, ["convert", str(tmp_path / "model.h5"), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0


def test_convert_with_dp_finetuning_states_its_privacy(ann_run, tmp_path):
    out = tmp_path / "snn"
    r = CliRunner().invoke(main, ["convert", str(ann_run), "--out", str(out), "-T", "10", "--per-class", "5",
                                  "--iterations", "2", "--finetune-epochs", "1", "--finetune-T", "5",
                                  "--finetune-sigma", "1.0", "--finetune-clip", "1.0"])
    assert r.exit_code == 0, r.output
    dp = json.loads((out / "conversion.json").read_text())["finetune_dp"]
    assert dp["sigma"] == 1.0 and dp["clip"] == 1.0 and dp["sample_rate"] == pytest.approx(25 / 50)
    assert dp["steps"] == 2 and dp["rdp_epsilon"] > 0 and "impressions" in dp["protects"]


def test_convert_refuses_dp_without_finetuning(ann_run, tmp_path):
    r = CliRunner().invoke(main, ["convert", str(ann_run), "--out", str(tmp_path / "o"), "--finetune-sigma", "1.0"])
    assert r.exit_code == 2 and "finetune-epochs" in r.output
    assert not (tmp_path / "o").exists()
