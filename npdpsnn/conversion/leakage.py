"""Class leakage, measured: class representatives inverted from a model's weights,
scored with numbers instead of by eye.

Inversion: for each class ``k``, images optimised from uniform noise to make the
model output class ``k`` (:func:`~npdpsnn.conversion.optimize.optimize_inputs`
with a one-hot target, model inversion as in Fredrikson et al. 2015) -- for an
ANN through its exact input gradient, for an SNN through its surrogate input
gradient (BPTT one layer further), taken in the network's unit-threshold form
(:func:`~npdpsnn.conversion.balance.unit_thresholds`: the same spikes; with a
threshold far from 1 the gradient through reset by subtraction explodes) and
with the ``darctanh`` surrogate by default: the attacker chooses the surrogate,
and the gate's window ``|V - 1| < 1/2`` gives no gradient at all from uniform
noise, where the converted MNIST net's last hidden layer stays below ``V = 0.21``
(logits exactly 0, the search stuck at ``ln 10``) -- no protection, an artifact.  The
weights "read as an ANN" are :func:`~npdpsnn.conversion.balance.as_ann`.

Scores of inverted images ``x_k`` (PrivateSNN judges the same question by eye):

* ``judge_confidence``: mean probability an independently trained classifier
  gives the intended class (0.1 for ten classes is chance; 1 is full leakage);
* ``judge_accuracy``: how often its prediction is the intended class;
* ``ssim_to_class_mean``: mean SSIM (:func:`npdpsnn.audit.images.ssim_batch`)
  between ``x_k`` and the mean real image of class ``k``, both mapped back to
  ``[0, 1]`` pixels, and ``ssim_margin``: that minus the mean SSIM to the other
  classes' means (0 when the image is no closer to its own class).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from npdpsnn.audit.images import ssim_batch
from npdpsnn.conversion.balance import unit_thresholds
from npdpsnn.conversion.optimize import InputSearch, optimize_inputs, softmax
from npdpsnn.errors import UserError
from npdpsnn.network import Network


def class_means(x, y, num_classes: int) -> np.ndarray:
    """Mean image of each class ``(K, C, H, W)`` (normalised pixel space)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    missing = [k for k in range(num_classes) if not np.any(y == k)]
    if missing:
        raise UserError(f"no example of class(es) {missing}: cannot form class means")
    return np.stack([x[y == k].mean(axis=0) for k in range(num_classes)])


def invert_classes(net: Network, per_class: int, box: tuple[float, float], search: InputSearch, seed: int = 0,
                   backend: str = "reference", surrogate: str | None = "darctanh") -> tuple[np.ndarray, np.ndarray]:
    """``(images (K * per_class, C, H, W), classes)`` inverted from ``net``
    (an SNN through ``surrogate``; None keeps its own)."""
    y = np.repeat(np.arange(net.num_classes), per_class)
    target = np.eye(net.num_classes)[y]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1A7]))
    if net.config.kind == "snn":
        net = unit_thresholds(net)
        if surrogate is not None and surrogate != net.config.surrogate:
            theta = net.theta
            net = Network(net.spec, net.input_shape, replace(net.config, surrogate=surrogate))
            net.theta[:] = theta
    return optimize_inputs(net, target, box, search, rng, backend), y


@dataclass
class LeakageScores:
    judge_confidence: float
    judge_accuracy: float
    ssim_to_class_mean: float
    ssim_margin: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def to_unit(x: np.ndarray, normalization: dict) -> np.ndarray:
    """Normalised images back to ``[0, 1]`` pixels (clipped)."""
    return np.clip(np.asarray(x, np.float64) * float(normalization["std"]) + float(normalization["mean"]), 0.0, 1.0)


def score_images(x: np.ndarray, y: np.ndarray, judge: Network, means: np.ndarray, normalization: dict,
                 backend: str = "reference") -> LeakageScores:
    """The leakage scores of images ``x`` meant to show classes ``y``."""
    x = np.asarray(x)
    y = np.asarray(y, np.int64)
    if len(x) != len(y) or len(x) == 0:
        raise UserError(f"need as many images as classes (> 0), got {len(x)} and {len(y)}")
    p = softmax(judge.forward(x, backend))
    conf = float(p[np.arange(len(y)), y].mean())
    acc = float((p.argmax(axis=1) == y).mean())
    xu = to_unit(x, normalization)
    mu = to_unit(means, normalization)
    own = ssim_batch(xu, mu[y])
    others = np.stack([ssim_batch(xu, np.repeat(mu[k : k + 1], len(x), axis=0)) for k in range(len(mu))], axis=1)
    mask = np.ones_like(others, bool)
    mask[np.arange(len(y)), y] = False
    other_mean = (others * mask).sum(axis=1) / mask.sum(axis=1)
    return LeakageScores(conf, acc, float(own.mean()), float((own - other_mean).mean()), len(x))
