"""NeuralDP layer-K features against the line-by-line reference, and the network cut."""

from __future__ import annotations

import numpy as np
import pytest

from npdpsnn.errors import UserError
from npdpsnn.kernels.reference import forward_trace
from npdpsnn.network import Network
from npdpsnn.neuraldp.features import FeatureCache, layer_features, lower_digest, split_at

SPEC = "4C3S1P1-P2S2-6C3S1-A2S2-8-3"  # conv with padding, max- and average pooling, fc, output


def _net(kind: str, neuron: str = "if", seed: int = 1) -> Network:
    net = Network.from_spec(SPEC, (1, 12, 12), kind=kind, neuron=neuron, T=4, threshold=0.3, seed=seed)
    net.theta *= 3.0  # more spikes in deep layers
    return net


def _reference_counts(net: Network, x: np.ndarray, index: int) -> np.ndarray:
    """Sum over steps of the input of layer ``index + 1``, i.e. the output of layer ``index``."""
    return np.array([sum(forward_trace(net.layers, net.params, xi, net.config).inputs[index + 1]) for xi in x])


@pytest.mark.parametrize("kind,neuron", [("snn", "if"), ("snn", "lif"), ("ann", "if")])
@pytest.mark.parametrize("position", [2, 4, 5])
def test_features_match_the_reference_trace(kind, neuron, position):
    net = _net(kind, neuron)
    x = np.random.default_rng(0).normal(size=(5, 1, 12, 12)).astype(np.float32)
    split = split_at(net.layers, position)
    got = layer_features(net, x, split, chunk=2)  # chunks smaller than the batch
    want = _reference_counts(net, x, split.index)
    assert got.shape == (5, *split.feature_shape)
    if kind == "snn":
        np.testing.assert_array_equal(got, want)  # spike counts, exactly
        assert got.sum() > 0
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_split_by_position_and_name_and_its_refusals():
    net = _net("snn")
    by_pos, by_name = split_at(net.layers, 5), split_at(net.layers, "fc1")
    assert by_pos == by_name and by_pos.head_spec == "3" and by_pos.feature_shape == (8, 1, 1)
    assert split_at(net.layers, 4).head_spec == "8-3"
    assert split_at(net.layers, 4).lower_weight_names == ("conv1", "conv2")
    with pytest.raises(UserError, match="output layer"):
        split_at(net.layers, 6)
    with pytest.raises(UserError, match="pooling"):
        split_at(net.layers, 1)  # the layer above is a pooling: privatise that one
    with pytest.raises(UserError, match="names no weight layer"):
        split_at(net.layers, "fc9")
    with pytest.raises(UserError, match="position"):
        split_at(net.layers, 0)
    assert split_at(net.layers, 4, head="3").head_spec == "3"
    with pytest.raises(UserError, match="outputs"):
        split_at(net.layers, 4, head="5")


def test_feature_cache_keys_on_weights_and_images():
    net = _net("ann")
    split = split_at(net.layers, 4)
    x = np.random.default_rng(1).normal(size=(3, 1, 12, 12)).astype(np.float32)
    cache = FeatureCache()
    first = cache.features(net, x, split)
    assert cache.features(net, x.copy(), split) is first
    assert cache.features(net, x + 1, split) is not first
    digest = lower_digest(net, split)
    net.params["conv1.weight"][0, 0, 0, 0] += 1.0
    assert lower_digest(net, split) != digest
    np.testing.assert_allclose(cache.features(net, x, split), layer_features(net, x, split))
