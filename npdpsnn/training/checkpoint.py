"""HDF5 checkpoints: weights, optimiser, privacy ledger, RNG states, progress.

Layout (format version 2), no pickle anywhere -- arrays are datasets, the rest
is JSON in attributes::

    /params/<name>          float32, PyTorch layout (conv1.weight, ...)
    /optimizer/<name>       float64, one value per parameter (velocity with
                            momentum, ema with weight averaging)
    attrs: format, format_version, npdpsnn_version, spec, input_shape,
           model_config (JSON), train_config (JSON), accountant (JSON),
           rng_sampling, rng_noise (JSON bit-generator states),
           epoch (completed epochs), step (optimizer steps), metrics (JSON rows),
           data_fingerprint, checksum (JSON, see :mod:`.safe_hdf5`)

Files are built in memory, sealed with a checksum (:func:`.safe_hdf5.hdf5_image`)
and written atomically with plain Python I/O (temp file + rename), so a failed
or interrupted save leaves the previous checkpoint intact and a full disk is a
one-line error.  They are read only through :func:`.safe_hdf5.open_hdf5`: no
external storage, links or virtual datasets, shapes and sizes checked before any
read (:mod:`npdpsnn.limits`), checksums verified.  Version 1 files (no
checksum, written before this format) are refused with a message saying so:
no release ever wrote them.

A checkpoint holds the random generators' states: it is as private as the
training data.  The file to publish is ``model.h5`` (:func:`save_model`:
weights, spec and model options only).  :func:`load_network` reads either file
with h5py and NumPy alone and never reads the optimiser state; its
``forward(x, backend="reference")`` needs nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import h5py
import numpy as np

from npdpsnn import __version__
from npdpsnn.errors import CheckpointError
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.spec import check_network_size, parse_spec
from npdpsnn.network import Network
from npdpsnn.training.files import atomic_write_bytes, jsonable
from npdpsnn.training.safe_hdf5 import SafeHdf5, hdf5_image, open_hdf5, read_format

FORMAT = "npdpsnn-checkpoint"
MODEL_FORMAT = "npdpsnn-model"
FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.h5"
MODEL_NAME = "model.h5"
OPTIMIZER = "optimizer/"


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


def _write_network(f: h5py.File, net: Network, fmt: str) -> None:
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


def checkpoint_bytes(state: CheckpointState) -> bytes:
    """The sealed checkpoint file for ``state``, built in memory."""

    def build(f: h5py.File) -> None:
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

    return hdf5_image(build)


def model_bytes(net: Network, description: dict | None = None) -> bytes:
    """The sealed release file for ``net``: weights, spec, model options and, when
    given, the ``description`` (JSON: dataset, class names, input normalisation,
    the privacy statement and its numbers; see docs/model-format.md) -- no seeds,
    RNG states or training records."""

    def build(f: h5py.File) -> None:
        _write_network(f, net, MODEL_FORMAT)
        if description is not None:
            f.attrs["description"] = json.dumps(jsonable(description), allow_nan=False)

    return hdf5_image(build)


def save_checkpoint(path: str | os.PathLike, state: CheckpointState) -> None:
    """Write :func:`checkpoint_bytes` atomically; a failed write is a one-line UserError."""
    atomic_write_bytes(path, checkpoint_bytes(state), suffix=".h5.tmp")


def save_model(path: str | os.PathLike, net: Network, description: dict | None = None) -> None:
    """Write :func:`model_bytes` atomically; a failed write is a one-line UserError."""
    atomic_write_bytes(path, model_bytes(net, description), suffix=".h5.tmp")


def resolve_checkpoint_path(path: str | os.PathLike, name: str = CHECKPOINT_NAME) -> Path:
    """A run folder or a file -> the file."""
    return _resolve(path, (name,), "checkpoint")


def _resolve(path: str | os.PathLike, names: tuple[str, ...], what: str) -> Path:
    """``path`` itself, or in a run folder the first of ``names`` that exists (else
    the last); :class:`CheckpointError` when there is none or the name is unusable
    (too long, a loop of links)."""
    p = Path(path)
    try:
        if p.is_dir():
            p = next((p / n for n in names if (p / n).exists()), p / names[-1])
        if not p.exists():
            raise CheckpointError(f"no {what} at {p}")
    except OSError as exc:
        raise CheckpointError(f"cannot read {p}: {exc.strerror or exc}") from None
    return p


def _optimizer_datasets(h: SafeHdf5) -> list[str]:
    """``optimizer/<name>`` datasets of a checkpoint (one level, any name the optimiser wrote)."""
    return [n for n in h.datasets if n.startswith(OPTIMIZER) and "/" not in n[len(OPTIMIZER):]]


def _read_network(h: SafeHdf5, allowed: Collection[str] = ()) -> Network:
    """The network in an open file: options and shapes checked against the limits
    before anything is allocated, then the weights read (finite as float32).
    Datasets other than the weights and ``allowed`` are refused."""
    p = h.path
    options = h.json("model_config", dict)
    try:
        cfg = ModelConfig(**options)
    except TypeError:
        raise CheckpointError(f"{p}: model_config has unknown keys {sorted(options)}") from None
    spec = h.text("spec")
    input_shape = h.json("input_shape", list)
    if len(input_shape) != 3 or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in input_shape):
        raise CheckpointError(f"{p}: input_shape must be three integers, got {input_shape}")
    check_network_size(parse_spec(spec, tuple(input_shape)), cfg.steps)
    net = Network(spec, tuple(input_shape), cfg)
    expected = {f"params/{name}" for name in net.params}
    unexpected = sorted(set(h.datasets) - expected - set(allowed))
    if unexpected:
        raise CheckpointError(f"{p} holds unexpected datasets {unexpected}")
    for name, view in net.params.items():
        view[...] = h.read(f"params/{name}", view.shape, np.float32)
    return net


def load_checkpoint(path: str | os.PathLike, with_optimizer: bool = True) -> CheckpointState:
    """Read a checkpoint written by :func:`save_checkpoint` (a file or run folder).

    Every defect (not a regular file, not HDF5, truncated, wrong format or
    version, links or data outside the file, missing, mis-shaped or oversized
    arrays, NaN or infinite weights, checksum mismatch, inconsistent progress)
    raises a one-line :class:`CheckpointError` naming the file.  With
    ``with_optimizer=False`` (evaluation) the optimiser state is not read.
    """
    p = resolve_checkpoint_path(path)
    with open_hdf5(p, formats=(FORMAT,), version=FORMAT_VERSION, kind="checkpoint") as h:
        names = _optimizer_datasets(h)
        net = _read_network(h, allowed=names)
        optimizer = {}
        if with_optimizer:
            optimizer = {n[len(OPTIMIZER):]: h.read(n, (net.num_params,), np.float64) for n in names}
        state = CheckpointState(
            network=net,
            train_config=h.json("train_config", dict),
            accountant=h.json("accountant", dict),
            rng_sampling=h.json("rng_sampling", dict),
            rng_noise=h.json("rng_noise", dict),
            optimizer=optimizer,
            epoch=h.integer("epoch"),
            step=h.integer("step"),
            metrics=h.json("metrics", list),
            data_fingerprint=h.text("data_fingerprint"),
        )
    if state.epoch < 0 or state.step < 0 or len(state.metrics) != state.epoch:
        raise CheckpointError(f"{p}: inconsistent progress (epoch {state.epoch}, step {state.step}, "
                              f"{len(state.metrics)} metric rows)")
    return state


def is_model_file(path: str | os.PathLike) -> bool:
    """True for a weights-only ``model.h5`` written by :func:`save_model` (judged by
    its format tag; :func:`load_network` verifies the rest)."""
    try:
        return read_format(path) == MODEL_FORMAT
    except CheckpointError:
        return False


def load_model_description(path: str | os.PathLike) -> dict:
    """The description stored in a release ``model.h5`` (``{}`` for a file without one)."""
    p = _resolve(path, (MODEL_NAME,), "model")
    with open_hdf5(p, formats=(MODEL_FORMAT,), version=FORMAT_VERSION, kind="model") as h:
        return h.json("description", dict) if "description" in h.attrs else {}


def load_network(path: str | os.PathLike) -> Network:
    """The model in ``model.h5``, a checkpoint, or a run folder, ready for inference.

    Reads only the spec, the model options and the weights -- never the
    optimiser state -- with the checks of :func:`load_checkpoint`."""
    p = _resolve(path, (MODEL_NAME, CHECKPOINT_NAME), "model")
    with open_hdf5(p, formats=(FORMAT, MODEL_FORMAT), version=FORMAT_VERSION, kind="model or checkpoint") as h:
        return _read_network(h, _optimizer_datasets(h) if h.attrs.get("format") == FORMAT else ())
