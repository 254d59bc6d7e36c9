"""The backend protocol and registry (:mod:`npdpsnn.kernels.backend`): names and
errors, backend objects in the ``Network`` API, named results, bound data, and
an import graph without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from npdpsnn.data.normalization import NormalizedImages
from npdpsnn.engine import Engine
from npdpsnn.errors import BackendError, UserError
from npdpsnn.kernels.backend import backend_names, get_backend, register_backend
from npdpsnn.kernels.protocol import Backend, ClippedSum, Gradients
from npdpsnn.network import Network

CPU_BACKENDS = ["reference", "numba"]


def _case(B=6, seed=1):
    net = Network.from_spec("2C3S1-P2S1-5-3", (1, 6, 6), T=3, seed=seed)
    net.theta *= 2
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (B, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, B)
    return net, x, y


# ------------------------------------------------------------------ registry
def test_registry_names_and_unknown_backend():
    assert backend_names() == ("reference", "numba", "cuda")
    for bad in ("gpu", "torch", "Numba"):
        with pytest.raises(BackendError) as err:
            get_backend(bad)
        assert str(err.value) == f"unknown backend {bad!r}; choose one of reference, numba, cuda"
    with pytest.raises(BackendError, match="Backend object"):
        get_backend(3)
    with pytest.raises(BackendError, match="already registered"):
        register_backend("numba", lambda engine: None)
    net, x, _ = _case()
    with pytest.raises(UserError, match="unknown backend 'gpu'"):
        net.forward(x, backend="gpu")


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_backend_objects(name):
    be = get_backend(name)
    assert isinstance(be, Backend) and be.name == name
    assert get_backend(be) is be
    with pytest.raises(BackendError, match="another engine"):
        get_backend(be, engine=Engine())
    net, x, y = _case()
    other = get_backend(name, engine=Engine(threads=1))
    assert other is not be
    assert np.array_equal(net.forward(x, backend=other), net.forward(x, backend=name))
    assert np.array_equal(net.predict(x, backend=other), net.predict(x, backend=name))


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_named_results_in_theta_order(name):
    net, x, y = _case()
    out = net.clipped_grad_sum(x, y, 0.5, backend=name)
    assert isinstance(out, ClippedSum) and out.total.shape == (net.num_params,) and out.total.dtype == np.float64
    assert out.correct.dtype == np.int8 and out.norms.shape == out.losses.shape == (len(x),)
    g = net.per_example_grads(x, y, backend=name)
    assert isinstance(g, Gradients) and set(g.grads) == set(net.params)
    flat = get_backend(name).per_example_grads(net, x, y)
    assert isinstance(flat, Gradients) and flat.grads.shape == (len(x), net.num_params)
    for s in net.slots:  # the backend's flat gradients are in theta order (PyTorch layouts)
        assert np.array_equal(flat.grads[:, s.offset : s.offset + s.size].reshape(g.grads[s.name].shape),
                              g.grads[s.name])
    assert isinstance(net.input_grads(x, y, backend=name), Gradients)


# ------------------------------------------------------------------ bound data
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_bound_data_indexed_equals_plain(name):
    net, x, y = _case(B=20)
    be = get_backend(name)
    idx = np.array([3, 0, 17, 3, 9])
    data = be.bind(x, y)
    got, want = be.clipped_sum_indexed(net, data, idx, 0.5), be.clipped_sum(net, x[idx], y[idx], 0.5)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(be.forward_indexed(net, data, idx), be.forward(net, x[idx]))
    assert be.clipped_sum_indexed(net, data, idx[:0], 0.5).total.shape == (net.num_params,)
    with pytest.raises(IndexError):
        be.clipped_sum_indexed(net, data, np.array([20]), 0.5)
    with pytest.raises(IndexError):
        be.forward_indexed(net, data, np.array([[0]]))
    with pytest.raises(UserError):
        be.clipped_sum_indexed(net, data, idx, 0.0)


def test_bound_normalized_images():
    """A dataset's uint8 images bind as they are and normalise on indexing."""
    net, _, y = _case(B=20)
    raw = np.random.default_rng(2).integers(0, 256, (20, 1, 6, 6), dtype=np.uint8)
    norm = NormalizedImages(raw, {"mean": 0.13, "std": 0.31})
    be = get_backend("numba")
    data = be.bind(norm, y)
    idx = np.arange(0, 20, 3)
    got = be.clipped_sum_indexed(net, data, idx, 0.5)
    want = net.clipped_grad_sum(norm[idx], y[idx], 0.5)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)


def test_bound_data_must_fit_the_network():
    net, x, y = _case()
    be = get_backend("numba")
    with pytest.raises(UserError, match="shape"):
        be.clipped_sum_indexed(net, be.bind(np.zeros((4, 1, 5, 5), np.float32), np.zeros(4, np.int64)), [0], 1.0)
    with pytest.raises(UserError, match="labels"):
        be.clipped_sum_indexed(net, be.bind(x, np.full(len(x), 7)), [0], 1.0)
    with pytest.raises(UserError, match="labels"):
        be.bind(x, y[:-1])
    with pytest.raises(UserError):
        be.bind(np.zeros((4, 36), np.float32))


# ------------------------------------------------------------------ imports
def _package_imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports (module level or inside functions)."""
    root = Path(__file__).resolve().parents[1]
    files = {}
    for base, prefix in ((root / "npdpsnn", ["npdpsnn"]), (root / "cli", ["npdpsnn", "cli"])):
        for p in base.rglob("*.py"):
            parts = prefix + list(p.relative_to(base).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names if a.name.startswith("npdpsnn")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("npdpsnn"):
                deps |= {resolve(f"{node.module}.{a.name}") for a in node.names}
        graph[mod] = deps - {None, mod}
    return graph


def test_no_import_cycles():
    graph = _package_imports()
    assert "npdpsnn.kernels.backend" in graph and "npdpsnn.engine" in graph
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
