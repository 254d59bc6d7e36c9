"""``npdpsnn reproduce``: the shipped experiments end to end, the paper's numbers beside ours."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.paper import privacy_table
from npdpsnn.paper.numbers import TABLES
from npdpsnn.paper.render import render_table
from npdpsnn.privacy.accountants import clt_epsilon, clt_mu, rdp_epsilon
from npdpsnn.sweep import load_experiment


def _invoke(args):
    return CliRunner().invoke(main, args)


def test_reproduce_table1_tiny_end_to_end(tmp_path, shared_data_dir):
    out = tmp_path / "t1"
    result = _invoke(["reproduce", "table1", "--scale", "tiny", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    md = (out / "table1.md").read_text()
    assert md in result.output
    assert "reproduce table1 --scale tiny" in md
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| σ | SNN acc. % ours | SNN acc. % paper | ANN acc. % ours | ANN acc. % paper")
    assert len(lines) == 1 + 5  # header, then the paper's five noise levels
    # the paper's numbers, every one of them
    for row in TABLES["table1"].rows:
        for value in (*row.accuracy.values(), row.ma_epsilon, row.clt_epsilon, row.clt_mu):
            assert f"{value:.2f}" in md
    # ours: from the runs, and the privacy recomputed from first principles for our q and steps
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 4
    for sigma in (1.6, 0.5):
        snn = next(r for r in rows if r["dp.sigma"] == sigma and r["model.kind"] == "snn")
        ann = next(r for r in rows if r["dp.sigma"] == sigma and r["model.kind"] == "ann")
        q, steps = snn["sample_rate"], snn["steps"]
        ours = [rdp_epsilon(q, sigma, steps, 1e-5), clt_epsilon(q, sigma, steps, 1e-5), clt_mu(q, sigma, steps)]
        paper = TABLES["table1"].row(sigma)
        cells = [c.strip() for c in next(line for line in lines if line.startswith(f"| {sigma} |")).split("|")[1:-1]]
        assert cells[1].split()[0] == f"{100 * snn['final_test_accuracy']:.2f}"
        assert cells[3].split()[0] == f"{100 * ann['final_test_accuracy']:.2f}"
        assert cells[5:11] == [f"{ours[0]:.2f}", f"{paper.ma_epsilon:.2f}", f"{ours[1]:.2f}",
                               f"{paper.clt_epsilon:.2f}", f"{ours[2]:.2f}", f"{paper.clt_mu:.2f}"]
    # resumable: a second call trains nothing and renders the same table
    again = _invoke(["reproduce", "table1", "--scale", "tiny", "--out", str(out), "--quiet"])
    assert again.exit_code == 0 and (out / "table1.md").read_text() == md


def test_reproduce_figure_tiny_writes_the_figure(tmp_path, shared_data_dir):
    pytest.importorskip("matplotlib")
    out = tmp_path / "f6"
    result = _invoke(["reproduce", "fig6", "--scale", "tiny", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    for name in ("fig6.png", "fig6.svg", "fig6-epsilon.png", "fig6-epsilon.svg", "fig6.md"):
        assert (out / name).is_file()
    md = (out / "fig6.md").read_text()
    assert "![fig6](fig6.png)" in md and "| (A) σ = 0.5 | IF |" in md and "| (B) σ = 1.6 | LIF |" in md


@pytest.mark.parametrize("args, message", [
    (["reproduce", "table9"], "Invalid value for 'ITEM'"),
    (["reproduce", "table1", "--scale", "huge"], "Invalid value for '--scale'"),
    (["reproduce", "table1", "--workers", "2", "--dask-local", "2"], "give at most one of"),
    (["reproduce", "table1", "--workers", "0"], "--workers must be >= 1"),
])
def test_reproduce_bad_input_is_one_error_line(args, message):
    result = _invoke(args)
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1 and message in result.output


def test_replicates_render_mean_and_spread():
    experiment = load_experiment("table4", "tiny")
    base = {"model.kind": "snn", "n_train": 300, "optim.batch_size": 50, "sample_rate": 1 / 6, "steps": 12,
            "epochs_completed": 2, "best_epoch_rdp_epsilon": 5.0, "best_epoch_clt_epsilon": 3.0,
            "best_epoch_clt_mu": 0.7, "best_epoch_pld_epsilon": 4.0}
    rows = [{**base, "model.T": 5, "best_test_accuracy": 0.5}, {**base, "model.T": 5, "best_test_accuracy": 0.7}]
    md = render_table(TABLES["table4"], rows, experiment)
    assert "| 5 | 60.00 ± 14.14 | 87.93 | 5.00 ± 0.00 | 3.55 |" in md
    assert "| 10 | — | 88.49 |" in md


def test_privacy_table_reads_the_paper_numbers_from_one_home():
    for name, label in (("table1", "MNIST (Table 1)"), ("table2", "Fashion-MNIST (Table 2)")):
        batch, n, epochs, rows = privacy_table.SETTINGS[label]
        table = TABLES[name]
        assert (batch, n, epochs) == (table.batch_size, table.n_train, table.epochs)
        assert rows == [(r.setting, r.ma_epsilon, r.clt_epsilon, r.clt_mu) for r in table.rows]
    assert privacy_table.SETTINGS["Extended Yale B (Table 3)"][1] == privacy_table.YALE_N_OURS
