"""Synthetic class impressions (Nayak et al., "Zero-shot knowledge distillation
in deep networks", ICML 2019), as PrivateSNN generates its conversion data.

1. Class similarity from the output layer's weight rows ``w_k`` (the class
   vectors): ``S_kj = cos(w_k, w_j)``, each row min-max normalised to
   ``[0, 1]`` and raised by a small ``floor`` (Dirichlet concentrations must be > 0).
2. Soft labels: for an impression of class ``k``, ``q ~ Dir(beta * S_k)``; half
   the impressions of each class use ``beta = 1`` and half ``beta = 0.1``
   (Nayak et al. use the two scalings for diversity: a small ``beta`` gives
   sparser, more confident labels).
3. Images: from uniform noise, Adam on the input minimising the cross-entropy
   of ``softmax(z / 20)`` against ``q`` (:mod:`.optimize`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdpsnn.conversion.optimize import InputSearch, optimize_inputs
from npdpsnn.errors import UserError
from npdpsnn.network import Network

DEFAULT_BETAS: tuple[float, ...] = (1.0, 0.1)
DEFAULT_FLOOR = 1e-3


def class_similarity(w_out: np.ndarray, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """``(K, K)``: row-wise min-max normalised cosine similarity of the rows of
    ``w_out`` ``(K, features)``, plus ``floor``."""
    w = np.asarray(w_out, np.float64)
    if w.ndim != 2 or w.shape[0] < 2:
        raise UserError(f"the output weights must be (classes >= 2, features), got {w.shape}")
    if not floor > 0:
        raise UserError(f"floor must be > 0, got {floor!r}")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise UserError("an output weight row is zero: its class has no direction")
    u = w / norms
    s = u @ u.T
    lo = s.min(axis=1, keepdims=True)
    hi = s.max(axis=1, keepdims=True)
    return (s - lo) / np.maximum(hi - lo, 1e-12) + floor


def dirichlet_soft_labels(similarity: np.ndarray, classes: np.ndarray, betas: tuple[float, ...],
                          rng: np.random.Generator) -> np.ndarray:
    """One soft label per entry of ``classes``: ``q ~ Dir(beta * S[k])`` with
    ``beta`` cycling through ``betas`` over the impressions of each class."""
    sim = np.asarray(similarity, np.float64)
    classes = np.asarray(classes, np.int64)
    if not betas or any(not b > 0 for b in betas):
        raise UserError(f"betas must be positive, got {betas!r}")
    out = np.empty((len(classes), sim.shape[1]))
    seen: dict[int, int] = {}
    for i, k in enumerate(classes):
        j = seen.get(int(k), 0)
        seen[int(k)] = j + 1
        out[i] = rng.dirichlet(betas[j % len(betas)] * sim[k])
    return out


@dataclass
class Impressions:
    """Synthetic images ``x`` ``(N, C, H, W)`` float32 (normalised pixel space),
    their soft labels ``q`` ``(N, K)`` and the class ``y`` each was made for."""

    x: np.ndarray
    q: np.ndarray
    y: np.ndarray


def pixel_box(normalization: dict) -> tuple[float, float]:
    """The normalised values of pixels 0 and 1: ``((0 - mean) / std, (1 - mean) / std)``."""
    m, s = float(normalization["mean"]), float(normalization["std"])
    return (-m / s, (1.0 - m) / s)


def class_impressions(net: Network, per_class: int, box: tuple[float, float], search: InputSearch = InputSearch(),
                      betas: tuple[float, ...] = DEFAULT_BETAS, floor: float = DEFAULT_FLOOR, seed: int = 0,
                      backend: str = "reference") -> Impressions:
    """``per_class`` impressions of every class of the trained ``net`` (no data used)."""
    if not (isinstance(per_class, int) and per_class >= 1):
        raise UserError(f"per_class must be an integer >= 1, got {per_class!r}")
    out_name = [s.name for s in net.slots if s.name.endswith(".weight")][-1]
    sim = class_similarity(net.params[out_name], floor)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC1A55]))
    y = np.repeat(np.arange(net.num_classes), per_class)
    q = dirichlet_soft_labels(sim, y, betas, rng)
    x = optimize_inputs(net, q, box, search, rng, backend)
    return Impressions(x, q, y)
