"""The public model object: ``Network.from_spec(...)``.

A network is a parsed spec (:mod:`npdpsnn.model.spec`), its options
(:class:`~npdpsnn.model.config.ModelConfig`) and one flat float32 parameter
vector exposed through named PyTorch-layout views (``net.params``).  Every
computation goes to a backend (:mod:`npdpsnn.kernels.backend`), given by name --
``reference`` (NumPy, float64), ``numba`` (CPU) or ``cuda`` -- or as a backend
object (``get_backend("numba", engine=Engine(threads=2))``), with the same
results up to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.kernels.backend import get_backend
from npdpsnn.kernels.program import build_program, kernel_params
from npdpsnn.kernels.protocol import Backend, ClippedSum, Gradients
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.params import ParamDict, kaiming_uniform_init, param_slots
from npdpsnn.model.spec import check_network_size, parse_spec

BackendLike = str | Backend


class Network:
    """A spiking (``kind="snn"``) or tanh (``kind="ann"``) network from a spec."""

    def __init__(self, spec: str, input_shape: tuple[int, int, int], config: ModelConfig, seed: int = 0,
                 init_gain: float = 1.0):
        self.spec = spec
        self.input_shape = tuple(int(v) for v in input_shape)
        self.config = config
        self.layers = parse_spec(spec, self.input_shape)
        check_network_size(self.layers, config.steps)  # activation memory grows with T: refuse before allocating
        config.layer_thresholds(sum(1 for layer in self.layers[:-1] if layer.has_weights))  # checks the count
        self.slots = param_slots(self.layers, bias=config.bias)
        self.program = build_program(self.layers, self.slots)
        self.theta = kaiming_uniform_init(self.layers, self.slots, seed, init_gain)
        self.params = ParamDict(self.theta, self.slots)

    @classmethod
    def from_spec(cls, spec: str, input_shape, kind: str = "snn", neuron: str = "if", surrogate: str = "gate",
                  T: int = 5, threshold: float = 0.5, leak: float = 0.2, detach_reset: bool = False,
                  seed: int = 0, **options) -> "Network":
        """Build a network from a spec string such as ``16C7S1-P2S2-32C4S1-P2S2-32-10``;
        ``options`` are the other :class:`ModelConfig` fields (``activation``,
        ``reset``, ``thresholds``, ``bias``, ``encoding``, ``encoding_seed``)."""
        cfg = ModelConfig(kind=kind, neuron=neuron, surrogate=surrogate, T=T, threshold=float(threshold),
                          leak=float(leak), detach_reset=bool(detach_reset), **options)
        return cls(spec, input_shape, cfg, seed=seed)

    # ------------------------------------------------------------ properties
    @property
    def num_params(self) -> int:
        return self.program.n_params

    @property
    def num_classes(self) -> int:
        return self.program.n_classes

    def __repr__(self) -> str:
        c = self.config
        return (f"Network({self.spec!r}, input_shape={self.input_shape}, kind={c.kind!r}, neuron={c.neuron!r}, "
                f"surrogate={c.surrogate!r}, T={c.T}, params={self.num_params})")

    # ------------------------------------------------------------ validation
    def _check_x(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise UserError(f"input must have shape (B, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise UserError(f"input must be numeric, got dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise UserError("input contains NaN or infinity")
        return x

    def _check_y(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"labels must be an integer array of shape ({n},), got {y.dtype} {y.shape}")
        if n and (y.min() < 0 or y.max() >= self.num_classes):
            raise UserError(f"labels must lie in [0, {self.num_classes - 1}]")
        return y.astype(np.int64)

    def _check_theta(self) -> None:
        if not np.all(np.isfinite(self.theta)):
            raise UserError("network parameters contain NaN or infinity")

    def kernel_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Parameters in the CUDA kernels' forward and backward layouts."""
        return kernel_params(self.theta, self.layers, self.slots)

    # ------------------------------------------------------------ computation
    def forward(self, x, backend: BackendLike = "numba") -> np.ndarray:
        """Logits ``(B, classes)``: ``sum_t I_out[t] / T`` for the SNN (eq. 7)."""
        x = self._check_x(x)
        return get_backend(backend).forward(self, x)

    def predict(self, x, backend: BackendLike = "numba", batch_size: int = 1000) -> np.ndarray:
        """Predicted labels ``(B,)``, computed ``batch_size`` examples at a time
        (``x`` may be any array-like with ``len`` and slicing, e.g. a dataset's
        :class:`~npdpsnn.data.normalization.NormalizedImages`)."""
        if not hasattr(x, "__len__") or not hasattr(x, "__getitem__"):
            x = self._check_x(x)
        be = get_backend(backend)
        out = [np.argmax(self.forward(x[i : i + batch_size], be), axis=1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def per_example_grads(self, x, y, backend: BackendLike = "numba") -> Gradients:
        """Per-example gradients ``grads[name]`` of shape ``(B, *param.shape)`` and
        the per-example cross-entropy ``losses`` ``(B,)``."""
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        be = get_backend(backend)
        self._check_theta()
        flat, losses = be.per_example_grads(self, x, y)
        grads = {s.name: flat[:, s.offset : s.offset + s.size].reshape(len(x), *s.shape) for s in self.slots}
        return Gradients(grads, losses)

    def clipped_grad_sum(self, x, y, clip: float, backend: BackendLike = "numba") -> ClippedSum:
        """``sum_i c_i g_i`` with the flat clipping factor ``c_i =
        clip_factor(||g_i||, clip)`` of :mod:`npdpsnn.privacy.mechanism` (eq. 11,
        ``min(1, clip / ||g_i||)`` with a safety margin) as a flat float64 vector
        (PyTorch layout, same order as ``theta``), with per-example norms, losses
        and whether each example was classified correctly (a :class:`ClippedSum`).

        This is the fused training path: no ``B x P`` array is kept.  ``clip``
        may be ``inf`` (no clipping).
        """
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        be = get_backend(backend)
        self._check_theta()
        return be.clipped_sum(self, x, y, clip)

    def input_grads(self, x, y, backend: BackendLike = "numba") -> Gradients:
        """``dL_i/dx_i`` ``(B, C, H, W)`` of each example's cross-entropy, and the
        losses ``(B,)``.  The image is fed at every step (direct encoding), so
        ``dL/dx = sum_t dL/d(input of layer 0)[t]``."""
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        be = get_backend(backend)
        self._check_theta()
        return be.input_grads(self, x, y)

    def input_vjp(self, x, dlogits, backend: BackendLike = "numba") -> np.ndarray:
        """The vector-Jacobian product ``sum_k dlogits[i, k] d logits[i, k] / dx_i``
        ``(B, C, H, W)``: ``dL/dx`` for any upstream gradient ``dL/dlogits``
        ``(B, classes)`` (e.g. soft labels: ``softmax(logits) - q``)."""
        x = self._check_x(x)
        be = get_backend(backend)
        self._check_theta()
        return be.input_vjp(self, x, dlogits)
