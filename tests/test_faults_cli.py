"""Faults of issue 9 that only the command line shows: interrupts during start-up and
before the first epoch, divergence, a delta that protects nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from npdpsnn.cli.main import main

SMALL = ["--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300", "--batch-size", "100"]


def _spawn(args, env_data):
    env = {**os.environ, "NPDPSNN_DATA": str(env_data)}
    return subprocess.Popen([sys.executable, "-m", "npdpsnn.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_ctrl_c_during_start_up_is_one_line(tmp_path, shared_data_dir):
    proc = _spawn(["train", "mnist", "--sigma", "1", *SMALL, "--out", str(tmp_path / "s")], shared_data_dir)
    time.sleep(0.3)  # still importing / loading data
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 2) and "Traceback" not in err, err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_interrupt_in_the_first_epoch_leaves_nothing(tmp_path, shared_data_dir):
    out = tmp_path / "first"
    args = ["train", "mnist", "--sigma", "1", "--net", "net2", "--limit-train", "60000", "--batch-size", "100",
            "--epochs", "1", "--out", str(out)]
    proc = _spawn(args, shared_data_dir)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # wait for the first step lines
        if out.exists():
            break
        time.sleep(0.1)
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "nothing was saved" in err and not out.exists()


def test_divergence_names_the_noise_scale(tmp_path, shared_data_dir):
    r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1e42", *SMALL, "--epochs", "1", "--out",
                                  str(tmp_path / "d")])
    assert r.exit_code == 2 and "diverged" in r.output and "--sigma" in r.output and "--lr" in r.output
    assert not (tmp_path / "d").exists()


def test_delta_at_least_one_over_n_is_warned(tmp_path, shared_data_dir):
    r = CliRunner().invoke(main, ["privacy", "--sigma", "1", "--batch-size", "10", "--dataset-size", "100",
                                  "--epochs", "1", "--delta", "0.02"])
    assert r.exit_code == 0 and "warning: delta = 0.02 is not below 1/N" in r.output
    r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1", *SMALL, "--epochs", "1", "--delta", "0.01",
                                  "--quiet", "--out", str(tmp_path / "w")])
    assert r.exit_code == 0 and "not below 1/N" in r.stderr
