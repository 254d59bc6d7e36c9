"""Network spec strings in the DPSNN paper's notation.

A spec is a ``-``-separated list of layers (Wang et al. 2022, DPSNN, section 4):

* ``<n>C<k>S<s>``: convolution with ``n`` filters of ``k x k`` and stride ``s``;
  an optional ``P<p>`` suffix adds zero padding ``p`` (``16C3S1P1``).
* ``P<k>S<s>``: ``k x k`` max-pooling with stride ``s``;
  ``A<k>S<s>`` is average pooling.  ``S<s>`` may be omitted (stride = ``k``).
* a bare number ``n``: a fully connected layer with ``n`` outputs.

The last layer must be fully connected: it is the output layer.

Net1 = ``16C8S2-P2S1-32C4S2-P2S1-32-10``, Net2 = ``16C7S1-P2S2-32C4S1-P2S2-32-10``
(paper, section 4); the face net is ``16C7S1-P2S2-32C4S1-P2S2-128-<classes>``
(section 4.3).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from npdpsnn.errors import SpecError
from npdpsnn.limits import MAX_ACTIVATION_BYTES, MAX_PARAMS, MAX_SPEC_CHARS, MAX_SPEC_DIGITS

NET1 = "16C8S2-P2S1-32C4S2-P2S1-32-10"
NET2 = "16C7S1-P2S2-32C4S1-P2S2-32-10"


def face_net(num_classes: int) -> str:
    """The Extended Yale B network of section 4.3 with ``num_classes`` outputs."""
    return f"16C7S1-P2S2-32C4S1-P2S2-128-{int(num_classes)}"


# ASCII digits only: ``\d`` would also match full-width and other Unicode digits.
_CONV = re.compile(r"^([0-9]+)C([0-9]+)(?:S([0-9]+))?(?:P([0-9]+))?$")
_POOL = re.compile(r"^([PA])([0-9]+)(?:S([0-9]+))?$")
_FC = re.compile(r"^([0-9]+)$")


@dataclass(frozen=True)
class Layer:
    """One layer with its resolved input and output shapes ``(C, H, W)``.

    ``kind`` is ``"conv"``, ``"fc"``, ``"maxpool"`` or ``"avgpool"``; ``name`` is the
    parameter prefix (``conv1``, ``fc2``) for weight layers and ``""`` for pools.
    For fully connected layers the shapes are ``(features, 1, 1)``.
    """

    kind: str
    token: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    name: str = ""

    @property
    def has_weights(self) -> bool:
        return self.kind in ("conv", "fc")

    @property
    def in_size(self) -> int:
        c, h, w = self.in_shape
        return c * h * w

    @property
    def out_size(self) -> int:
        c, h, w = self.out_shape
        return c * h * w

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch layout: conv ``(out, in, kh, kw)``, linear ``(out, in)``."""
        if self.kind == "conv":
            return (self.out_shape[0], self.in_shape[0], self.kernel, self.kernel)
        if self.kind == "fc":
            return (self.out_shape[0], self.in_size)
        return ()

    @property
    def fan_in(self) -> int:
        if self.kind == "conv":
            return self.in_shape[0] * self.kernel * self.kernel
        return self.in_size

    @property
    def num_params(self) -> int:
        """Weights plus biases (0 for pools)."""
        if not self.has_weights:
            return 0
        return math.prod(self.weight_shape) + self.out_shape[0]

    @property
    def im2col_size(self) -> int:
        """Floats of the im2col matrix of a convolution (output positions x ``C*k*k``), else 0."""
        if self.kind != "conv":
            return 0
        return self.out_shape[1] * self.out_shape[2] * self.fan_in


def resolve_spec(net: str, num_classes: int | None = None) -> str:
    """Map ``net1``/``net2`` (any case) to their spec strings; pass a spec through.

    If ``num_classes`` is given, the output layer of ``net1``/``net2`` is resized
    to it (e.g. 38 subjects of Extended Yale B).
    """
    key = net.strip().lower()
    if key in ("net1", "net2"):
        spec = NET1 if key == "net1" else NET2
        if num_classes is not None:
            spec = spec.rsplit("-", 1)[0] + f"-{int(num_classes)}"
        return spec
    return net.strip()


def _positive(value: str | None, default: int, token: str, what: str, allow_zero: bool = False) -> int:
    if value is None:
        return default
    if len(value) > MAX_SPEC_DIGITS:
        raise SpecError(f"layer {token!r}: {what} {value} is too large (at most {MAX_SPEC_DIGITS} digits)")
    n = int(value)
    if n < 0 or (n == 0 and not allow_zero):
        raise SpecError(f"layer {token!r}: {what} must be {'>= 0' if allow_zero else '>= 1'}, got {n}")
    return n


