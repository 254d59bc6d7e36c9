"""The released NeuralDP model: frozen encoder, centre, bound, input standardisation, head.

Prediction for images ``x`` (no noise: test data are not protected)::

    h = layer-K features of x (frozen encoder)       -> :mod:`.features`
    u = (bound_C(h - centre) - mean) / std            -> :mod:`.release`
    logits = head(u)                                  (the head network, any backend)

Saved as a folder: ``encoder.h5`` and ``head.h5`` (weights-only model files of
:mod:`npdpsnn.training.checkpoint`) and ``neuraldp.json`` (the cut, ``C``, the
bound, the centre and the standardisation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.kernels.protocol import Backend
from npdpsnn.network import Network
from npdpsnn.neuraldp.features import FeatureCache, LayerSplit, layer_features, split_at
from npdpsnn.neuraldp.release import bound_rows
from npdpsnn.training.checkpoint import load_network, save_model
from npdpsnn.training.files import atomic_write_json
from npdpsnn.training.trainer import Evaluation, evaluate_model

__all__ = ["NeuralDPModel", "load_neuraldp_model"]

_FORMAT = "npdpsnn.neuraldp_model/1"


@dataclass
class NeuralDPModel:
    """Everything needed to classify: ``encoder`` (layers ``0..K`` used), its
    ``split``, the row bound ``clip`` / ``bound``, ``centre`` ``(d,)``, the head's
    input ``mean`` and ``std`` ``(d,)``, and the ``head`` network."""

    encoder: Network
    split: LayerSplit
    clip: float
    bound: str
    centre: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    head: Network

    def head_inputs_from_rows(self, rows: np.ndarray) -> np.ndarray:
        """Standardised head inputs ``(B, *feature_shape)`` float32 from rows ``(B, d)``."""
        u = (np.asarray(rows, np.float64) - self.mean) / self.std
        return u.astype(np.float32).reshape(len(u), *self.split.feature_shape)

    def head_inputs(self, x, cache: FeatureCache | None = None) -> np.ndarray:
        """Noise-free head inputs of images ``x`` (features through ``cache`` if given)."""
        h = (cache.features(self.encoder, x, self.split) if cache is not None
             else layer_features(self.encoder, x, self.split)).reshape(len(x), -1)
        return self.head_inputs_from_rows(bound_rows(h - self.centre, self.clip, self.bound))

    def evaluate(self, x, y, backend: str | Backend = "numba", cache: FeatureCache | None = None) -> Evaluation:
        """Accuracy, per-example losses and logits on images ``x`` with labels ``y``."""
        return evaluate_model(self.head, self.head_inputs(x, cache), y, backend)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(folder / "encoder.h5", self.encoder)
        save_model(folder / "head.h5", self.head)
        atomic_write_json(folder / "neuraldp.json", {
            "format": _FORMAT, "privatize_layer": self.split.index + 1, "head": self.split.head_spec, "clip": self.clip, "bound": self.bound,
            "centre": self.centre.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()})


def load_neuraldp_model(folder: str | Path) -> NeuralDPModel:
    """Read a folder written by :meth:`NeuralDPModel.save`."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "neuraldp.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {folder / 'neuraldp.json'}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise UserError(f"{folder / 'neuraldp.json'} is not a NeuralDP model description")
    encoder = load_network(folder / "encoder.h5")
    split = split_at(encoder.layers, int(meta["privatize_layer"]), str(meta["head"]))
    d = split.feature_size
    arrays = {k: np.asarray(meta[k], np.float64) for k in ("centre", "mean", "std")}
    if any(v.shape != (d,) or not np.all(np.isfinite(v)) for v in arrays.values()):
        raise UserError(f"{folder / 'neuraldp.json'}: centre, mean and std must be {d} finite numbers")
    return NeuralDPModel(encoder, split, float(meta["clip"]), str(meta["bound"]), arrays["centre"], arrays["mean"],
                         arrays["std"], load_network(folder / "head.h5"))
