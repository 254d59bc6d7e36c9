"""Export a network to a plain ``.npz`` archive (no pickle).

The archive holds every parameter under its PyTorch name (``conv1.weight``,
float32, PyTorch layout) and ``__meta__``, a 0-d unicode array with a JSON
object: the spec, the input shape, the model options and the format tag.  It
loads with ``np.load(path, allow_pickle=False)`` alone.
"""

from __future__ import annotations

import json
import os

import numpy as np

from npdpsnn import __version__
from npdpsnn.network import Network
from npdpsnn.training.files import atomic_write

NPZ_FORMAT = "npdpsnn-npz"


def export_npz(net: Network, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``net`` to ``path`` atomically; ``extra`` (JSON-able) joins the description."""
    meta = {"format": NPZ_FORMAT, "npdpsnn_version": __version__, "spec": net.spec,
            "input_shape": list(net.input_shape), "model_config": net.config.to_dict(), **(extra or {})}
    arrays = {name: np.asarray(arr, np.float32) for name, arr in net.params.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)

    atomic_write(path, write, suffix=".npz.tmp")


def read_npz(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """``(description, {name: array})`` of an archive written by :func:`export_npz`."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        return meta, {k: z[k] for k in z.files if k != "__meta__"}
