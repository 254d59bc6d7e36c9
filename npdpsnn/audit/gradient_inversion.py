"""Gradient inversion: rebuild a training image from one example's (privatised) gradient.

Optimisation attack in the manner of Geiping et al. 2020 ("Inverting gradients
-- how easy is it to break privacy in federated learning?"): find the image
``x`` in ``[0, 1]`` whose gradient ``g(x) = dL(x, y)/dtheta`` points the way of
the observed ``g*``,

    J(x) = 1 - cos(g(x), g*) + lambda TV(x),

by Adam with restarts, the label ``y`` known (it is read off the last layer's
bias gradient for a single example: iDLG, Zhao et al. 2020).  The gradient of
the cosine term is a mixed second derivative,
``dcos/dx = (d/dx g(x))^T v`` with ``v = dcos/dg``, which equals the derivative
of the input gradient along ``v`` in parameter space,
``d/de [dL(x; theta + e v)/dx]`` at ``e = 0``; it is computed by a central
difference of two input gradients of the engine (no autodiff needed).  For a
spiking network the input gradient is the surrogate gradient, so the attack
sees what a surrogate-gradient attacker sees.

The observed gradient is ``raw`` (``g``), ``clipped`` (``g`` scaled to norm ``R``
-- the cosine does not see the scale, so clipping alone protects nothing here)
or ``noisy`` (clipped plus ``N(0, sigma^2 R^2 I)``: one example's DP-SGD
contribution before the division by the batch size, the attacker's best case).
Quality is PSNR and SSIM against the true image in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdpsnn.audit.images import psnr, ssim
from npdpsnn.errors import UserError
from npdpsnn.network import Network
from npdpsnn.privacy.mechanism import clip_flat


@dataclass(frozen=True)
class InversionResult:
    """The reconstruction ``image`` (``(C, H, W)`` in [0, 1]) of one observed gradient."""

    variant: str
    sigma: float | None
    image: np.ndarray
    psnr: float
    ssim: float | None
    cosine: float


def _flat(net: Network, grads) -> np.ndarray:
    g = grads.grads if hasattr(grads, "grads") else grads
    if isinstance(g, dict):
        return np.concatenate([np.asarray(g[s.name], np.float64).reshape(len(next(iter(g.values()))), -1)
                               for s in net.slots], axis=1)
    return np.asarray(g, np.float64)


def observed_gradient(net: Network, x: np.ndarray, y: int, variant: str, clip: float = 1.0,
                      sigma: float = 0.0, rng: np.random.Generator | None = None, backend: str = "numba") -> np.ndarray:
    """The gradient the attacker observes for one example ``x`` ``(C, H, W)`` (normalised input)."""
    g = _flat(net, net.per_example_grads(x[None], np.array([y]), backend=backend))
    if variant == "raw":
        return g[0]
    total, _ = clip_flat(g, clip)
    if variant == "clipped":
        return total
    if variant == "noisy":
        if rng is None:
            raise UserError("the noisy gradient needs a random generator")
        return total + rng.normal(0.0, sigma * clip, size=total.shape)
    raise UserError(f"unknown gradient variant {variant!r}; choose raw, clipped or noisy")


def infer_label(net: Network, observed: np.ndarray) -> int:
    """iDLG: for one example the output bias gradient is ``softmax - onehot(y)``,
    negative only at ``y``."""
    last = net.slots[-1]
    if not last.name.endswith(".bias"):
        raise UserError("label inference needs an output layer with a bias")
    return int(np.argmin(observed[last.offset : last.offset + last.size]))


def _tv_grad(img: np.ndarray) -> tuple[float, np.ndarray]:
    """Anisotropic total variation ``sum |dx| + |dy|`` and a subgradient."""
    dx = np.diff(img, axis=-1)
    dy = np.diff(img, axis=-2)
    g = np.zeros_like(img)
    sx, sy = np.sign(dx), np.sign(dy)
    g[..., :, :-1] -= sx
    g[..., :, 1:] += sx
    g[..., :-1, :] -= sy
    g[..., 1:, :] += sy
    return float(np.abs(dx).sum() + np.abs(dy).sum()), g


def invert(net: Network, observed: np.ndarray, y: int, normalization: dict, *, iterations: int = 300,
           restarts: int = 2, lr: float = 0.05, tv: float = 1e-3, seed: int = 0,
           backend: str = "numba") -> tuple[np.ndarray, float]:
    """The image in ``[0, 1]`` whose gradient best matches ``observed``; returns (image, cosine)."""
    if iterations < 1 or restarts < 1:
        raise UserError("iterations and restarts must be >= 1")
    mean, std = float(normalization["mean"]), float(normalization["std"])
    target = np.asarray(observed, np.float64)
    tnorm = np.linalg.norm(target)
    if not tnorm > 0:
        raise UserError("the observed gradient is zero")
    theta0 = net.theta.copy()
    rng = np.random.default_rng(seed)
    labels = np.array([y])
    best_img, best_cos = None, -2.0
    try:
        for _ in range(restarts):
            img = rng.random(net.input_shape)
            m1 = np.zeros_like(img)
            m2 = np.zeros_like(img)
            for it in range(1, iterations + 1):
                xn = ((img - mean) / std)[None].astype(np.float32)
                g = _flat(net, net.per_example_grads(xn, labels, backend=backend))[0]
                gn = np.linalg.norm(g)
                if not gn > 0:
                    break
                cos = float(g @ target / (gn * tnorm))
                v = target / (gn * tnorm) - cos * g / gn**2  # d cos / d g
                eps = 1e-3 * max(np.linalg.norm(theta0), 1.0) / max(np.linalg.norm(v), 1e-30)
                net.theta[:] = (theta0 + eps * v).astype(np.float32)
                gp = net.input_grads(xn, labels, backend=backend).grads[0]
                net.theta[:] = (theta0 - eps * v).astype(np.float32)
                gm = net.input_grads(xn, labels, backend=backend).grads[0]
                net.theta[:] = theta0
                dcos = (gp - gm) / (2 * eps) / std  # chain rule through the normalisation
                _, dtv = _tv_grad(img)
                grad = -dcos + tv * dtv
                m1 = 0.9 * m1 + 0.1 * grad
                m2 = 0.999 * m2 + 0.001 * grad**2
                step = lr * (m1 / (1 - 0.9**it)) / (np.sqrt(m2 / (1 - 0.999**it)) + 1e-8)
                img = np.clip(img - step, 0.0, 1.0)
                if cos > best_cos:
                    best_cos, best_img = cos, img.copy()
    finally:
        net.theta[:] = theta0
    if best_img is None:
        best_img = rng.random(net.input_shape)
    return best_img, best_cos


def inversion_attack(net: Network, x_pixels: np.ndarray, y: int, normalization: dict, *, clip: float = 1.5,
                     sigmas=(0.0,), variants=("raw", "clipped", "noisy"), seed: int = 0, backend: str = "numba",
                     **kwargs) -> list[InversionResult]:
    """Invert one example (``x_pixels`` ``(C, H, W)`` in [0, 1]) under each gradient variant
    (``noisy`` once per ``sigma``); PSNR and SSIM of each reconstruction."""
    x_pixels = np.asarray(x_pixels, np.float64)
    if x_pixels.shape != tuple(net.input_shape) or x_pixels.min() < 0 or x_pixels.max() > 1:
        raise UserError(f"the image must have shape {net.input_shape} with pixels in [0, 1]")
    xn = ((x_pixels - normalization["mean"]) / normalization["std"]).astype(np.float32)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1E]))
    out = []
    for variant in variants:
        for sigma in (sigmas if variant == "noisy" else (None,)):
            g = observed_gradient(net, xn, y, variant, clip, sigma or 0.0, rng, backend)
            label = infer_label(net, g) if variant != "noisy" else y  # noise hides the label: give it
            img, cos = invert(net, g, label, normalization, seed=seed, backend=backend, **kwargs)
            small = min(img.shape[-2:]) < 11
            out.append(InversionResult(variant, sigma, img, psnr(img[0], x_pixels[0]),
                                       None if small else ssim(img[0], x_pixels[0]), cos))
    return out


def analytic_first_layer(net: Network, x_norm: np.ndarray, y: int, backend: str = "numba") -> np.ndarray | None:
    """Exact recovery of the (normalised) input when the first layer is fully connected with a bias."""
    from npdpsnn.audit.inversion import recover_fc_input

    if net.layers[0].kind != "fc":
        return None
    grads = net.per_example_grads(x_norm[None], np.array([y]), backend=backend)
    rec = recover_fc_input(grads, layer=net.layers[0].name, input_shape=net.input_shape)
    return rec.x
