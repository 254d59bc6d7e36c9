"""Shared helpers for the engine tests: hypothesis strategies for small random
networks and configurations, float64 parameter copies, finite differences.

Imported by the engine tests (``test_gradcheck.py``, ``test_kernels_cpu.py``,
``test_kernels_cuda.py``, ``test_input_grads.py``, ...).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from npdpsnn.kernels import reference as ref
from npdpsnn.model.config import ModelConfig
from npdpsnn.network import Network

# Hypothesis settings for the (slow-ish) engine properties: modest example
# counts, no deadline (Numba/NumPy timings vary on a shared machine).
ENGINE_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def engine_settings(max_examples: int):
    return settings(max_examples=max_examples, **ENGINE_SETTINGS)


# --------------------------------------------------------------------------- strategies
@st.composite
def small_specs(draw, min_conv: int = 0, max_conv: int = 2, max_fc: int = 2, dyadic: bool = False):
    """``(spec, input_shape)`` of a small random network.

    0..2 conv layers (kernel 1..3, stride 1..2, optional padding ``P0``/``P1``,
    optional stride suffix), each optionally followed by a max (``P``) or
    average (``A``) pool, then 1..2 fully connected layers; input ``C <= 2``,
    ``H, W <= 8``.  With ``dyadic`` the average pools have kernel 1 or 2 so that
    their division by ``k*k`` is exact in float32 (for bit-identical forwards).
    """
    c = draw(st.integers(1, 2))
    h = draw(st.integers(3, 8))
    w = draw(st.integers(3, 8))
    input_shape = (c, h, w)
    tokens: list[str] = []
    for _ in range(draw(st.integers(min_conv, max_conv))):
        p = draw(st.integers(0, 1))
        k = draw(st.integers(1, min(3, h + 2 * p, w + 2 * p)))
        s = draw(st.integers(1, 2))
        out = draw(st.integers(1, 3))
        tok = f"{out}C{k}"
        if s != 1 or draw(st.booleans()):
            tok += f"S{s}"
        if p or draw(st.booleans()):
            if "S" not in tok:
                tok += f"S{s}"
            tok += f"P{p}"
        tokens.append(tok)
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        pool = draw(st.sampled_from(["", "P", "A"]))
        if pool and min(h, w) >= 2:
            kmax = min(3, h, w) if pool == "P" or not dyadic else 2
            pk = draw(st.integers(2 if pool == "P" else 1, kmax)) if kmax >= 2 else 1
            ps = draw(st.integers(1, 2))
            tokens.append(f"{pool}{pk}S{ps}" if (ps != pk or draw(st.booleans())) else f"{pool}{pk}")
            h, w = (h - pk) // ps + 1, (w - pk) // ps + 1
    n_fc = draw(st.integers(1, max_fc))
    for _ in range(n_fc - 1):
        tokens.append(str(draw(st.integers(2, 5))))
    tokens.append(str(draw(st.integers(2, 4))))
    return "-".join(tokens), input_shape


@st.composite
def model_options(draw, kinds=("snn", "ann"), dyadic: bool = False, max_T: int = 4):
    """Keyword arguments of :meth:`Network.from_spec` (all but spec/shape/seed).

    With ``dyadic`` the threshold and leak are exact binary fractions, so float32
    and float64 membranes agree bit for bit on dyadic weights and inputs.
    """
    kind = draw(st.sampled_from(kinds))
    if dyadic:
        threshold = draw(st.sampled_from([0.25, 0.5, 1.0]))
        leak = draw(st.sampled_from([0.25, 0.5, 0.75]))
    else:
        threshold = draw(st.sampled_from([0.3, 0.5, 1.0]))
        leak = draw(st.sampled_from([0.2, 0.5, 0.9]))
    return dict(
        kind=kind,
        neuron=draw(st.sampled_from(["if", "lif"])),
        surrogate=draw(st.sampled_from(["gate", "darctanh", "normal"])),
        T=draw(st.integers(1, max_T)),
        threshold=threshold,
        leak=leak,
        detach_reset=draw(st.booleans()),
    )


# --------------------------------------------------------------------------- helpers
def params64(net: Network, scale: float = 1.0) -> dict[str, np.ndarray]:
    """A float64 copy of the parameters (finite differences need float64)."""
    return {name: np.array(v, dtype=np.float64) * scale for name, v in net.params.items()}


def quantise_net(net: Network, scale: float = 1.0, levels: int = 64) -> None:
    """Round the parameters (times ``scale``) to multiples of ``1/levels`` in place."""
    net.theta[:] = np.round(net.theta.astype(np.float64) * scale * levels) / levels


def quantise_inputs(x: np.ndarray, levels: int = 8) -> np.ndarray:
    return (np.round(np.asarray(x, np.float64) * levels) / levels).astype(np.float32)


def dyadic_case(spec: str, shape: tuple, opts: dict, seed: int, scale: float, B: int):
    """``(net, x, y)``: weights (times ``scale``) on multiples of 1/64, inputs on
    multiples of 1/8, so forward passes are exact in float32 (see
    ``test_kernels_cpu.py``); ``B`` examples with random labels."""
    net = Network.from_spec(spec, shape, seed=seed, **opts)
    quantise_net(net, scale)
    rng = np.random.default_rng(seed + 11)
    x = quantise_inputs(rng.uniform(-0.5, 1.5, (B, *shape)))
    y = rng.integers(0, net.num_classes, B)
    return net, x, y


def kink_distance(trace: ref.Trace, cfg: ModelConfig) -> float:
    """Smallest ``| |V - V_th| - 1/2 |`` over all hidden membranes: distance of
    any membrane to a kink of the gate's primitive ``clip(x + 1/2, 0, 1)``."""
    d = np.inf
    for layer_v in trace.membrane:
        for v in layer_v:
            d = min(d, float(np.min(np.abs(np.abs(v - cfg.threshold) - 0.5))))
    return d


