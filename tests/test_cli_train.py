"""End-to-end tests of ``npdpsnn train`` / ``npdpsnn eval`` on a small MNIST subset."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.training.checkpoint import load_network
from npdpsnn.training.safe_hdf5 import seal

SMALL = ["--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300", "--batch-size", "100", "--quiet"]


def _run(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _params(run: Path) -> dict:
    with h5py.File(run / "checkpoint.h5") as f:
        return {k: f["params"][k][()] for k in f["params"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("runs") / "a"
    r = _run(["train", "mnist", "--sigma", "1.0", "--epochs", "2", "--out", str(out), *SMALL])
    assert r.exit_code == 0, r.output
    return out


def test_train_writes_run_records(trained):
    assert {p.name for p in trained.iterdir()} >= {"config.json", "metrics.csv", "summary.json", "checkpoint.h5"}
    assert not [p for p in trained.iterdir() if p.name.startswith(".")]  # no temp files left behind
    summary = json.loads((trained / "summary.json").read_text())
    for key in ("test_accuracy", "best_test_accuracy", "best_epoch", "rdp_epsilon", "clt_epsilon", "clt_mu",
                "pld_epsilon", "sigma", "sample_rate", "steps", "delta", "sampling", "seed", "versions",
                "privacy_statement"):
        assert key in summary
    assert summary["sigma"] == 1.0 and summary["sample_rate"] == pytest.approx(100 / 300)
    assert summary["steps"] == 6 and summary["epochs_completed"] == 2
    assert 0.0 < summary["pld_epsilon"] <= summary["rdp_epsilon"]
    assert "DP-SGD" in summary["privacy_statement"]
    rows = _metrics(trained)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["rdp_epsilon"]) > float(rows[0]["rdp_epsilon"]) > 0
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["spec"] == "4C5S2-P2S2-16-10" and cfg["model"]["T"] == 2


def test_accountant_values_match_the_library(trained):
    from npdpsnn.privacy.accountants import clt_mu, rdp_epsilon

    s = json.loads((trained / "summary.json").read_text())
    assert s["rdp_epsilon"] == pytest.approx(rdp_epsilon(1 / 3, 1.0, 6, 1e-5), rel=1e-12)
    assert s["clt_mu"] == pytest.approx(clt_mu(1 / 3, 1.0, 6), rel=1e-12)


def test_eval_matches_summary_and_model_loads_with_numpy(trained, shared_data_dir):
    r = _run(["eval", str(trained), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["test_accuracy"] == json.loads((trained / "summary.json").read_text())["test_accuracy"]
    net = load_network(trained / "checkpoint.h5")
    from npdpsnn.data import load_dataset

    ds = load_dataset("mnist")
    x = ds.test_x[:20]
    np.testing.assert_allclose(net.forward(x, backend="reference"), net.forward(x), atol=1e-4)


def test_resume_equals_uninterrupted_run(trained, tmp_path):
    b = tmp_path / "b"
    assert _run(["train", "mnist", "--sigma", "1.0", "--epochs", "1", "--out", str(b), *SMALL]).exit_code == 0
    r = _run(["train", "mnist", "--resume", str(b), "--epochs", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    pa, pb = _params(trained), _params(b)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    ma, mb = _metrics(trained), _metrics(b)
    timing = {"seconds", "examples_per_second"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in ma] == \
        [{k: v for k, v in r.items() if k not in timing} for r in mb]
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (trained, b))
    for k in ("rdp_epsilon", "clt_epsilon", "clt_mu", "pld_epsilon", "steps", "test_accuracy"):
        assert sa[k] == sb[k]
    with h5py.File(b / "checkpoint.h5") as f:
        assert json.loads(f.attrs["accountant"]) is not None and int(f.attrs["step"]) == 6


def _err(args, env=None):
    r = CliRunner().invoke(main, args, env=env)
    return r.exit_code, r.output


@pytest.mark.parametrize("extra, message", [
    (["--sigma", "-1"], "sigma"),
    (["--sigma", "1", "--clip", "0"], "clip"),
    (["--sigma", "1", "--batch-size", "301"], "batch"),
    (["--sigma", "1", "-T", "0"], "T"),
    (["--sigma", "1", "--epochs", "0"], "epochs"),
    (["--sigma", "1", "--target-epsilon", "1"], "exactly one"),
    (["--target-epsilon", "1e-9"], "epsilon"),
    (["--sigma", "1", "--net", "16X3"], "16X3"),
    (["--sigma", "1", "--delta", "2"], "delta"),
    (["--sigma", "1", "--lr", "nan"], "lr"),
])
def test_bad_hyperparameters_one_line_exit_2(extra, message, tmp_path):
    args = ["train", "mnist", "--limit-train", "300", "--epochs", "1", "--quiet", "--out", str(tmp_path / "r"), *extra]
    code, out = _err(args)
    assert code == 2, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert "Traceback" not in out and message.lower() in out.lower(), out
    assert len(lines) <= 3  # click usage errors add a usage line and a hint
    assert not (tmp_path / "r" / "checkpoint.h5").exists()


def test_unknown_dataset_exit_2():
    code, out = _err(["train", "cifar10", "--sigma", "1"])
    assert code == 2 and "cifar10" in out


def test_corrupt_data_file_exit_2(tmp_path, shared_data_dir):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for f in (shared_data_dir / "mnist").iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    p = d / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:1000])  # truncated
    code, out = _err(["train", "mnist", "--sigma", "1", "--data-dir", str(tmp_path / "data"), "--quiet",
                      "--out", str(tmp_path / "r")])
    assert code == 2 and "train-labels-idx1-ubyte.gz" in out and "Traceback" not in out


def test_missing_data_without_network_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("NPDPSNN_MNIST_MIRROR", "http://127.0.0.1:9/")  # nothing listens on the discard port
    code, out = _err(["train", "mnist", "--sigma", "1", "--data-dir", str(tmp_path), "--quiet",
                      "--out", str(tmp_path / "r")])
    assert code == 2 and "Traceback" not in out and out.startswith("Error:")


def test_unwritable_output_folder_exit_2(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        # root may write into a 0o500 folder; /proc refuses everyone
        target = ro / "run" if not os.access(ro, os.W_OK) else Path("/proc/npdpsnn-test-run")
        code, out = _err(["train", "mnist", "--sigma", "1", *SMALL, "--epochs", "1", "--out", str(target)])
        assert code == 2 and "Traceback" not in out and str(target) in out, out
    finally:
        ro.chmod(0o700)


def test_output_file_in_place_of_folder_exit_2(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, out = _err(["train", "mnist", "--sigma", "1", *SMALL, "--epochs", "1", "--out", str(f / "run")])
    assert code == 2 and "Traceback" not in out


def test_corrupt_checkpoint_exit_2(trained, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.h5").write_bytes((trained / "checkpoint.h5").read_bytes()[:3000])
    for args in (["eval", str(bad)], ["train", "mnist", "--resume", str(bad), "--epochs", "3"]):
        code, out = _err(args)
        assert code == 2 and "checkpoint" in out.lower() and "Traceback" not in out, out


def test_conflicting_resume_is_refused(trained):
    code, out = _err(["train", "mnist", "--resume", str(trained), "--epochs", "3", "--sigma", "2"])
    assert code == 2 and "conflicts" in out
    code, out = _err(["train", "mnist", "--resume", str(trained), "--epochs", "3", "--neuron", "lif"])
    assert code == 2 and "neuron" in out
    code, out = _err(["train", "mnist", "--resume", str(trained), "--epochs", "2"])
    assert code == 2 and "nothing to do" in out


def test_existing_run_needs_resume(trained):
    code, out = _err(["train", "mnist", "--sigma", "1", *SMALL, "--out", str(trained)])
    assert code == 2 and "--resume" in out


def test_no_dp_and_target_epsilon(tmp_path):
    r = _run(["train", "mnist", "--no-dp", "--epochs", "1", "--out", str(tmp_path / "n"), *SMALL])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert s["dp"] is False and s["rdp_epsilon"] is None and "without differential privacy" in s["privacy_statement"]
    r = _run(["train", "mnist", "--target-epsilon", "3", "--epochs", "1", "--out", str(tmp_path / "e"), *SMALL])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert s["rdp_epsilon"] <= 3.0 and s["sigma"] > 0


def test_shuffle_sampling_is_labelled_not_covered(tmp_path):
    r = _run(["train", "mnist", "--sigma", "1", "--sampling", "shuffle", "--epochs", "1",
              "--out", str(tmp_path / "s"), *SMALL])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert s["privacy_covered_by_analysis"] is False and "not covered" in s["privacy_statement"]
    assert s["steps"] == 3


def _long_run(out, data_dir) -> subprocess.Popen:
    """A 200-epoch training in another process, writing into ``out``."""
    cmd = [sys.executable, "-m", "npdpsnn.cli", "train", "mnist", "--sigma", "1", *SMALL, "--epochs", "200",
           "--out", str(out)]
    env = {**os.environ, "NPDPSNN_DATA": str(data_dir)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_interrupt_leaves_last_checkpoint_resumable(tmp_path, shared_data_dir):
    out = tmp_path / "k"
    proc = _long_run(out, shared_data_dir)
    deadline = time.time() + 120
    while not (out / "checkpoint.h5").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    net = load_network(out)  # intact
    assert np.all(np.isfinite(net.theta))
    epoch = len(_metrics(out))
    with h5py.File(out / "checkpoint.h5") as f:  # records and checkpoint agree
        assert int(f.attrs["epoch"]) == epoch
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == epoch
    r = _run(["train", "mnist", "--resume", str(out), "--epochs", str(epoch + 1)])
    assert r.exit_code == 0, r.output
    assert len(_metrics(out)) == epoch + 1


def test_release_file_holds_weights_only(trained, shared_data_dir):
    with h5py.File(trained / "model.h5") as f:
        assert f.attrs["format"] == b"npdpsnn-model"
        assert not {"rng_sampling", "rng_noise", "train_config", "accountant"} & set(f.attrs)
    a, b = load_network(trained / "model.h5"), load_network(trained / "checkpoint.h5")
    assert np.array_equal(a.theta, b.theta)
    r = _run(["eval", str(trained / "model.h5"), "mnist", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["test_accuracy"] == json.loads((trained / "summary.json").read_text())["test_accuracy"]
    r = _run(["eval", str(trained / "model.h5"), "--json"])  # the file names its dataset
    assert json.loads(r.stdout)["test_accuracy"] == json.loads((trained / "summary.json").read_text())["test_accuracy"]
    from npdpsnn.training.checkpoint import save_model

    save_model(trained.parent / "bare.h5", a)  # a release file without a description
    code, out = _err(["eval", str(trained.parent / "bare.h5")])
    assert code == 2 and "DATASET" in out


def test_privacy_statement_says_what_must_stay_secret(trained):
    st = json.loads((trained / "summary.json").read_text())["privacy_statement"]
    assert "seed" in st and "model.h5" in st and "train_loss" in st


def test_resume_refuses_other_training_data(trained, tmp_path):
    import shutil

    c = tmp_path / "c"
    shutil.copytree(trained, c)
    with h5py.File(c / "checkpoint.h5", "r+") as f:
        f.attrs["data_fingerprint"] = "0" * 64
        seal(f)  # a consistent file whose training data differ (not a bit flip)
    code, out = _err(["train", "mnist", "--resume", str(c), "--epochs", "3"])
    assert code == 2 and "training data differ" in out


def test_infinite_epsilon_is_recorded_not_a_crash(tmp_path):
    out = tmp_path / "inf"
    r = _run(["train", "mnist", "--sigma", "0.02", "--epochs", "1", "--out", str(out), *SMALL])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["clt_epsilon"] == "inf" and s["rdp_epsilon"] != "inf"
    assert load_network(out).num_params > 0


def test_os_entropy_runs_differ_and_derived_runs_repeat(tmp_path):
    runs = {}
    for name, extra in (("d1", []), ("d2", []), ("o1", ["--noise-seed", "os"]), ("o2", ["--noise-seed", "os"])):
        r = _run(["train", "mnist", "--sigma", "1", "--epochs", "1", "--out", str(tmp_path / name), *SMALL, *extra])
        assert r.exit_code == 0, r.output
        runs[name] = load_network(tmp_path / name).theta
    assert np.array_equal(runs["d1"], runs["d2"])
    assert not np.array_equal(runs["o1"], runs["o2"])


def test_progress_lines_when_not_a_terminal_and_resume_takes_the_dataset(tmp_path):
    out = tmp_path / "p"
    args = ["train", "mnist", "--sigma", "1", "--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "600",
            "--batch-size", "50", "--epochs", "1", "--out", str(out)]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "preparing kernels" in r.output and "kernels ready" in r.output
    steps = [ln for ln in r.output.splitlines() if ln.startswith("epoch 1 step ")]
    assert 3 <= len(steps) <= 10  # a line every tenth of an epoch, not one per step
    r = CliRunner().invoke(main, ["train", "--resume", str(out), "--epochs", "2", "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(_metrics(out)) == 2
    code, msg = _err(["train", "--sigma", "1"])
    assert code == 2 and "DATASET" in msg


def test_default_folder_names_say_what_differs(tmp_path, monkeypatch):
    from npdpsnn.training.config import TrainConfig
    from npdpsnn.training.naming import run_name

    paper = TrainConfig.from_values("mnist", {"dp.sigma": 1.0, "net": "net2", "optim.epochs": 60,
                                              "optim.batch_size": 250, "dp.clip": 1.5})
    assert run_name(paper) == "mnist-snn-sigma1-seed0"
    ann = paper.with_values({"model.kind": "ann", "model.T": 10, "optim.epochs": 5, "run.limit_train": 2000,
                             "run.threads": 1})
    assert run_name(ann) == "mnist-ann-sigma1-epochs5-limit_train2000-seed0"  # T and threads change nothing here
    monkeypatch.chdir(tmp_path)
    r = _run(["train", "mnist", "--model", "ann", "--sigma", "1", *SMALL, "--epochs", "1"])
    assert r.exit_code == 0, r.output
    (name,) = [p.name for p in (tmp_path / "runs").iterdir()]
    assert name == "mnist-ann-sigma1-net4C5S2-P2S2-16-10-batch_size100-epochs1-limit_train300-seed0"


def test_second_writer_is_refused_and_a_killed_runs_lock_is_stale(tmp_path, shared_data_dir):
    out = tmp_path / "locked"
    proc = _long_run(out, shared_data_dir)
    try:
        deadline = time.time() + 120
        while not (out / ".lock").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        code, msg = _err(["train", "mnist", "--sigma", "1", *SMALL, "--epochs", "1", "--out", str(out)])
        assert code == 2 and ("in use by process" in msg or "already holds a run" in msg), msg
        while not (out / "checkpoint.h5").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        code, msg = _err(["train", "--resume", str(out), "--epochs", "300"])
        assert code == 2 and "in use by process" in msg, msg
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up: the lock file stays behind
        proc.wait(timeout=60)
    r = _run(["train", "--resume", str(out), "--epochs", str(len(_metrics(out)) + 1)])
    assert r.exit_code == 0, r.output  # the dead process's lock is not a lock


def test_conversion_model_options_from_the_command_line(tmp_path):
    args = ["train", "mnist", "--model", "ann", "--activation", "relu", "--no-bias", "--no-dp", "--net",
            "4C5S2-A2S2-16-10", *SMALL[4:], "--epochs", "1", "--out", str(tmp_path / "a")]
    r = _run(args)  # the Numba kernels compute these options
    assert r.exit_code == 0, r.output
    net = load_network(tmp_path / "a")
    assert net.config.activation == "relu" and not net.config.bias and not any(k.endswith(".bias") for k in net.params)
    r = _run(["train", "mnist", "--reset", "subtract", "--thresholds", "1,0.5", "--sigma", "1", *SMALL, "--epochs",
              "1", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    cfg = load_network(tmp_path / "s").config
    assert cfg.reset == "subtract" and cfg.thresholds == (1.0, 0.5)
    poisson = ["train", "mnist", "--encoding", "poisson", "--no-dp", *SMALL, "--epochs", "1"]
    code, out = _err([*poisson, "--out", str(tmp_path / "p")])  # not in the kernels: one line, not a wrong result
    assert code == 2 and "--device reference" in out and len(out.strip().splitlines()) == 1, out
    r = _run([*poisson, "--device", "reference", "--out", str(tmp_path / "p2")])
    assert r.exit_code == 0, r.output
