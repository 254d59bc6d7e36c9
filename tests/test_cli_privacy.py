"""``npdpsnn privacy``: table and JSON output agree with the library; bad input exits 2 on one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.privacy.accountants import (
    calibrate_sigma,
    clt_epsilon,
    clt_mu,
    pld_epsilon,
    rdp_epsilon,
)

MNIST = ["--batch-size", "250", "--dataset-size", "60000", "--epochs", "60"]
KEYS = {"sigma", "sample_rate", "steps", "delta", "rdp_epsilon", "clt_epsilon", "clt_mu", "pld_epsilon"}


def _run(*args):
    return CliRunner().invoke(main, ["privacy", *args])


def _json(*args):
    res = _run(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_json_all_accountants_match_library():
    out = _json("--sigma", "1.0", *MNIST, "--delta", "1e-5")
    assert KEYS <= set(out)
    q, steps = 250 / 60000, 60 * 240  # steps = epochs * ceil(N / B)
    assert out["sample_rate"] == q and out["steps"] == steps and out["sigma"] == 1.0 and out["delta"] == 1e-5
    assert out["rdp_epsilon"] == rdp_epsilon(q, 1.0, steps, 1e-5)
    assert out["clt_mu"] == pytest.approx(clt_mu(q, 1.0, steps), rel=1e-14)
    assert out["clt_epsilon"] == pytest.approx(clt_epsilon(q, 1.0, steps, 1e-5), rel=1e-12)
    assert out["pld_epsilon"] == pld_epsilon(q, 1.0, steps, 1e-5)
    assert out["covered_by_analysis"] is True and out["target_epsilon"] is None


def test_steps_use_ceil_of_dataset_over_batch():
    # Extended Yale B train split: 1933 images, batch 256 -> ceil(1933/256) = 8 steps per epoch.
    out = _json("--sigma", "2.5", "--batch-size", "256", "--dataset-size", "1933", "--epochs", "80", "--accountant", "gdp")
    assert out["steps"] == 640 and out["sample_rate"] == 256 / 1933
    assert out["rdp_epsilon"] is None and out["pld_epsilon"] is None
    assert out["clt_epsilon"] == pytest.approx(clt_epsilon(256 / 1933, 2.5, 640, 1e-5), rel=1e-12)


def test_sample_rate_and_steps_single_accountant():
    out = _json("--sigma", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--accountant", "rdp")
    assert out["rdp_epsilon"] == pytest.approx(7.32911117143, abs=1e-7)  # Opacus' pinned value
    assert out["clt_epsilon"] is None and out["clt_mu"] is None and out["pld_epsilon"] is None
    assert out["batch_size"] is None and out["epochs"] is None


def test_table_output():
    res = _run("--sigma", "1.6", *MNIST)
    assert res.exit_code == 0, res.output
    text = res.stdout
    q, steps = 250 / 60000, 14400
    assert "14400" in text and "60 epochs x 240 steps" in text
    assert f"{rdp_epsilon(q, 1.6, steps, 1e-5):.4f}" in text  # 1.4626 (paper MA-eps 1.46)
    assert f"{clt_epsilon(q, 1.6, steps, 1e-5):.4f}" in text  # 1.3230 (paper CLT-eps 1.32)
    assert "mu = 0.3457" in text  # paper CLT-mu 0.35
    assert f"{pld_epsilon(q, 1.6, steps, 1e-5):.4f}" in text
    for label in ("RDP", "CLT", "PLD"):
        assert label in text
    assert res.stderr == ""


def test_target_epsilon_calibrates():
    out = _json("--target-epsilon", "2", "--sample-rate", "0.01", "--steps", "1000")
    sigma = calibrate_sigma(2.0, 0.01, 1000, 1e-5, "rdp")  # default accountant when calibrating
    assert out["sigma"] == sigma and out["calibrated_with"] == "rdp" and out["target_epsilon"] == 2.0
    assert out["rdp_epsilon"] <= 2.0
    assert out["rdp_epsilon"] == rdp_epsilon(0.01, sigma, 1000, 1e-5)
    assert all(out[k] is not None for k in KEYS)  # epsilons of every accountant at that sigma
    gdp = _json("--target-epsilon", "2", "--sample-rate", "0.01", "--steps", "1000", "--accountant", "gdp")
    assert gdp["sigma"] == calibrate_sigma(2.0, 0.01, 1000, 1e-5, "gdp") and gdp["clt_epsilon"] <= 2.0
    res = _run("--target-epsilon", "2", "--sample-rate", "0.01", "--steps", "1000", "--accountant", "gdp")
    assert res.exit_code == 0 and f"{gdp['sigma']:g}" in res.stdout and "clt epsilon <= 2" in res.stdout


def test_tiny_delta_skips_pld_unless_asked_for():
    out = _json("--sigma", "1", "--sample-rate", "0.01", "--steps", "100", "--delta", "1e-10")
    assert out["pld_epsilon"] is None and out["rdp_epsilon"] == rdp_epsilon(0.01, 1.0, 100, 1e-10)
    res = _run("--sigma", "1", "--sample-rate", "0.01", "--steps", "100", "--delta", "1e-10")
    assert res.exit_code == 0 and "needs delta >= 1e-08" in res.stdout


def test_shuffle_sampling_is_labelled():
    out = _json("--sigma", "1", "--sample-rate", "0.01", "--steps", "10", "--accountant", "rdp", "--sampling", "shuffle")
    assert out["covered_by_analysis"] is False and out["sampling"] == "shuffle"
    res = _run("--sigma", "1", "--sample-rate", "0.01", "--steps", "10", "--accountant", "rdp", "--sampling", "shuffle")
    assert "NOT covered" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--sigma", "0", "--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "-1", "--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "nan", "--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "abc", "--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "1", "--sample-rate", "0", "--steps", "5"],
        ["--sigma", "1", "--sample-rate", "1.5", "--steps", "5"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "0"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "2.5"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "--delta", "0"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "--delta", "1"],
        ["--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "1", "--target-epsilon", "1", "--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "--epochs", "3"],
        ["--sigma", "1", "--sample-rate", "0.1"],
        ["--sigma", "1", "--batch-size", "250", "--dataset-size", "60000"],
        ["--sigma", "1"],
        ["--sigma", "1", "--batch-size", "300", "--dataset-size", "200", "--epochs", "3"],
        ["--sigma", "1", "--batch-size", "0", "--dataset-size", "200", "--epochs", "3"],
        ["--sigma", "1", "--batch-size", "10", "--dataset-size", "200", "--epochs", "0"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "--accountant", "moments"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "--bogus"],
        ["--target-epsilon", "0", "--sample-rate", "0.1", "--steps", "5"],
        ["--target-epsilon", "1", "--sample-rate", "0.1", "--steps", "5", "--accountant", "all"],
        ["--target-epsilon", "0.001", "--sample-rate", "0.1", "--steps", "5"],
        ["--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "--accountant", "pld", "--delta", "1e-13"],
    ],
)
def test_bad_values_exit_2_with_one_line(args):
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_help_works():
    res = _run("--help")
    assert res.exit_code == 0 and "--target-epsilon" in res.stdout
