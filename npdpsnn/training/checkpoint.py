"""HDF5 checkpoints: weights, optimiser, privacy ledger, RNG states, progress.

Layout (format version 1), no pickle anywhere -- arrays are datasets, the rest
is JSON in attributes::

    /params/<name>          float32, PyTorch layout (conv1.weight, ...)
    /optimizer/velocity     float64 (only with momentum)
    attrs: format, format_version, npdpsnn_version, spec, input_shape,
           model_config (JSON), train_config (JSON), accountant (JSON),
           rng_sampling, rng_noise (JSON bit-generator states),
           epoch (completed epochs), step (optimizer steps), metrics (JSON rows)

Written atomically (temp file + rename) so an interrupted save leaves the
previous checkpoint intact.  A checkpoint holds the random generators' states:
it is as private as the training data.  The file to publish is ``model.h5``
(:func:`save_model`: weights, spec and model options only).
:func:`load_network` reads either file with h5py and NumPy alone; its
``forward(x, backend="reference")`` needs nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from npdpsnn import __version__
from npdpsnn.errors import CheckpointError
from npdpsnn.model.config import ModelConfig
from npdpsnn.network import Network
from npdpsnn.training.files import atomic_write, jsonable

FORMAT = "npdpsnn-checkpoint"
MODEL_FORMAT = "npdpsnn-model"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.h5"
MODEL_NAME = "model.h5"


@dataclass
class CheckpointState:
    network: Network
    train_config: dict
    accountant: dict | None
    rng_sampling: dict | None
    rng_noise: dict | None
    optimizer: dict = field(default_factory=dict)
    epoch: int = 0
    step: int = 0
    metrics: list = field(default_factory=list)
    data_fingerprint: str = ""


def _write_network(f, net: Network, fmt: str) -> None:
    """Format tag, spec, model options and the named weights (PyTorch layouts)."""
    f.attrs["format"] = fmt
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["npdpsnn_version"] = __version__
    f.attrs["spec"] = net.spec
    f.attrs["input_shape"] = json.dumps(list(net.input_shape))
    f.attrs["model_config"] = json.dumps(net.config.to_dict())
    g = f.create_group("params")
    for name, arr in net.params.items():
        g.create_dataset(name, data=np.asarray(arr, np.float32))


def save_checkpoint(path: str | os.PathLike, state: CheckpointState) -> None:
    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            _write_network(f, state.network, FORMAT)
            f.attrs["train_config"] = json.dumps(state.train_config)
            f.attrs["accountant"] = json.dumps(state.accountant)
            f.attrs["rng_sampling"] = json.dumps(state.rng_sampling)
            f.attrs["rng_noise"] = json.dumps(state.rng_noise)
            f.attrs["epoch"] = int(state.epoch)
            f.attrs["step"] = int(state.step)
            f.attrs["metrics"] = json.dumps(jsonable(state.metrics), allow_nan=False)
            f.attrs["data_fingerprint"] = state.data_fingerprint
            o = f.create_group("optimizer")
            for name, arr in state.optimizer.items():
                o.create_dataset(name, data=arr)

    atomic_write(path, write, suffix=".h5.tmp")


def save_model(path: str | os.PathLike, net: Network) -> None:
    """Weights-only file for release: no seeds, RNG states or training records."""

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            _write_network(f, net, MODEL_FORMAT)

    atomic_write(path, write, suffix=".h5.tmp")


def resolve_checkpoint_path(path: str | os.PathLike, name: str = CHECKPOINT_NAME) -> Path:
    """A run folder or a file -> the file."""
    p = Path(path)
    if p.is_dir():
        p = p / name
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    return p


def _read_network(f, p: Path) -> Network:
    version = int(f.attrs["format_version"])
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{p} has checkpoint format {version}; this npdpsnn reads {FORMAT_VERSION}")
    cfg = ModelConfig(**json.loads(f.attrs["model_config"]))
    net = Network(str(f.attrs["spec"]), tuple(json.loads(f.attrs["input_shape"])), cfg)
    for name in net.params:
        if name not in f["params"]:
            raise CheckpointError(f"{p} lacks parameter {name!r}")
        arr = f["params"][name][()]
        if arr.shape != net.params[name].shape:
            raise CheckpointError(f"{p}: parameter {name!r} has shape {arr.shape}, expected {net.params[name].shape}")
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{p}: parameter {name!r} contains NaN or infinity")
        net.params[name][...] = arr
    return net


def _json_attr(f, key: str, kind: type, p: Path):
    value = json.loads(f.attrs[key])
    if not isinstance(value, kind):
        raise CheckpointError(f"{p}: {key} is not a {kind.__name__}")
    return value


def load_checkpoint(path: str | os.PathLike) -> CheckpointState:
    """Read a checkpoint written by :func:`save_checkpoint`; every defect
    (not HDF5, truncated, wrong format, missing or mis-shaped arrays, NaN
    weights, inconsistent privacy ledger) raises :class:`CheckpointError`
    naming the file."""
    p = resolve_checkpoint_path(path)
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CheckpointError(f"{p} is not an npdpsnn checkpoint")
            net = _read_network(f, p)
            state = CheckpointState(
                network=net,
                train_config=_json_attr(f, "train_config", dict, p),
                accountant=_json_attr(f, "accountant", dict, p),
                rng_sampling=_json_attr(f, "rng_sampling", dict, p),
                rng_noise=_json_attr(f, "rng_noise", dict, p),
                optimizer={k: f["optimizer"][k][()] for k in f.get("optimizer", {})},
                epoch=int(f.attrs["epoch"]),
                step=int(f.attrs["step"]),
                metrics=_json_attr(f, "metrics", list, p),
                data_fingerprint=str(f.attrs.get("data_fingerprint", "")),
            )
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {str(exc).splitlines()[0]}") from None
    if state.epoch < 0 or state.step < 0 or len(state.metrics) != state.epoch:
        raise CheckpointError(f"{p}: inconsistent progress (epoch {state.epoch}, step {state.step}, "
                              f"{len(state.metrics)} metric rows)")
    return state


def is_model_file(path: str | os.PathLike) -> bool:
    """True for a weights-only ``model.h5`` written by :func:`save_model`."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == MODEL_FORMAT
    except (OSError, RuntimeError, ValueError):
        return False


def load_network(path: str | os.PathLike) -> Network:
    """The model in ``model.h5``, a checkpoint, or a run folder, ready for inference."""
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_NAME if (p / MODEL_NAME).is_file() else p / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"no model at {p}")
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") not in (FORMAT, MODEL_FORMAT):
                raise CheckpointError(f"{p} is not an npdpsnn model or checkpoint")
            return _read_network(f, p)
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read model {p}: {str(exc).splitlines()[0]}") from None
