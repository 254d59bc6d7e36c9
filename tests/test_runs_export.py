"""``npdpsnn runs`` (list and compare) and ``npdpsnn export --npz``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.training.checkpoint import load_network
from npdpsnn.training.export import read_npz

SMALL = ["--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300", "--batch-size", "100", "--quiet",
         "--epochs", "1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, shared_data_dir):
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("a", ["--sigma", "1"]), ("b", ["--sigma", "2", "--lr", "0.1"])):
        r = CliRunner().invoke(main, ["train", "mnist", *SMALL, *extra, "--out", str(root / "sweep" / name)])
        assert r.exit_code == 0, r.output
    return root


def test_runs_lists_and_compares(two_runs):
    r = CliRunner().invoke(main, ["runs", str(two_runs), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["sigma"] for row in rows] == [1.0, 2.0] and rows[0]["epochs"] == "1/1"
    assert rows[0]["rdp_epsilon"] > rows[1]["rdp_epsilon"]
    table = CliRunner().invoke(main, ["runs", str(two_runs)]).output
    assert "mnist" in table and "best_test_accuracy" in table
    r = CliRunner().invoke(main, ["runs", "--compare", str(two_runs / "sweep" / "a"), str(two_runs / "sweep" / "b"),
                                  "--json"])
    diff = json.loads(r.output)
    assert set(diff["config"]) == {"dp.sigma", "optim.lr"} and "rdp_epsilon" in diff["results"]
    r = CliRunner().invoke(main, ["runs", "--compare", str(two_runs), str(two_runs)])
    assert r.exit_code == 2 and "not a run folder" in r.output


def test_export_npz_loads_with_numpy_alone(two_runs, tmp_path):
    run = two_runs / "sweep" / "a"
    out = tmp_path / "w.npz"
    r = CliRunner().invoke(main, ["export", str(run / "model.h5"), "--npz", str(out)])
    assert r.exit_code == 0, r.output
    with np.load(out, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        assert meta["spec"] == "4C5S2-P2S2-16-10" and meta["model_config"]["T"] == 2
    meta, arrays = read_npz(out)
    net = load_network(run)
    assert set(arrays) == set(net.params)
    for k, v in arrays.items():
        assert np.array_equal(v, net.params[k])
