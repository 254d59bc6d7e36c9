"""One line, non-zero exit, no traceback: click's usage errors, OS errors,
interrupts; ``-v`` anywhere; library field names shown as the options that set them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main


def _err(args):
    r = CliRunner().invoke(main, args)
    return r.exit_code, r.output


@pytest.mark.parametrize("args", [
    ["train", "mnist", "--sigmaa", "1"],
    ["privacy", "--sigma", "x"],
    ["nosuchcommand"],
    ["train", "imagenet"],
    ["eval"],
])
def test_usage_errors_are_one_line(args):
    code, out = _err(args)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error:"), out


def test_os_errors_are_one_line(tmp_path):
    long = tmp_path / ("x" * 300) / "run"  # ENAMETOOLONG
    code, out = _err(["train", "mnist", "--sigma", "1", "--epochs", "1", "--limit-train", "300", "--batch-size",
                      "100", "--net", "4C5S2-P2S2-16-10", "-T", "2", "--quiet", "--out", str(long)])
    assert code == 2 and out.startswith("Error:") and "Traceback" not in out and len(out.splitlines()) == 1, out


def test_verbose_flag_anywhere_and_field_names_as_flags():
    r = CliRunner().invoke(main, ["privacy", "--sigma", "1", "--sample-rate", "0.1", "--steps", "5", "-v"])
    assert r.exit_code == 0, r.output
    code, out = _err(["train", "mnist", "--sigma", "1", "--lr", "-1", "-v"])
    assert code == 2 and "--lr must be > 0" in out and "optim.lr" not in out
    code, out = _err(["train", "mnist", "--epochs", "1"])
    assert code == 2 and "--sigma is required" in out


def test_help_and_version_exit_zero():
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
    r = CliRunner().invoke(main, ["train", "--help"])
    assert r.exit_code == 0 and "required for DP training" in " ".join(r.output.split())


def test_no_top_level_cli_package_installed():
    out = subprocess.run([sys.executable, "-c", "import importlib.util, sys; sys.path = [p for p in sys.path if p]; "
                          "print(importlib.util.find_spec('cli') is None, importlib.util.find_spec('npdpsnn.cli') is "
                          "not None)"], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.split() == ["True", "True"]
