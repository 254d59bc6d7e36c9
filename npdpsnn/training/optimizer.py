"""SGD with optional momentum and weight averaging over the flat parameter vector.

``v <- mu v + G``, ``theta <- theta - lr v`` (``mu = 0``: plain SGD as in the
DPSNN paper, eq. 12).  The update is computed in float64 and stored in the
float32 parameters.  With ``ema_decay = d`` it also keeps the exponential
moving average ``a <- d a + (1 - d) theta`` (float64, started at the initial
weights), the averaged model of De et al. 2022 -- post-processing of the
private iterates, so it costs no privacy.
"""

from __future__ import annotations

import numpy as np


class SGD:
    def __init__(self, n_params: int, lr: float, momentum: float = 0.0, ema_decay: float | None = None,
                 theta: np.ndarray | None = None):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.velocity = np.zeros(n_params, np.float64) if momentum > 0 else None
        self.ema_decay = ema_decay
        self.ema = None
        if ema_decay is not None:
            self.ema = np.zeros(n_params, np.float64) if theta is None else np.asarray(theta, np.float64).copy()

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += grad
            update = self.velocity
        else:
            update = grad
        with np.errstate(over="ignore"):  # an overflow to inf is caught by the trainer as divergence
            theta[:] = (theta.astype(np.float64) - self.lr * update).astype(np.float32)
        if self.ema is not None:
            self.ema *= self.ema_decay
            self.ema += (1.0 - self.ema_decay) * theta

    def state(self) -> dict[str, np.ndarray]:
        out = {}
        if self.velocity is not None:
            out["velocity"] = self.velocity
        if self.ema is not None:
            out["ema"] = self.ema
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name in ("velocity", "ema"):
            mine = getattr(self, name)
            if mine is None:
                continue
            if name not in state:
                raise ValueError(f"optimizer state lacks {name}")
            v = np.asarray(state[name], np.float64)
            if v.shape != mine.shape:
                raise ValueError(f"optimizer state {name} has the wrong shape")
            mine[:] = v