def maxpool_gap(layers, trace: ref.Trace) -> float:
    """Smallest gap between the largest and second-largest value of any max-pool
    window whose maximum is not tied with exact duplicates of a saturated value.

    Exact ties of a value that the pool's input cannot leave under a small
    perturbation (a gate primitive saturated at exactly 0 or 1) are harmless;
    other near-ties would make the max non-differentiable at the base point.
    """
    gap = np.inf
    for li, layer in enumerate(layers):
        if layer.kind != "maxpool":
            continue
        k, s = layer.kernel, layer.stride
        if k == 1:  # a 1x1 max-pool is a strided copy: no ties
            continue
        _, ho, wo = layer.out_shape
        for a in trace.inputs[li]:
            for i in range(ho):
                for j in range(wo):
                    win = a[:, i * s : i * s + k, j * s : j * s + k].reshape(a.shape[0], -1)
                    srt = np.sort(win, axis=1)
                    top, second = srt[:, -1], srt[:, -2]
                    saturated = (top == second) & ((top == 1.0) | (top == 0.0))
                    g = np.where(saturated, np.inf, top - second)
                    gap = min(gap, float(g.min()))
    return gap


def central_difference(f, params: dict[str, np.ndarray], name: str, index: tuple, h: float) -> float:
    """``(f(p + h e) - f(p - h e)) / 2h`` for one coordinate of ``params[name]``."""
    arr = params[name]
    old = arr[index]
    arr[index] = old + h
    fp = f(params)
    arr[index] = old - h
    fm = f(params)
    arr[index] = old
    return (fp - fm) / (2.0 * h)


def coordinate_subset(shape: tuple, rng: np.random.Generator, n: int) -> list[tuple]:
    """All coordinates of a small tensor, else ``n`` random distinct ones."""
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= n else rng.choice(size, n, replace=False)
    return [tuple(int(v) for v in np.unravel_index(i, shape)) for i in flat]


def rel_err(fd: float, an: float) -> float:
    return abs(fd - an) / max(abs(fd) + abs(an), 1e-300)
