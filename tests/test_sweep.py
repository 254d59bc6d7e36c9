"""``npdpsnn sweep``: experiment files, grid expansion, seeds, skip/resume, results table, executors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.errors import UserError
from npdpsnn.paper import ITEMS, SCALES
from npdpsnn.privacy.accountants.analyses import metric_columns
from npdpsnn.sweep import load_experiment, plan_runs, run_sweep
from npdpsnn.sweep.executors import ProcessPoolSweepExecutor, threads_per_worker
from npdpsnn.sweep.experiment import shipped_experiments
from npdpsnn.sweep.plan import derive_seed
from npdpsnn.sweep.results import WALL_CLOCK_COLUMNS, read_run, result_columns
from npdpsnn.training.checkpoint import load_network

REPO = Path(__file__).resolve().parents[1]

TINY = """
[experiment]
name = "tiny"
[base]
dataset = "mnist"
net = "4C5S2-P2S2-16-10"
"model.T" = 2
"optim.epochs" = 2
"optim.batch_size" = 50
"run.limit_train" = 200
[grid]
"dp.sigma" = [1.0, 1.6]
"model.kind" = ["snn", "ann"]
"""


def _experiment(tmp_path: Path, text: str, name: str = "exp.toml", scale: str | None = None):
    path = tmp_path / name
    path.write_text(text)
    return load_experiment(path, scale)


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]


def _same_runs(a: Path, b: Path, names: list[str]) -> None:
    """Run folders ``a/runs/NAME`` and ``b/runs/NAME`` hold bit-identical weights and metrics."""
    for name in names:
        ra, rb = read_run(a / "runs" / name), read_run(b / "runs" / name)
        assert _strip(ra.metrics) == _strip(rb.metrics), name
        wa, wb = load_network(a / "runs" / name / "model.h5"), load_network(b / "runs" / name / "model.h5")
        assert np.array_equal(wa.theta, wb.theta), name


@pytest.fixture(scope="module")
def serial(tmp_path_factory, shared_data_dir):
    """The TINY sweep run serially in this process: the reference of the executor tests."""
    folder = tmp_path_factory.mktemp("serial")
    experiment = _experiment(folder, TINY)
    return experiment, run_sweep(experiment, folder / "sweep")


# ------------------------------------------------------------------ experiment files and grid
def test_grid_expansion_names_values_and_defaults(tmp_path):
    text = TINY.replace('name = "tiny"', 'name = "tiny"\nreplicates = 2').replace('"dp.sigma" = [1.0, 1.6]\n', "")
    exp = _experiment(tmp_path, text + """
privacy = [{ label = "nodp", "dp.enabled" = false }, { label = "strong", "dp.sigma" = 2.0, "dp.clip" = 1.0 }]
""")
    runs = plan_runs(exp)
    assert [a.name for a in exp.axes] == ["model.kind", "privacy"]
    assert len(runs) == 2 * 2 * 2
    assert runs[0].name == "kind-snn_privacy-nodp_rep-0"
    assert runs[1].name == "kind-snn_privacy-nodp_rep-1"
    strong = next(r for r in runs if r.name == "kind-ann_privacy-strong_rep-0")
    assert strong.grid == {"model.kind": "ann", "privacy": "strong"}
    cfg = strong.config
    assert (cfg.model.kind, cfg.dp.sigma, cfg.dp.clip, cfg.model.T) == ("ann", 2.0, 1.0, 2)
    assert cfg.optim.lr == 0.25 and cfg.run.physical_batch == 100  # dataset defaults; 2 x batch
    assert not runs[0].config.dp.enabled


def test_nested_tables_and_dotted_keys_are_the_same(tmp_path):
    a = _experiment(tmp_path, TINY, "a.toml")
    b = _experiment(tmp_path, TINY.replace('"optim.epochs" = 2', "optim.epochs = 2")
                    .replace('[grid]\n"dp.sigma" = [1.0, 1.6]', '[grid]\ndp.sigma = [1.0, 1.6]'), "b.toml")
    assert [r.config for r in plan_runs(a)] == [r.config for r in plan_runs(b)]


def test_scales_override_base_grid_and_replicates(tmp_path):
    text = TINY + """
