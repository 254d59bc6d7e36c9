"""``npdpsnn plot``: panel and curve layout, PNG and SVG files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.errors import UserError
from npdpsnn.plot.curves import PlotRun, accuracy_layout, epsilon_layout, load_plot_runs, value_label
from npdpsnn.sweep import load_experiment, run_sweep
from npdpsnn.sweep.experiment import experiment_source

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# the shipped Figure 3 experiment with one small network: 3 privacy levels x ANN/SNN
FIG = experiment_source("fig3")[0] + """
[scales.plot]
base = { "model.T" = 2, "optim.epochs" = 2, "optim.batch_size" = 50, "run.limit_train" = 200 }
grid = { network = [{ label = "net2", net = "4C5S2-P2S2-16-10" }] }
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, shared_data_dir) -> Path:
    folder = tmp_path_factory.mktemp("plot")
    (folder / "fig.toml").write_text(FIG)
    outcome = run_sweep(load_experiment(folder / "fig.toml", "plot"), folder / "sweep")
    assert not outcome.failed
    return folder / "sweep"


def _check_files(paths: list[Path]) -> None:
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_SIGNATURE
        else:
            root = ET.parse(p).getroot()
            assert root.tag.endswith("svg")


def test_layout_follows_the_papers_panels(sweep_dir):
    runs = load_plot_runs([sweep_dir])
    assert len(runs) == 6
    panels = accuracy_layout(runs)
    assert [p.title for p in panels] == ["(A) no DP", "(B) σ = 1.0", "(C) σ = 1.6"]
    assert [c.label for c in panels[0].curves] == ["ANN", "SNN"]
    curve = panels[1].curves[1]
    record = next(r.record for r in runs
                  if r.labels == {"privacy": "sigma1.0", "network": "net2", "model.kind": "snn", "replicate": 0})
    assert curve.epochs == [1, 2] and curve.mean == [100 * m["test_accuracy"] for m in record.metrics]
    eps = epsilon_layout(runs)
    assert len(eps) == 3 and [c.label for c in eps[0].curves] == ["σ = 1.0", "σ = 1.6"]
    assert eps[0].curves[1].mean[-1] < eps[0].curves[0].mean[-1]  # more noise, less epsilon


def test_replicates_are_averaged_and_curves_can_be_chosen(sweep_dir):
    runs = load_plot_runs([sweep_dir])
    twins = [PlotRun(r.name, {**r.labels, "replicate": i}, r.record) for i, r in enumerate(runs)
             if r.labels["model.kind"] == "snn"]
    (panel,) = accuracy_layout(twins, panel_by="", curve_by=["model.kind"])
    (curve,) = panel.curves
    assert curve.n == 3 and all(lo <= m <= hi for lo, m, hi in zip(curve.low, curve.mean, curve.high))
    with pytest.raises(UserError, match="cannot panel by 'nope'"):
        accuracy_layout(runs, panel_by="nope")


def test_lone_run_folders_are_labelled_by_their_settings(sweep_dir):
    folders = sorted((sweep_dir / "runs").iterdir())
    runs = load_plot_runs(folders[:2])
    assert {"dataset", "model.kind", "dp.sigma", "replicate"} <= set(runs[0].labels)


def test_value_labels():
    assert value_label("model.kind", "snn") == "SNN"
    assert value_label("network", "net1") == "Net1"
    assert value_label("privacy", "nodp") == "no DP" and value_label("dp.sigma", None) == "no DP"
    assert value_label("privacy", "sigma1.0") == "σ = 1.0" and value_label("dp.sigma", 1.6) == "σ = 1.6"
    assert value_label("model.T", 5) == "T = 5" and value_label("model.neuron", "lif") == "LIF"
    assert value_label("optim.lr", 0.1) == "lr = 0.1"


def test_cli_plot_writes_png_and_svg(sweep_dir, tmp_path):
    out = tmp_path / "figs"
    one_run = next((sweep_dir / "runs").iterdir())
    result = CliRunner().invoke(main, ["plot", str(sweep_dir), "--out", str(out), "--name", "fig", "--title", "tiny"])
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.output.split()]
    assert sorted(p.name for p in paths) == ["fig-epsilon.png", "fig-epsilon.svg", "fig.png", "fig.svg"]
    _check_files(paths)
    svg = (out / "fig.svg").read_bytes()
    again = CliRunner().invoke(main, ["plot", str(sweep_dir), "--out", str(out), "--name", "fig", "--title", "tiny"])
    assert again.exit_code == 0 and (out / "fig.svg").read_bytes() == svg  # reproducible bytes
    single = CliRunner().invoke(main, ["plot", str(one_run), "--out", str(out), "--name", "one"])
    assert single.exit_code == 0, single.output
    _check_files([out / "one.png", out / "one.svg"])


def test_cli_plot_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "neither a run folder" in result.output


def test_claims_figure_from_the_committed_report(tmp_path):
    import json
    from pathlib import Path

    from npdpsnn.plot.figures import write_claims_figure

    report = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / "audit-claims-small"
                         / "report.json").read_text())
    png, svg = write_claims_figure(report, tmp_path / "claims")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]
