"""``npdpsnn audit``: canaries, a run folder, and the claims study, end to end on tiny settings."""

from __future__ import annotations

import json

from click.testing import CliRunner

from npdpsnn.cli.main import main

SMALL = ["--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300", "--batch-size", "100"]


def test_audit_canaries_json(shared_data_dir):
    r = CliRunner().invoke(main, ["audit", "canaries", "mnist", "--sigma", "2", "--epochs", "2", "--canaries",
                                  "200", "--json", *SMALL], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["m"] == 200 and out["kind"] == "dirac" and out["exceeds_accounted"] is False
    assert 0 <= out["one_run"]["epsilon"] <= out["accounted"]["rdp_epsilon"]


def test_audit_run_folder(tmp_path, shared_data_dir):
    run = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1", "--epochs", "1", "--quiet", "--out", str(run),
                                  *SMALL])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["audit", "run", str(run), "--members", "100", "--lira", "--shadows", "3",
                                  "--pool", "300", "--inversions", "1", "--iterations", "3", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["loss"]["n_members"] == 100 and 0 <= out["loss"]["loss"]["auc"] <= 1
    assert out["loss"]["ceilings"]["auc_certified"] > 0.5
    assert out["lira"]["shadows"] == 3 and {row["variant"] for row in out["inversion"]} == {"raw", "clipped", "noisy"}
    text = CliRunner().invoke(main, ["audit", "run", str(run), "--members", "50", "--inversions", "0"]).output
    assert "loss attack" in text and "ceilings" in text