[scales.small]
base = { "optim.epochs" = 1 }
grid = { "dp.sigma" = [0.5], "model.neuron" = ["if", "lif"] }
replicates = 2
"""
    full = _experiment(tmp_path, text, scale="full")
    small = _experiment(tmp_path, text, scale="small")
    assert len(plan_runs(full)) == 4 and full.label == "tiny-full"
    runs = plan_runs(small)
    assert len(runs) == 1 * 2 * 2 * 2
    assert {r.config.optim.epochs for r in runs} == {1} and {r.config.dp.sigma for r in runs} == {0.5}
    assert runs[0].name == "sigma-0.5_kind-snn_neuron-if_rep-0"


@pytest.mark.parametrize("text, message", [
    ("[oops]\n", "unknown key oops"),
    ("[experiment]\nreplicates = 0\n[base]\ndataset = 'mnist'\n", "experiment.replicates must be an integer >= 1"),
    ("[experiment]\nseed_scope = 'x'\n[base]\ndataset = 'mnist'\n", "experiment.seed_scope"),
    ("[base]\ndataset = 'mnist'\n'dp.sgma' = 1.0\n", "base.dp.sgma is not a configuration field"),
    ("[base]\n'dp.sigma' = 1.0\n", "base.dataset is required"),
    ("[base]\ndataset = 'cifar'\n", "dataset must be one of"),
    ("[base]\ndataset = 'mnist'\n[grid]\n'dp.sigma' = []\n", "grid.dp.sigma must be a non-empty list"),
    ("[base]\ndataset = 'mnist'\n[grid]\n'dp.sigma' = 1.0\n", "grid.dp.sigma must be a non-empty list"),
    ("[base]\ndataset = 'mnist'\n[grid]\n'dp.sigma' = [1.0, 1.0]\n", "grid.dp.sigma repeats a value"),
    ("[base]\ndataset = 'mnist'\n[grid]\n'dp.sigma' = [[1.0]]\n", "grid.dp.sigma[0] must be a string, number"),
    ("[base]\ndataset = 'mnist'\n[grid]\n'dp.sigma' = [{ 'dp.sigma' = 1.0 }]\n", "needs a free axis name"),
    ("[base]\ndataset = 'mnist'\n[grid]\np = [{ label = 'a' }]\n", "grid.p[0] sets no field"),
    ("[base]\ndataset = 'mnist'\n[grid]\np = [{ 'dp.sigma' = 1.0 }]\n'dp.sigma' = [2.0]\n",
     "dp.sigma is set by two grid axes"),
    ("[experiment]\nreplicates = 2\n[base]\ndataset = 'mnist'\n'run.seed' = 3\n", "either run.seed or"),
    ("[base]\ndataset = 'mnist'\n'dp.sigma' = -1.0\n", "run rep-0: dp.sigma must be > 0"),
    ("[base]\ndataset = 'mnist'\n'dp.sigma' = 1.0\n[scales.s]\nbase = 1\n", "scales.s.base must be a table"),
    ("[base]\ndataset = 'mnist'\n'dp.sigma' = 1.0\n[scales.s]\nbad = 1\n", "unknown key scales.s.bad"),
    ("[base\n", "not valid TOML"),
])
def test_schema_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        plan_runs(_experiment(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "exp.toml"))


def test_unknown_scale_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="no scale 'huge'"):
        _experiment(tmp_path, TINY, scale="huge")
    with pytest.raises(UserError, match="no experiment file"):
        load_experiment(tmp_path / "missing.toml")


def test_cli_sweep_bad_file_is_one_error_line(tmp_path):
    (tmp_path / "bad.toml").write_text("[base]\ndataset = 'mnist'\n'dp.sgma' = 1.0\n")
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "bad.toml")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert "base.dp.sgma is not a configuration field" in result.output


def test_shipped_experiments_plan_at_every_scale():
    assert shipped_experiments() == tuple(sorted(ITEMS))
    for name in shipped_experiments():
        for scale in SCALES:
            runs = plan_runs(load_experiment(name, scale))
            assert runs and len({r.name for r in runs}) == len(runs)
    full = plan_runs(load_experiment("table1", "full"))
    assert {(r.config.optim.epochs, r.config.optim.batch_size, r.config.dp.clip, r.config.spec or r.config.net)
            for r in full} == {(60, 250, 1.5, "net2")}


# ------------------------------------------------------------------ seeds
def test_seed_derivation_is_spawn_and_stable_when_the_grid_grows(tmp_path):
    small = plan_runs(_experiment(tmp_path, TINY.replace('name = "tiny"', 'name = "tiny"\nreplicates = 2'), "a.toml"))
    grown = plan_runs(_experiment(tmp_path, TINY.replace('name = "tiny"', 'name = "tiny"\nreplicates = 3')
                                  .replace("[1.0, 1.6]", "[0.5, 1.0, 1.6]"), "b.toml"))
    seeds = {r.name: r.config.run.seed for r in grown}
    assert all(seeds[r.name] == r.config.run.seed for r in small)
    for r in grown:
        expected = np.random.SeedSequence(0).spawn(r.replicate + 1)[r.replicate].generate_state(1)[0]
        assert r.config.run.seed == int(expected)
    assert len({r.config.run.seed for r in grown}) == 3  # one per replicate: paired comparisons

    per_run = TINY.replace('name = "tiny"', 'name = "tiny"\nseed_scope = "run"\nbase_seed = 7')
    a = {r.name: r.config.run.seed for r in plan_runs(_experiment(tmp_path, per_run, "c.toml"))}
    b = {r.name: r.config.run.seed for r in plan_runs(_experiment(tmp_path, per_run.replace(
        '"model.kind" = ["snn", "ann"]', '"model.kind" = ["snn", "ann"]\n"model.T" = [2]'), "d.toml"))}
    assert len(set(a.values())) == len(a) == 4  # every run its own seed
    assert derive_seed(7, 0, "run", {"dp.sigma": 1.0, "model.kind": "snn"}) == a["sigma-1.0_kind-snn_rep-0"]
    assert set(b.values()).isdisjoint(a.values())  # a new axis is a new grid point


def test_explicit_seed_is_used_as_given(tmp_path):
    runs = plan_runs(_experiment(tmp_path, TINY + '"run.seed" = [3, 4]\n'))
    assert sorted({r.config.run.seed for r in runs}) == [3, 4]


# ------------------------------------------------------------------ running, results, skip, resume
def test_results_table_columns_and_rows(serial):
    experiment, outcome = serial
    assert not outcome.failed and set(outcome.status.values()) == {"trained"}
    columns = result_columns(["dp.sigma", "model.kind"])
    assert outcome.columns == columns
    for c in (*metric_columns(), *(f"best_epoch_{c}" for c in metric_columns()), "final_test_accuracy",
              "best_test_accuracy", "best_epoch", "seconds", "run", "replicate", "dp.sigma", "model.kind"):
        assert c in columns
    header = (outcome.folder / "results.csv").read_text().splitlines()[0].split(",")
    assert header == columns
    rows = json.loads((outcome.folder / "results.json").read_text())
    assert [r["run"] for r in rows] == [r.name for r in outcome.runs] == [
        "sigma-1.0_kind-snn_rep-0", "sigma-1.0_kind-ann_rep-0", "sigma-1.6_kind-snn_rep-0", "sigma-1.6_kind-ann_rep-0"]
    for row in rows:
        record = read_run(outcome.folder / "runs" / row["run"])
        assert row["final_test_accuracy"] == record.metrics[-1]["test_accuracy"]
        assert row["best_test_accuracy"] == max(m["test_accuracy"] for m in record.metrics)
        assert row["rdp_epsilon"] == record.metrics[-1]["rdp_epsilon"] > 0
        assert row["epochs_completed"] == 2 and row["n_train"] == 200
    plan = json.loads((outcome.folder / "sweep.json").read_text())
    assert [r["name"] for r in plan["runs"]] == [r["run"] for r in rows]


def test_rerun_skips_finished_runs(serial, tmp_path):
    experiment, outcome = serial
    folder = tmp_path / "copy"
    shutil.copytree(outcome.folder, folder)
    before = {p: p.stat().st_mtime_ns for p in folder.glob("runs/*/checkpoint.h5")}
    again = run_sweep(experiment, folder)
    assert set(again.status.values()) == {"finished"}
    assert {p: p.stat().st_mtime_ns for p in folder.glob("runs/*/checkpoint.h5")} == before
    assert _strip(again.rows) == _strip(outcome.rows)


def test_longer_run_resumes_from_its_checkpoint_bit_identically(serial, tmp_path):
    experiment, outcome = serial
    one = _experiment(tmp_path, TINY.replace('"optim.epochs" = 2', '"optim.epochs" = 1'))
    first = run_sweep(one, tmp_path / "sweep")
    assert {r["epochs_completed"] for r in first.rows} == {1}
    resumed = run_sweep(experiment, tmp_path / "sweep")
    assert set(resumed.status.values()) == {"resumed"}
    _same_runs(outcome.folder, tmp_path / "sweep", [r.name for r in outcome.runs])
    assert _strip(resumed.rows) == _strip(outcome.rows)


def test_folder_holding_a_different_run_is_refused(serial, tmp_path):
    experiment, outcome = serial
    folder = tmp_path / "copy"
    shutil.copytree(outcome.folder, folder)
    changed = _experiment(tmp_path, TINY.replace('"optim.epochs" = 2', '"optim.epochs" = 2\n"optim.lr" = 0.1'))
    with pytest.raises(UserError, match="holds a different run"):
        run_sweep(changed, folder)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_failed_run_does_not_stop_the_others(tmp_path, shared_data_dir):
    exp = _experiment(tmp_path, TINY.replace('"dp.sigma" = [1.0, 1.6]', '"optim.lr" = [0.25, 1e300]')
                      .replace('"model.kind" = ["snn", "ann"]', '"model.kind" = ["ann"]')
                      .replace('"run.limit_train" = 200', '"run.limit_train" = 200\n"dp.sigma" = 1.0'), "f.toml")
    outcome = run_sweep(exp, tmp_path / "sweep")
    assert list(outcome.failed) == ["lr-1e+300_kind-ann_rep-0"]
    assert "diverged" in outcome.failed["lr-1e+300_kind-ann_rep-0"]
    assert [r["run"] for r in outcome.rows] == ["lr-0.25_kind-ann_rep-0"]
    with pytest.raises(UserError, match="1 of 2 runs failed"):
        outcome.check()


# ------------------------------------------------------------------ executors
def test_threads_per_worker_rule():
    assert threads_per_worker(1, 16) == 16 and threads_per_worker(3, 16) == 5 and threads_per_worker(4, 2) == 1
    with pytest.raises(UserError):
        threads_per_worker(0, 2)


def test_process_pool_equals_serial(serial, tmp_path):
    experiment, outcome = serial
    pooled = run_sweep(experiment, tmp_path / "pool", ProcessPoolSweepExecutor(2))
    assert not pooled.failed
    assert _strip(pooled.rows) == _strip(outcome.rows)
    _same_runs(outcome.folder, tmp_path / "pool", [r.name for r in outcome.runs])


def test_dask_local_cluster_equals_serial_bit_for_bit(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    from npdpsnn.sweep.dask_executor import DaskExecutor

    experiment, outcome = serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        executor = DaskExecutor(scheduler=cluster.scheduler_address, threads=1)
        try:
            assert executor.workers == 2
            dasked = run_sweep(experiment, tmp_path / "dask", executor)
        finally:
            executor.close()
    assert not dasked.failed and set(dasked.status.values()) == {"trained"}
    assert _strip(dasked.rows) == _strip(outcome.rows)
    _same_runs(outcome.folder, tmp_path / "dask", [r.name for r in outcome.runs])


def test_killed_sweep_resumes_losing_at_most_the_current_epoch(tmp_path, shared_data_dir):
    text = TINY.replace('"optim.epochs" = 2', '"optim.epochs" = 8').replace("[1.0, 1.6]", "[1.0]") \
        .replace('["snn", "ann"]', '["ann"]')
    path = tmp_path / "kill.toml"
    path.write_text(text)
    experiment = load_experiment(path)
    (name,) = [r.name for r in plan_runs(experiment)]
    summary = tmp_path / "killed" / "runs" / name / "summary.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "npdpsnn.cli", "sweep", str(path), "--out",
                             str(tmp_path / "killed"), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done_at_kill = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done_at_kill = json.loads(summary.read_text())["epochs_completed"]
            except (OSError, ValueError, KeyError):
                done_at_kill = 0
            if done_at_kill >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=60)
    if done_at_kill < 2 or done_at_kill >= 8:
        pytest.skip("the run ended before it could be killed mid-sweep")
    resumed = run_sweep(experiment, tmp_path / "killed")
    assert resumed.status == {name: "resumed"}
    record = read_run(tmp_path / "killed" / "runs" / name)
    # it continued from the last checkpoint it had written: at most the running epoch was lost
    assert done_at_kill <= record.summary["epochs_completed"] == 8
    reference = run_sweep(experiment, tmp_path / "reference")
    _same_runs(tmp_path / "reference", tmp_path / "killed", [name])
    assert _strip(resumed.rows) == _strip(reference.rows)


def test_started_at_epoch_reports_the_lost_work(tmp_path, shared_data_dir):
    from npdpsnn.sweep.runner import make_spec, run_one

    exp = _experiment(tmp_path, TINY.replace("[1.0, 1.6]", "[1.0]").replace('["snn", "ann"]', '["ann"]'))
    (run,) = plan_runs(exp)
    one = run.config.with_values({"optim.epochs": 1})
    spec = make_spec(run, tmp_path / "sweep")
    first = run_one({**spec, "config": one.to_dict()})
    assert (first["status"], first["started_at_epoch"]) == ("trained", 0)
    second = run_one(spec)
    assert (second["status"], second["started_at_epoch"], second["epochs"]) == ("resumed", 1, 2)
    third = run_one(spec)
    assert third["status"] == "finished" and third["record"]["summary"]["epochs_completed"] == 2
    with pytest.raises(UserError, match="run spec"):
        run_one({"name": "x"})


def test_optional_extras_are_imported_only_where_used():
    code = ("import sys, npdpsnn.sweep, npdpsnn.plot.curves, npdpsnn.paper.reproduce, npdpsnn.cli.main; "
            "print(sorted(m for m in ('matplotlib', 'dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"
