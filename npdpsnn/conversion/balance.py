"""Data-free ANN-to-SNN conversion by threshold balancing (PrivateSNN, after
Diehl et al. 2015, Rueckauer et al. 2017, Sengupta et al. 2019).

The ANN has ReLU activations and average pooling.  Let ``lambda_h`` be the
``percentile`` (100 = maximum) of the ReLU pre-activations ``I_h = W_h a_{h-1} + b_h``
of hidden weight layer ``h`` over the synthetic images (all positions and
channels; ``lambda_0 = 1``, the input).  An IF neuron with reset by
subtraction and threshold ``theta`` fires at the rate ``clip(I / theta, 0, 1)``
of its (constant) input current ``I`` as ``T -> inf``.  With

    theta_h = lambda_h / lambda_{h-1},   b_h' = b_h / lambda_{h-1},

layer ``h`` spikes at the rate ``r_h = a_h / lambda_h`` (induction on ``h``;
average pooling is linear, so it passes rates through), and the output layer,
``logits = W_out' r_H + b_out`` with ``W_out' = lambda_H W_out``, gives the
ANN's logits.  Saturation (``a_h > lambda_h``) is the only approximation besides
the finite ``T``.  This is layer-wise data-based normalisation written as
thresholds: weights stay the ANN's (the output layer scaled), so the SNN's
weights still "are" the ANN's -- the class leakage PrivateSNN then removes.
:func:`unit_thresholds` writes the same SNN with unit thresholds (the weights
scaled instead), the form surrogate gradients are taken in; :func:`as_ann` reads
an SNN as the ReLU ANN of its rates (for a converted network, its ANN).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.kernels.reference import forward_trace_batch
from npdpsnn.network import Network


def hidden_weight_layers(net: Network) -> list[int]:
    """Indices of the hidden weight layers (conv/fc below the output)."""
    return [i for i, layer in enumerate(net.layers[:-1]) if layer.has_weights]


def layer_scales(ann: Network, x: np.ndarray, percentile: float = 99.9, batch: int = 250) -> list[float]:
    """``lambda_h``: the ``percentile`` of the ReLU pre-activation of each hidden
    weight layer of ``ann`` over the images ``x``."""
    if not 0 < percentile <= 100:
        raise UserError(f"percentile must be in (0, 100], got {percentile!r}")
    hidden = hidden_weight_layers(ann)
    parts: list[list[np.ndarray]] = [[] for _ in hidden]
    for s in range(0, len(x), batch):
        tr = forward_trace_batch(ann.layers, ann.params, np.asarray(x[s : s + batch]), ann.config)
        for j, li in enumerate(hidden):
            parts[j].append(np.maximum(tr.current[li][0], 0.0).reshape(-1))
    scales = [float(np.percentile(np.concatenate(p), percentile)) for p in parts]
    for li, lam in zip(hidden, scales):
        if not lam > 0:
            raise UserError(f"layer {ann.layers[li].name} never activates on the balancing images: "
                            f"no threshold can be set")
    return scales


@dataclass
class Conversion:
    """A converted SNN, the ``lambdas`` it was balanced with and the thresholds."""

    snn: Network
    lambdas: list[float]
    thresholds: tuple[float, ...]


def check_convertible(ann: Network) -> None:
    c = ann.config
    if c.kind != "ann" or c.activation != "relu":
        raise UserError("conversion needs a ReLU ANN (model kind ann, activation relu)")
    if any(layer.kind == "maxpool" for layer in ann.layers):
        raise UserError("conversion needs average pooling (A<k>S<s>): a max over spikes is not the max of rates")


def convert(ann: Network, x_balance: np.ndarray, T: int, percentile: float = 99.9, encoding: str = "direct",
            encoding_seed: int = 0) -> Conversion:
    """The IF / reset-by-subtraction SNN of the ReLU ``ann``, with thresholds
    balanced on ``x_balance`` (synthetic images: no real data needed)."""
    check_convertible(ann)
    lambdas = layer_scales(ann, x_balance, percentile)
    prev = [1.0] + lambdas[:-1]
    thresholds = tuple(lam / p for lam, p in zip(lambdas, prev))
    cfg = replace(ann.config, kind="snn", neuron="if", T=int(T), reset="subtract", thresholds=thresholds,
                  activation="tanh", encoding=encoding, encoding_seed=int(encoding_seed),
                  threshold=float(thresholds[0]))
    snn = Network(ann.spec, ann.input_shape, cfg)
    snn.theta[:] = ann.theta
    hidden = hidden_weight_layers(ann)
    for li, p in zip(hidden, prev):
        name = f"{ann.layers[li].name}.bias"
        if name in snn.params:
            snn.params[name][:] = ann.params[name] / p
    out = ann.layers[-1].name
    snn.params[f"{out}.weight"][:] = ann.params[f"{out}.weight"] * lambdas[-1]
    return Conversion(snn, lambdas, thresholds)


def with_T(net: Network, T: int) -> Network:
    """The same weights simulated for ``T`` steps."""
    out = Network(net.spec, net.input_shape, replace(net.config, T=int(T)))
    out.theta[:] = net.theta
    return out


def thresholds_of(net: Network) -> tuple[float, ...]:
    """The threshold of each hidden weight layer of ``net``."""
    return tuple(float(t) for t in net.config.layer_thresholds(len(hidden_weight_layers(net))))


def rescale_thresholds(snn: Network, thresholds) -> Network:
    """The same SNN with hidden thresholds ``thresholds``: the weights and bias of
    hidden layer ``h`` are multiplied by ``thresholds[h] / theta_h``.

    ``V``, ``I`` and ``theta`` of a layer scale together, so the spikes -- and
    the logits, which read spikes -- are unchanged (up to float32 rounding of the
    weights).  What changes is the backward pass: the surrogate ``g'(V - theta)``
    has a fixed window and height, so only at ``theta = 1`` is it relative to the
    threshold (:func:`unit_thresholds`)."""
    old = thresholds_of(snn)
    new = tuple(float(t) for t in thresholds)
    if len(new) != len(old) or not all(t > 0 for t in new + old):
        raise UserError(f"need {len(old)} positive thresholds, got {thresholds!r} (the network has {old!r})")
    out = Network(snn.spec, snn.input_shape, replace(snn.config, thresholds=new, threshold=new[0]))
    out.theta[:] = snn.theta
    for li, t_new, t_old in zip(hidden_weight_layers(snn), new, old):
        for kind in ("weight", "bias"):
            name = f"{snn.layers[li].name}.{kind}"
            if name in out.params:
                out.params[name][:] = np.asarray(snn.params[name], np.float64) * (t_new / t_old)
    return out


def unit_thresholds(snn: Network) -> Network:
    """The same SNN with every hidden threshold 1 (weight normalisation, Diehl
    et al. 2015, instead of threshold balancing): the form to take surrogate
    gradients in.

    With the gate surrogate (window ``|V - theta| < 1/2``, height 1) and reset
    by subtraction, BPTT carries ``dL/dV[t+1]`` back with the factor
    ``1 - theta g'(V[t] - theta)`` (:mod:`npdpsnn.model.neurons`).  Balanced
    thresholds are not 1 (conv1 of the MNIST net: ``theta = lambda_1 ~ 9``), so
    that factor is ``-8`` inside the window and the gradient grows like ``8^T``
    (``~1e18`` at ``T = 25``); the surrogate's window is also ``1/theta`` too
    narrow or wide for the layer.  At ``theta = 1`` the factor is 0 or 1: the
    reset term cancels the gradient an IF membrane would otherwise carry over all
    later steps, and ``g'`` approximates the rate slope ``1 / theta = 1``."""
    return rescale_thresholds(snn, (1.0,) * len(thresholds_of(snn)))


def as_ann(snn: Network) -> Network:
    """The SNN's weights read as a ReLU ANN: what an attacker who knows the
    architecture sees in the published model (weights and thresholds).

    Hidden layer ``h`` becomes ``a_h = relu(W_h a_{h-1} + b_h) / theta_h``, the
    rate an IF neuron with reset by subtraction fires at (without the clip at
    one spike per step), so the logits have the SNN's own scale.  For a
    converted network this is the ANN exactly (``a_h`` = the ANN's activation
    over ``lambda_h``; the output weights carry ``lambda_H``).  Reading the
    weights with the thresholds ignored would multiply the logits by
    ``lambda_H`` (x23 on MNIST): the softmax saturates, an inversion gets no
    gradient and the leakage score drops for a reason that is no protection."""
    cfg = replace(snn.config, kind="ann", activation="relu", encoding="direct", thresholds=None)
    unit = unit_thresholds(snn) if snn.config.kind == "snn" else snn
    out = Network(snn.spec, snn.input_shape, cfg)
    out.theta[:] = unit.theta
    return out
