"""``npdpsnn eval``: loss, per-class accuracy, confusion matrix, firing rates, dataset warning."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.network import Network
from npdpsnn.training.metrics import confusion_matrix, firing_rates, per_class_accuracy


def test_confusion_and_per_class():
    c = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 4)
    assert c.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(c)
    assert acc[:3].tolist() == [0.5, 1.0, 2 / 3] and np.isnan(acc[3])


def test_firing_rates_known_answers():
    net = Network.from_spec("4-3", (1, 2, 2), T=4, threshold=0.5)
    x = np.ones((3, 1, 2, 2), np.float32)
    net.theta[:] = 0.0
    assert firing_rates(net, x) == {"fc1": 0.0}
    net.params["fc1.bias"][:] = 1.0  # I = 1 >= 0.5 at every step: IF fires every step
    assert firing_rates(net, x) == {"fc1": 1.0}
    net.params["fc1.bias"][:] = [1.0, 1.0, 0.0, 0.0]  # half the neurons fire always, half never
    assert firing_rates(net, x) == {"fc1": 0.5}
    assert firing_rates(Network.from_spec("4-3", (1, 2, 2), kind="ann"), x) == {}


def test_eval_json_and_warning(tmp_path, shared_data_dir):
    run = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1", "--epochs", "1", "--quiet", "--out", str(run),
                                  "--net", "4C5S2-P2S2-16-10", "-T", "2", "--limit-train", "300", "--batch-size", "100"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["eval", str(run), "--json", "--firing-examples", "8"])
    out = json.loads(r.stdout)
    conf = np.array(out["confusion_matrix"])
    assert conf.shape == (10, 10) and conf.sum() == 10000
    assert out["test_accuracy"] == np.trace(conf) / 10000
    assert set(out["firing_rates"]) == {"conv1", "fc1"} and out["test_loss"] > 0
    r = CliRunner().invoke(main, ["eval", str(run), "fashion-mnist", "--firing-examples", "0"])
    assert r.exit_code == 0 and "trained on mnist, not fashion-mnist" in r.stderr
