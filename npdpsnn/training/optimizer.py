"""SGD with optional momentum over the flat parameter vector.

``v <- mu v + G``, ``theta <- theta - lr v`` (``mu = 0``: plain SGD as in the
DPSNN paper, eq. 12).  The update is computed in float64 and stored in the
float32 parameters.
"""

from __future__ import annotations

import numpy as np


class SGD:
    def __init__(self, n_params: int, lr: float, momentum: float = 0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.velocity = np.zeros(n_params, np.float64) if momentum > 0 else None

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += grad
            update = self.velocity
        else:
            update = grad
        theta[:] = (theta.astype(np.float64) - self.lr * update).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {} if self.velocity is None else {"velocity": self.velocity}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if self.velocity is not None:
            v = np.asarray(state["velocity"], np.float64)
            if v.shape != self.velocity.shape:
                raise ValueError("optimizer state has the wrong shape")
            self.velocity[:] = v