def parse_spec(spec: str, input_shape: tuple[int, int, int]) -> list[Layer]:
    """Parse ``spec`` for inputs of shape ``(C, H, W)`` into a list of layers.

    Raises :class:`SpecError` naming the offending token: unknown syntax, zero
    sizes, a kernel larger than its (padded) input, a first layer that is a pool,
    or a last layer that is not fully connected.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("empty network spec")
    if len(spec) > MAX_SPEC_CHARS:
        raise SpecError(f"network spec is {len(spec)} characters long, more than the limit of {MAX_SPEC_CHARS}")
    if not spec.isascii():
        raise SpecError(f"network spec {spec!r} contains non-ASCII characters; write sizes with the digits 0-9")
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise SpecError(f"input_shape must be (C, H, W), got {input_shape!r}") from None
    if min(c, h, w) < 1:
        raise SpecError(f"input_shape must be positive, got {input_shape!r}")
    tokens = [t.strip() for t in spec.strip().split("-")]
    layers: list[Layer] = []
    n_conv = n_fc = 0
    shape = (c, h, w)
    flat = False
    for i, tok in enumerate(tokens):
        if not tok:
            raise SpecError(f"empty layer token at position {i + 1} in {spec!r}")
        if m := _CONV.match(tok):
            if flat:
                raise SpecError(f"layer {tok!r}: a convolution cannot follow a fully connected layer")
            out_c = _positive(m.group(1), 1, tok, "number of filters")
            k = _positive(m.group(2), 1, tok, "kernel size")
            s = _positive(m.group(3), 1, tok, "stride")
            p = _positive(m.group(4), 0, tok, "padding", allow_zero=True)
            ci, hi, wi = shape
            if k > hi + 2 * p or k > wi + 2 * p:
                raise SpecError(f"layer {tok!r}: kernel {k}x{k} is larger than its input {hi}x{wi} (padding {p})")
            ho, wo = (hi + 2 * p - k) // s + 1, (wi + 2 * p - k) // s + 1
            n_conv += 1
            layers.append(Layer("conv", tok, shape, (out_c, ho, wo), k, s, p, f"conv{n_conv}"))
            shape = (out_c, ho, wo)
        elif m := _POOL.match(tok):
            if flat:
                raise SpecError(f"layer {tok!r}: pooling cannot follow a fully connected layer")
            if i == 0:
                raise SpecError(f"layer {tok!r}: the first layer must be a convolution or fully connected")
            k = _positive(m.group(2), 1, tok, "pool size")
            s = _positive(m.group(3), k, tok, "stride")
            ci, hi, wi = shape
            if k > hi or k > wi:
                raise SpecError(f"layer {tok!r}: pool {k}x{k} is larger than its input {hi}x{wi}")
            ho, wo = (hi - k) // s + 1, (wi - k) // s + 1
            kind = "maxpool" if m.group(1) == "P" else "avgpool"
            layers.append(Layer(kind, tok, shape, (ci, ho, wo), k, s, 0, ""))
            shape = (ci, ho, wo)
        elif m := _FC.match(tok):
            n = _positive(m.group(1), 1, tok, "number of units")
            n_fc += 1
            in_shape = shape
            layers.append(Layer("fc", tok, in_shape, (n, 1, 1), 1, 1, 0, f"fc{n_fc}"))
            shape = (n, 1, 1)
            flat = True
        else:
            raise SpecError(
                f"unknown layer token {tok!r} in {spec!r} (expected <n>C<k>S<s>[P<p>], P<k>S<s>, A<k>S<s> or a number)"
            )
    if layers[-1].kind != "fc":
        raise SpecError(f"the last layer {tokens[-1]!r} must be fully connected (the output layer)")
    check_network_size(layers, steps=1)
    return layers


def activation_bytes(layers: list[Layer], steps: int) -> int:
    """Bytes one thread holds for one example over ``steps`` time steps (an upper
    estimate of the CPU kernels' buffers): per step 16 bytes per layer output
    (spikes, pooling arguments, membrane potentials), 4 per im2col element and 8
    per element of the largest layer (gradient scratch); plus the input image."""
    outputs = sum(layer.out_size for layer in layers)
    cols = sum(layer.im2col_size for layer in layers)
    largest = max(max(layer.in_size, layer.out_size) for layer in layers)
    return steps * (16 * outputs + 4 * cols + 8 * largest) + 4 * layers[0].in_size


def check_network_size(layers: list[Layer], steps: int) -> None:
    """Refuse, before anything is allocated, a network above :data:`~npdpsnn.limits.MAX_PARAMS`
    parameters or :data:`~npdpsnn.limits.MAX_ACTIVATION_BYTES` of activations per
    example and thread for ``steps`` simulated time steps (``T``; 1 for the ANN)."""
    n_params = sum(layer.num_params for layer in layers)
    if n_params > MAX_PARAMS:
        raise SpecError(f"the network has {n_params:,} parameters, more than the limit of {MAX_PARAMS:,}")
    need = activation_bytes(layers, steps)
    if need > MAX_ACTIVATION_BYTES:
        raise SpecError(f"the network needs {need:,} bytes of activations per example at T = {steps}, "
                        f"more than the limit of {MAX_ACTIVATION_BYTES:,}")
