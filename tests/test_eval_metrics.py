"""``npdpsnn eval``: loss, per-class accuracy, confusion matrix, firing rates, dataset warning."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from npdpsnn.cli.main import main
from npdpsnn.errors import UserError
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


def _reference_rates(net: Network, x: np.ndarray) -> dict[str, float]:
    """Spike rates from the reference's full trace (one example at a time)."""
    from npdpsnn.kernels.reference import forward_trace

    sums: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for xi in np.asarray(x, np.float64):
        trace = forward_trace(net.layers, net.params, xi, net.config)
        for li, layer in enumerate(net.layers[:-1]):
            if layer.has_weights:
                spikes = np.asarray(trace.spikes[li])
                sums[layer.name] = sums.get(layer.name, 0.0) + float(spikes.sum())
                sizes[layer.name] = sizes.get(layer.name, 0) + spikes.size
    return {k: sums[k] / sizes[k] for k in sums}


@pytest.mark.parametrize("spec, opts", [
    ("3C3S1-A2S2-4C3S1-P2S1-8-5", {}),
    ("3C3S2P1-P2S2-8-5", {"neuron": "lif", "T": 3}),
    ("3C3S1-A2S2-8-6-5", {"reset": "subtract", "thresholds": (0.3, 0.6, 0.2), "bias": False}),
    ("3C3S1-A2S2-8-5", {"encoding": "poisson"}),
])
def test_batched_firing_rates_equal_the_reference_trace(spec, opts):
    net = Network.from_spec(spec, (1, 10, 10), seed=3, **opts)
    net.theta[:] *= 3.0  # enough current for every layer to spike sometimes
    x = np.random.default_rng(0).uniform(0, 1, (7, 1, 10, 10))
    got, want = firing_rates(net, x, batch_size=3), _reference_rates(net, x)
    assert list(got) == list(want) and 0 < min(want.values())
    np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-12)


def test_firing_rates_refuse_wrong_shapes_and_batch_sizes():
    net = Network.from_spec("4-3", (1, 2, 2))
    with pytest.raises(UserError, match="shape"):
        firing_rates(net, np.ones((3, 1, 2, 3)))
    with pytest.raises(UserError, match="batch_size"):
        firing_rates(net, np.ones((3, 1, 2, 2)), batch_size=0)
    assert firing_rates(net, np.ones((0, 1, 2, 2))) == {}


def test_metrics_csv_has_a_firing_rate_column_per_hidden_spiking_layer(tmp_path, shared_data_dir):
    small = ["--epochs", "1", "--quiet", "--limit-train", "200", "--batch-size", "100", "-T", "2"]
    for kind, want in (("snn", ["firing_rate_conv1", "firing_rate_fc1"]), ("ann", [])):
        out = tmp_path / kind
        r = CliRunner().invoke(main, ["train", "mnist", "--sigma", "1", "--model", kind, "--net", "4C5S2-P2S2-16-10",
                                      *small, "--out", str(out)])
        assert r.exit_code == 0, r.output
        header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
        assert [c for c in header if c.startswith("firing_rate_")] == want
        if want:
            row = dict(zip(header, (out / "metrics.csv").read_text().splitlines()[1].split(",")))
            assert all(0.0 <= float(row[c]) <= 1.0 for c in want)
