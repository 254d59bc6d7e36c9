"""Numba CPU kernels: forward, per-example BPTT gradients, fused clipping.

One generic per-example kernel walks the layer table of
:mod:`npdpsnn.kernels.program` (channel-last activations, kernel weight layouts)
and computes exactly the math of :mod:`npdpsnn.kernels.reference`; the neuron
update, the BPTT step, the surrogates and the loss are compiled from their
single definitions in :mod:`npdpsnn.model`.

Work is split over examples: fixed chunks of the batch run on a thread pool
(:func:`run_chunk` releases the GIL), each thread with its own workspace, so
BPTT memory is bounded per thread (``T x`` one example's activations), never
``B x T x`` activations.  BLAS runs single-threaded inside (see
:func:`npdpsnn.engine.blas_single_threaded`).

How one example is computed (measured choices; profile in ``bench/README.md``):

* **layer by layer over all steps**: a layer runs its ``T`` steps before the
  next layer (nothing flows down within a step), so the im2col patches of every
  step sit side by side and a conv layer's currents and weight gradient are one
  GEMM per step (OpenBLAS's small-matrix kernels, the faster choice there) or
  one GEMM over all steps (faster with the other OpenBLAS kernels, e.g.
  ``OPENBLAS_CORETYPE=Haswell``) -- ``gemm_steps``, chosen from the loaded
  BLAS, never by timing (:func:`npdpsnn.kernels.numba_backend.gemm_per_step`);
* direct encoding feeds the same image at every step, so the first layer's
  current is computed once per example, and its weight and bias gradients once
  from ``sum_t dL/dI[t]`` (linearity); its im2col is stored transposed (runs of
  output columns: fast for one input channel);
* **event-driven where it pays**: fully connected layers loop over the non-zero
  entries of their input (spikes) in the forward pass and the weight gradient,
  and over the non-zero entries of ``dL/dI`` for the input gradient; the input
  gradient of a conv layer scatters only the non-zero entries of ``dL/dI``
  (max-pooling routes the gradient to one position in four, the gate surrogate
  is zero outside ``|V - V_th| < 1/2``) while at most ``sparse_max`` of them
  are non-zero, else it runs GEMM + col2im.  The conv forward and weight
  gradient stay dense GEMMs: single-threaded OpenBLAS runs them at the core's
  peak, and a scatter that accumulates in memory (Numba cannot keep a
  register-blocked accumulator: no SLP vectoriser) loses to it above about 16 %
  density -- Net2's spikes are 15-40 % dense;
* element-wise work (neuron update, BPTT, surrogate, tanh, pooling, bias) runs
  as loops over contiguous channels that LLVM vectorises: ``error_model="numpy"``
  (no Python zero-division checks), unsigned indices where an index could be
  negative in Numba's eyes (no wrap-around checks), 2x2 max-pooling compared in
  registers; tanh is evaluated in float64 and rounded (within half a float32
  ulp of the exact value, and vectorised, unlike libm's ``tanhf``);
* model options are runtime flags tested once per layer, outside the loops
  over neurons (one compiled kernel for all of them): ``reset`` (zero, or by
  subtraction in separate loops :func:`_spiking_subtract` /
  :func:`_bptt_subtract`), the ANN's ``act`` (tanh or relu), the per-layer
  thresholds ``ths`` (one float32 per layer), and bias-free layers (``B_OFF <
  0``: no bias added, no bias gradient; the parameter vector has no bias
  entries, so the clipping norm has none either);
* the training path fuses clipping with accumulation (no ``B x P`` array); the
  norm is a float64 sum in a fixed order (64 interleaved partial sums);
* input gradients reuse the same backward pass without parameter gradients; the
  training path never forms ``dL/dx``.

No fastmath anywhere: gradients and clipping follow IEEE arithmetic, in a fixed
order, so results do not depend on the number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic

from npdpsnn.engine import configure_numba_cache
from npdpsnn.kernels.program import (
    AVGPOOL, B_OFF, CONV, IN_C, IN_H, IN_OFF, IN_W, K, KIND, MAXPOOL, OUT_C, OUT_H, OUT_OFF, OUT_W,
    PAD, STRIDE, V_OFF, W_OFF,
)
from npdpsnn.model.loss import predicted_class, softmax_cross_entropy
from npdpsnn.model.neurons import RELU, RESET_SUBTRACT, bptt, bptt_step, membrane, membrane_update
from npdpsnn.model.surrogates import GATE, surrogate_grad
from npdpsnn.privacy.mechanism import clip_factor

configure_numba_cache()  # before the first @njit(cache=True) below
# error_model="numpy": float division without Python's zero check, so loops that
# divide still vectorise (inputs are finite; a zero divisor cannot occur).
_jit = njit(cache=True, error_model="numpy")
# Numba re-optimises every jitted callee's code again in each caller's module, so
# the levels with one call site (_forward, _backward, _conv_cols, _carve) are
# inlined in Numba IR (inline="always"): the cold compile takes about 15 s of CPU
# instead of 28 (bench/README.md).  Calls with more than 30 arguments cannot be
# inlined (CPython passes them as a tuple), hence the ``bufs`` tuple.
_inline = njit(cache=True, error_model="numpy", inline="always")
_chunk = njit(cache=True, nogil=True, error_model="numpy")
_sg = _jit(surrogate_grad)
_membrane = _jit(membrane_update)
_bptt = _jit(bptt_step)
# The general forms, called with a constant reset code: LLVM folds the code's branch.
_membrane_reset = _jit(membrane)
_bptt_reset = _jit(bptt)
_ce = _jit(softmax_cross_entropy)
_predicted = _jit(predicted_class)
_clip_factor = _jit(clip_factor)

# ------------------------------------------------------------------ profile
# An optional in-kernel profile (``bench/bench_cpu.py --profile``): cycle counts
# per example and (layer, phase) slot plus global slots; a zero-length array (the
# default) turns it off at the cost of one branch per phase.
PH_CURRENT, PH_IM2COL, PH_ACT, PH_BACK_ACT, PH_BIAS, PH_WGRAD, PH_IGRAD = range(7)
N_PHASES = 7
PH_NAMES = ("current (GEMM / events)", "im2col", "neuron / tanh / pool", "BPTT / tanh' / pool backward",
            "bias gradient", "weight gradient", "input gradient")
G_OUTPUT, G_LOSS, G_CLIP_NORM, G_CLIP_SUM, G_ZERO = range(5)
N_GLOBAL = 5
G_NAMES = ("output layer (forward + backward)", "loss", "clipping: float64 norm", "clipping: float64 sum",
           "zeroing the gradient")


@intrinsic
def _cycles(typingctx):
    """The CPU's cycle counter (``llvm.readcyclecounter``)."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@njit(cache=True)
def _now(prof):
    return _cycles() if prof.shape[0] else 0


@njit(cache=True)
def _tick(prof, slot, t0):
    """Adds the cycles since ``t0`` to ``prof[slot]``; returns the new time."""
    if prof.shape[0] == 0:
        return 0
    t = _cycles()
    prof[slot] += t - t0
    return t


def profile_slots(n_layers: int) -> int:
    return n_layers * N_PHASES + N_GLOBAL


SPARSE_MAX = 0.15
"""Default ``sparse_max``: a conv input gradient scatters the non-zero entries of
``dL/dI`` when at most this fraction of them is non-zero, else GEMM + col2im
(measured crossover for Net2's conv2: about 16 %, see ``bench/README.md``)."""


# ------------------------------------------------------------------ helpers
@_jit
def _tanh(x):
    """``tanh(x)`` of a float32, evaluated in float64 and rounded to float32
    (within half an ulp of the exact value; libm's ``tanhf`` is within about 2).
    Branch-free, so loops over it vectorise: ``exp(-2|x|) = exp(-|x|/32)^64``
    with a degree-10 Taylor polynomial, ``tanh|x| = (1 - e) / (1 + e)``, and
    ``x - x^3/3`` below ``|x| = 1e-3`` (no cancellation there)."""
    xd = np.float64(x)
    a = abs(xd)
    a = a if a < 9.25 else 9.25  # tanh rounds to 1 in float32 from |x| = 9.01 on
    u = a * (-1.0 / 32.0)
    e = 1.0 + u * (1.0 + u * (1.0 / 2.0 + u * (1.0 / 6.0 + u * (1.0 / 24.0 + u * (1.0 / 120.0 + u * (
        1.0 / 720.0 + u * (1.0 / 5040.0 + u * (1.0 / 40320.0 + u * (1.0 / 362880.0 + u * (1.0 / 3628800.0))))))))))
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    t = (1.0 - e) / (1.0 + e)
    small = xd - xd * xd * xd * (1.0 / 3.0)
    r = t if a >= 1e-3 else small
    return np.float32(math.copysign(r, xd))


@_jit
def _count_nonzero(src, n):
    """Number of non-zero entries of ``src[:n]`` (a vectorised count)."""
    m = 0
    for i in range(n):
        m += src[i] != 0.0
    return m


@_jit
def _nonzero(src, n, idx):
    """Branch-free compaction: ``idx[:m]`` = the indices ``i < n`` with
    ``src[i] != 0`` in increasing order; returns ``m``."""
    m = 0
    for i in range(n):
        idx[m] = i
        m += src[i] != 0.0
    return m


# ------------------------------------------------------------------ im2col / col2im
@_jit
def _im2col(row, src, cols):
    """``cols[(oy, ox), (ky, kx, c)] = src[oy*s+ky-p, ox*s+kx-p, c]`` (0 in the
    padding), row-major: for a fixed ``ky`` the ``(kx, c)`` run is contiguous
    in both (unsigned indices: no wrap-around checks in the copy loops)."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    Wo, Ho = row[OUT_W], row[OUT_H]
    k, s, p = row[K], row[STRIDE], row[PAD]
    kk = C * k * k
    run = k * C
    ur = uint64(run)
    for oy in range(Ho):
        for ox in range(Wo):
            ix0 = ox * s - p
            inside = ix0 >= 0 and ix0 + k <= W
            for ky in range(k):
                iy = oy * s + ky - p
                b = uint64((oy * Wo + ox) * kk + ky * run)
                if iy < 0 or iy >= H:
                    for j in range(ur):
                        cols[b + j] = 0.0
                elif inside:
                    sb = uint64((iy * W + ix0) * C)
                    for j in range(ur):
                        cols[b + j] = src[sb + j]
                else:
                    for kx in range(k):
                        ix = ix0 + kx
                        for c in range(C):
                            cols[b + uint64(kx * C + c)] = src[(iy * W + ix) * C + c] if 0 <= ix < W else 0.0


@_jit
def _im2col_t(row, src, cols):
    """Transposed im2col of the first layer: ``cols[(ky, kx, c), (oy, ox)]``;
    with one input channel and stride 1 every ``(ky, kx, oy)`` is one contiguous
    run of output columns."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    Wo, Ho = row[OUT_W], row[OUT_H]
    k, s, p = row[K], row[STRIDE], row[PAD]
    npos = Ho * Wo
    for ky in range(k):
        for kx in range(k):
            lo = min(max(0, -((kx - p) // s)), Wo)  # first ox with ox*s+kx-p >= 0
            hi = max(min(Wo, (W - 1 - kx + p) // s + 1), lo)  # one past the last with ox*s+kx-p < W
            for c in range(C):
                base = ((ky * k + kx) * C + c) * npos
                for oy in range(Ho):
                    iy = oy * s + ky - p
                    d0 = uint64(base + oy * Wo)
                    if iy < 0 or iy >= H:
                        for ox in range(uint64(Wo)):
                            cols[d0 + ox] = 0.0
                        continue
                    for ox in range(uint64(lo)):
                        cols[d0 + ox] = 0.0
                    for ox in range(uint64(hi), uint64(Wo)):
                        cols[d0 + ox] = 0.0
                    if s == 1 and C == 1:
                        s0 = uint64(iy * W + kx - p)  # src index of ox = 0 (ox >= lo keeps it >= 0)
                        for ox in range(uint64(lo), uint64(hi)):
                            cols[d0 + ox] = src[s0 + ox]
                    else:
                        for ox in range(lo, hi):
                            cols[base + oy * Wo + ox] = src[(iy * W + ox * s + kx - p) * C + c]


@_jit
def _col2im(row, dcols, dsrc):
    """Adjoint of :func:`_im2col`: ``dsrc[iy, ix, c] = sum of the dcols entries that read it``."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    Ho, Wo = row[OUT_H], row[OUT_W]
    k, s, p = row[K], row[STRIDE], row[PAD]
    kk = C * k * k
    run = k * C
    ur = uint64(run)
    for i in range(C * H * W):
        dsrc[i] = 0.0
    for oy in range(Ho):
        for ox in range(Wo):
            ix0 = ox * s - p
            inside = ix0 >= 0 and ix0 + k <= W
            for ky in range(k):
                iy = oy * s + ky - p
                if iy < 0 or iy >= H:
                    continue
                b = uint64((oy * Wo + ox) * kk + ky * run)
                if inside:
                    sb = uint64((iy * W + ix0) * C)
                    for j in range(ur):
                        dsrc[sb + j] += dcols[b + j]
                else:
                    for kx in range(k):
                        ix = ix0 + kx
                        if 0 <= ix < W:
                            for c in range(C):
                                dsrc[(iy * W + ix) * C + c] += dcols[b + uint64(kx * C + c)]


# ------------------------------------------------------------------ weight layers
@_jit
def _add_bias(theta, bo, O, out, rows):
    """``out[r, :] += b`` for ``rows`` rows of ``O`` channels (nothing when the
    layer has no bias, ``bo < 0``)."""
    if bo < 0:
        return
    b = theta[bo : bo + O]
    for r in range(rows):
        o = out[r * O : (r + 1) * O]
        for j in range(O):
            o[j] += b[j]


@_inline
def _conv_cols(row, src_all, src_stride, nsteps, cc):
    """im2col of a conv layer's input for ``nsteps`` steps into ``cc``: transposed
    for the first layer (``nsteps == 1``, input = the image), row-major and one
    block per step for deeper layers (kept for the weight gradient)."""
    npos = row[OUT_H] * row[OUT_W]
    kk = row[IN_C] * row[K] * row[K]
    if row[IN_OFF] < 0:
        _im2col_t(row, src_all, cc)
    else:
        for t in range(nsteps):
            _im2col(row, src_all[t * src_stride :], cc[t * npos * kk :])


@_jit
def _conv_currents(row, theta, nsteps, cur, cc, gemm_steps):
    """Currents of a conv layer for ``nsteps`` steps, packed ``cur[t, (oy, ox), o]``:
    one GEMM per step (``gemm_steps``) or one over the im2col of all steps, plus
    the bias."""
    O, npos = row[OUT_C], row[OUT_H] * row[OUT_W]
    kk = row[IN_C] * row[K] * row[K]
    wo = row[W_OFF]
    w = theta[wo : wo + kk * O].reshape((kk, O))
    if row[IN_OFF] < 0:
        np.dot(cc[: kk * npos].reshape((kk, npos)).T, w, cur[: npos * O].reshape((npos, O)))
    elif gemm_steps:
        for t in range(nsteps):
            np.dot(cc[t * npos * kk : (t + 1) * npos * kk].reshape((npos, kk)), w,
                   cur[t * npos * O : (t + 1) * npos * O].reshape((npos, O)))
    else:
        np.dot(cc[: nsteps * npos * kk].reshape((nsteps * npos, kk)), w,
               cur[: nsteps * npos * O].reshape((nsteps * npos, O)))
    _add_bias(theta, row[B_OFF], O, cur, nsteps * npos)


@_jit
def _fc_current(row, theta, src, out, nz):
    """``out[o] = b[o] + sum_j src[j] W[j,o]`` over the non-zero inputs (events);
    ``b = 0`` for a layer without bias (``B_OFF < 0``)."""
    n_in, O, wo, bo = row[IN_C], row[OUT_C], row[W_OFF], row[B_OFF]
    uO = uint64(O)
    if bo < 0:
        for o in range(O):
            out[o] = 0.0
    else:
        for o in range(O):
            out[o] = theta[bo + o]
    m = _nonzero(src, n_in, nz)
    for e in range(m):
        j = nz[e]
        v = src[j]
        wb = uint64(wo + j * O)
        for o in range(uO):
            out[o] += v * theta[wb + o]


@_jit
def _fc_weight_grad(row, src, g, grad, nz):
    """``dW[j, :] += src[j] g`` over the non-zero inputs."""
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    uO = uint64(O)
    m = _nonzero(src, n_in, nz)
    for e in range(m):
        j = nz[e]
        v = src[j]
        db = uint64(wo + j * O)
        for o in range(uO):
            grad[db + o] += v * g[o]


@_jit
def _fc_input_grad(row, theta_b, g, dsrc, nz):
    """``dsrc[j] = sum_o W[o,j] g[o]`` (backward layout ``(O, n_in)``) over the non-zero ``g``."""
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    un = uint64(n_in)
    for j in range(n_in):
        dsrc[j] = 0.0
    m = _nonzero(g, O, nz)
    for e in range(m):
        o = nz[e]
        gv = g[o]
        wb = uint64(wo + o * n_in)
        for j in range(un):
            dsrc[j] += gv * theta_b[wb + j]


@_jit
def _conv_input_grad(row, theta_b, g, dsrc, dcols, nz, sparse_max):
    """``dsrc`` = dL/d(input) of a conv layer from ``g`` = dL/dI of one step.

    Event-driven when at most ``sparse_max`` of ``g`` is non-zero: each non-zero
    ``g[oy, ox, o]`` adds ``g * W[o, ky, :, :]`` (backward layout ``(O, k, k, C)``,
    one contiguous ``(kx, c)`` run per ``ky``) to the input window it read.
    Otherwise ``col2im(g @ W)`` (GEMM)."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
    k, s, p = row[K], row[STRIDE], row[PAD]
    npos = Ho * Wo
    kk = C * k * k
    wo = row[W_OFF]
    n = npos * O
    if _count_nonzero(g, n) > sparse_max * n:
        d = dcols[: npos * kk].reshape((npos, kk))
        np.dot(g[:n].reshape((npos, O)), theta_b[wo : wo + O * kk].reshape((O, kk)), d)
        _col2im(row, dcols, dsrc)
        return
    for i in range(C * H * W):
        dsrc[i] = 0.0
    m = _nonzero(g, n, nz)
    for e in range(m):
        i = nz[e]
        gv = g[i]
        pos = i // O
        o = i - pos * O
        oy = pos // Wo
        ox = pos - oy * Wo
        ix0 = ox * s - p
        kx0 = max(0, -ix0)
        kx1 = min(k, W - ix0)
        run = uint64((kx1 - kx0) * C)
        for ky in range(k):
            iy = oy * s + ky - p
            if iy < 0 or iy >= H:
                continue
            db = uint64((iy * W + ix0 + kx0) * C)  # unsigned: no wrap-around checks in the loop
            wb = uint64(wo + ((o * k + ky) * k + kx0) * C)
            for j in range(run):
                dsrc[db + j] += gv * theta_b[wb + j]


# ------------------------------------------------------------------ pooling
@_jit
def _maxpool_forward(row, src, out, arg):
    """Max over each window; ``arg`` keeps the input index of the first maximum
    (row-major within the window, as PyTorch routes the gradient).  Branch-free
    and vectorised over the contiguous channels, one window offset ``(ky, kx)``
    at a time over an output row (unsigned indices: no wrap-around checks)."""
    C, W = row[IN_C], row[IN_W]
    Ho, Wo, k, s = row[OUT_H], row[OUT_W], row[K], row[STRIDE]
    Cu = uint64(C)
    if k == 2:  # the paper's pools: the four window values compared in registers, one pass
        for oy in range(Ho):
            for ox in range(Wo):
                ob = uint64((oy * Wo + ox) * C)
                b0 = uint64((oy * s * W + ox * s) * C)
                b1 = b0 + Cu
                b2 = b0 + uint64(W * C)
                b3 = b2 + Cu
                for c in range(Cu):
                    best = src[b0 + c]
                    bi = b0 + c
                    v = src[b1 + c]
                    gt = v > best
                    best = v if gt else best
                    bi = b1 + c if gt else bi
                    v = src[b2 + c]
                    gt = v > best
                    best = v if gt else best
                    bi = b2 + c if gt else bi
                    v = src[b3 + c]
                    gt = v > best
                    best = v if gt else best
                    bi = b3 + c if gt else bi
                    out[ob + c] = best
                    arg[ob + c] = bi
        return
    for oy in range(Ho):
        for ky in range(k):
            for kx in range(k):
                for ox in range(Wo):
                    ob = uint64((oy * Wo + ox) * C)
                    base = uint64(((oy * s + ky) * W + ox * s + kx) * C)
                    if ky == 0 and kx == 0:
                        for c in range(Cu):
                            out[ob + c] = src[base + c]
                            arg[ob + c] = base + c
                    else:
                        for c in range(Cu):
                            w = src[base + c]
                            b = out[ob + c]
                            gt = w > b
                            out[ob + c] = w if gt else b
                            arg[ob + c] = base + c if gt else arg[ob + c]


@_jit
def _avgpool_forward(row, src, out):
    C, W = row[IN_C], row[IN_W]
    Ho, Wo, k, s = row[OUT_H], row[OUT_W], row[K], row[STRIDE]
    for oy in range(Ho):
        for ox in range(Wo):
            for c in range(C):
                acc = np.float32(0.0)
                for ky in range(k):
                    for kx in range(k):
                        acc += src[((oy * s + ky) * W + ox * s + kx) * C + c]
                out[(oy * Wo + ox) * C + c] = acc / np.float32(k * k)


@_jit
def _avgpool_backward(row, g, dsrc):
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    Ho, Wo, k, s = row[OUT_H], row[OUT_W], row[K], row[STRIDE]
    for i in range(C * H * W):
        dsrc[i] = 0.0
    scale = np.float32(1.0) / np.float32(k * k)
    for oy in range(Ho):
        for ox in range(Wo):
            for c in range(C):
                v = g[(oy * Wo + ox) * C + c] * scale
                for ky in range(k):
                    for kx in range(k):
                        dsrc[((oy * s + ky) * W + ox * s + kx) * C + c] += v


# ------------------------------------------------------------------ neurons
@_jit
def _spiking(cur, cur_stride, T, n, vm, vo, acts, oo, leak, th, reset):
    """IF/LIF neurons of one layer over all steps (eqs. 2-3 / 14): ``V[t]`` into
    ``vm``, spikes ``o[t] = 1{V[t] >= V_th}`` into ``acts``; ``cur[t * cur_stride + j]``
    is ``I[t]``.  Reset to zero, ``V[t] = leak V[t-1] (1 - o[t-1]) + I[t]``, or by
    subtraction (``reset == RESET_SUBTRACT``), ``V[t] = leak (V[t-1] - V_th o[t-1]) + I[t]``
    (:mod:`npdpsnn.model.neurons`); ``th`` is this layer's ``V_th``."""
    if reset == RESET_SUBTRACT:
        _spiking_subtract(cur, cur_stride, T, n, vm, vo, acts, oo, leak, th)
        return
    for t in range(T):
        c = cur[t * cur_stride : t * cur_stride + n]
        vt = vm[t, vo : vo + n]
        ot = acts[t, oo : oo + n]
        if t == 0:
            for j in range(n):
                v = c[j]
                vt[j] = v
                ot[j] = 1.0 if v >= th else 0.0
        else:
            vp = vm[t - 1, vo : vo + n]
            op = acts[t - 1, oo : oo + n]
            for j in range(n):
                v = _membrane(vp[j], op[j], c[j], leak)
                vt[j] = v
                ot[j] = 1.0 if v >= th else 0.0


@_jit
def _spiking_subtract(cur, cur_stride, T, n, vm, vo, acts, oo, leak, th):
    """:func:`_spiking` with reset by subtraction, ``V[t] = leak (V[t-1] - V_th o[t-1]) + I[t]``."""
    for t in range(T):
        c = cur[t * cur_stride : t * cur_stride + n]
        vt = vm[t, vo : vo + n]
        ot = acts[t, oo : oo + n]
        if t == 0:
            for j in range(n):
                v = c[j]
                vt[j] = v
                ot[j] = 1.0 if v >= th else 0.0
        else:
            vp = vm[t - 1, vo : vo + n]
            op = acts[t - 1, oo : oo + n]
            for j in range(n):
                v = _membrane_reset(vp[j], op[j], c[j], leak, th, RESET_SUBTRACT)
                vt[j] = v
                ot[j] = 1.0 if v >= th else 0.0


@_jit
def _bptt_layer(g, T, n, vm, vo, acts, oo, th, leak, surr, detach, reset, sg, gnext):
    """BPTT through one spiking layer (eqs. 9-10), in place: ``g[t*n + j]`` holds
    dL/do[t] on entry and dL/dI[t] = dL/dV[t] on exit.  The step-to-step
    gradient is carried in float64 (``gnext``).  Reset to zero::

        gV[t] = (dL/do[t] - leak V[t] gV[t+1]) g'(V[t] - V_th) + leak (1 - o[t]) gV[t+1]

    or by subtraction (``reset == RESET_SUBTRACT``, :func:`_bptt_subtract`); the
    reset term ``- leak V[t] gV[t+1]`` is dropped with ``detach``."""
    if reset == RESET_SUBTRACT:
        _bptt_subtract(g, T, n, vm, vo, th, leak, surr, detach, sg, gnext)
        return
    for j in range(n):
        gnext[j] = 0.0
    for t in range(T - 1, -1, -1):
        gt = g[t * n : (t + 1) * n]
        vt = vm[t, vo : vo + n]
        ot = acts[t, oo : oo + n]
        if surr == GATE:  # constant code: the surrogate inlines branch-free into one loop
            for j in range(n):
                v = vt[j]
                gn = _bptt(gt[j], v, ot[j], gnext[j], _sg(GATE, v - th), leak, detach)
                gnext[j] = gn
                gt[j] = gn
        else:
            for j in range(n):
                sg[j] = _sg(surr, vt[j] - th)
            for j in range(n):
                gn = _bptt(gt[j], vt[j], ot[j], gnext[j], sg[j], leak, detach)
                gnext[j] = gn
                gt[j] = gn


@_jit
def _bptt_subtract(g, T, n, vm, vo, th, leak, surr, detach, sg, gnext):
    """:func:`_bptt_layer` with reset by subtraction::

        gV[t] = (dL/do[t] - leak V_th gV[t+1]) g'(V[t] - V_th) + leak gV[t+1]

    (the reset term ``- leak V_th gV[t+1]`` dropped with ``detach``); the spikes
    do not enter it."""
    for j in range(n):
        gnext[j] = 0.0
    for t in range(T - 1, -1, -1):
        gt = g[t * n : (t + 1) * n]
        vt = vm[t, vo : vo + n]
        if surr == GATE:
            for j in range(n):
                v = vt[j]
                gn = _bptt_reset(gt[j], v, 0.0, gnext[j], _sg(GATE, v - th), leak, detach, th, RESET_SUBTRACT)
                gnext[j] = gn
                gt[j] = gn
        else:
            for j in range(n):
                sg[j] = _sg(surr, vt[j] - th)
            for j in range(n):
                gn = _bptt_reset(gt[j], vt[j], 0.0, gnext[j], sg[j], leak, detach, th, RESET_SUBTRACT)
                gnext[j] = gn
                gt[j] = gn


# ------------------------------------------------------------------ one example
@_inline
def _forward(table, theta, x, T, leak, ths, ann, act, reset, acts, vm, arg, cur, asum, logits, cc, cc_offs, nz,
             gemm_steps, prof):
    """Forward pass of one example, layer by layer over all steps; fills
    ``acts``/``vm``/``arg``, the im2col cache ``cc``, the output layer's summed
    input ``asum`` and ``logits``.  Hidden layer ``l`` spikes at ``ths[l]``
    (reset code ``reset``); the ANN applies ``tanh`` or, with ``act == RELU``,
    ``max(I, 0)``."""
    L = table.shape[0]
    t0 = _now(prof)
    for l in range(L - 1):
        ps = l * N_PHASES
        row = table[l]
        kind = row[KIND]
        n_out = row[OUT_C] * row[OUT_H] * row[OUT_W]
        n_in = row[IN_C] * row[IN_H] * row[IN_W]
        oo, io = row[OUT_OFF], row[IN_OFF]
        if kind == MAXPOOL:
            for t in range(T):
                _maxpool_forward(row, acts[t, io : io + n_in], acts[t, oo : oo + n_out], arg[t, oo : oo + n_out])
            t0 = _tick(prof, ps + PH_ACT, t0)
            continue
        if kind == AVGPOOL:
            for t in range(T):
                _avgpool_forward(row, acts[t, io : io + n_in], acts[t, oo : oo + n_out])
            t0 = _tick(prof, ps + PH_ACT, t0)
            continue
        first = io < 0  # direct encoding: the first layer's current is the same at every step
        nsteps = 1 if first else T
        if kind == CONV:
            src_all = x if first else acts.reshape(-1)[io:]
            _conv_cols(row, src_all, acts.shape[1], nsteps, cc[cc_offs[l] :])
            t0 = _tick(prof, ps + PH_IM2COL, t0)
            _conv_currents(row, theta, nsteps, cur, cc[cc_offs[l] :], gemm_steps)
        else:
            for t in range(nsteps):
                src = x if first else acts[t, io : io + n_in]
                _fc_current(row, theta, src, cur[t * n_out :], nz)
        t0 = _tick(prof, ps + PH_CURRENT, t0)
        if ann:
            a = acts[0, oo : oo + n_out]
            if act == RELU:
                for j in range(n_out):
                    c = cur[j]
                    a[j] = c if c > 0.0 else 0.0
            else:
                for j in range(n_out):
                    a[j] = _tanh(cur[j])
        else:
            _spiking(cur, 0 if first else n_out, T, n_out, vm, row[V_OFF], acts, oo, leak, ths[l], reset)
        t0 = _tick(prof, ps + PH_ACT, t0)
    # Output layer: logits = sum_t (W a[t] + b) / T = W (sum_t a[t]) / T + b.
    row = table[L - 1]
    n_in, O, wo, bo, io = row[IN_C], row[OUT_C], row[W_OFF], row[B_OFF], row[IN_OFF]
    for j in range(n_in):
        asum[j] = 0.0
    for t in range(T):
        a = x if io < 0 else acts[t, io : io + n_in]
        for j in range(n_in):
            asum[j] += a[j]
    for o in range(O):
        logits[o] = 0.0
    for j in range(n_in):
        v = asum[j]
        if v == 0.0:
            continue
        w = theta[wo + j * O : wo + (j + 1) * O]
        for o in range(O):
            logits[o] += v * w[o]
    if bo < 0:  # no bias
        for o in range(O):
            logits[o] = logits[o] / T
    else:
        for o in range(O):
            logits[o] = logits[o] / T + theta[bo + o]
    _tick(prof, L * N_PHASES + G_OUTPUT, t0)


@_inline
def _backward(table, theta, theta_b, x, T, leak, ths, surr, detach, ann, act, reset, bufs, dlogits, sparse_max,
              gemm_steps, grad, want_params, dx, want_dx, prof):
    """BPTT of one example from ``dlogits`` = dL/dlogits, after :func:`_forward`.

    ``gA``/``gB`` hold per-step gradients packed as ``[t, j]`` with the stride of
    the layer at hand.  With ``want_params`` the parameter gradient is added to
    ``grad``; with ``want_dx``, ``dx`` receives dL/dx (kernel layout).  The image
    enters layer 0 at every step, so ``dL/dx = W0^T (sum_t dL/dI0[t])``
    (linearity), one backward-input product per example, computed only when
    asked.  Layers without bias (``B_OFF < 0``) get no bias gradient."""
    acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, cc, cc_offs, nz, sg, gnext = bufs
    L = table.shape[0]
    O = dlogits.shape[0]
    t0 = _now(prof)
    row = table[L - 1]
    n_in, wo, bo = row[IN_C], row[W_OFF], row[B_OFF]
    if want_params:
        if bo >= 0:
            for o in range(O):
                grad[bo + o] += dlogits[o]
        for j in range(n_in):
            v = asum[j] / T
            if v != 0.0:
                d = grad[wo + j * O : wo + (j + 1) * O]
                for o in range(O):
                    d[o] += v * dlogits[o]
    if L == 1:
        if want_dx:  # logits = W (sum_t x) / T + b = W x + b
            for j in range(n_in):
                acc = 0.0
                for o in range(O):
                    acc += theta[wo + j * O + o] * dlogits[o]
                dx[j] = acc
        return
    # dL/d(input of the output layer), the same at every step.
    for j in range(n_in):
        acc = 0.0
        for o in range(O):
            acc += theta[wo + j * O + o] * dlogits[o]
        v = acc / T
        for t in range(T):
            gA[t * n_in + j] = v
    t0 = _tick(prof, L * N_PHASES + G_OUTPUT, t0)
    for l in range(L - 2, -1, -1):
        ps = l * N_PHASES
        row = table[l]
        kind = row[KIND]
        n_out = row[OUT_C] * row[OUT_H] * row[OUT_W]
        n_src = row[IN_C] * row[IN_H] * row[IN_W]
        oo, io = row[OUT_OFF], row[IN_OFF]
        if kind == MAXPOOL:
            for t in range(T):
                d = gB[t * n_src : (t + 1) * n_src]
                for i in range(n_src):
                    d[i] = 0.0
                ga = gA[t * n_out : (t + 1) * n_out]
                at = arg[t, oo : oo + n_out]
                for i in range(n_out):
                    d[at[i]] += ga[i]
            t0 = _tick(prof, ps + PH_BACK_ACT, t0)
        elif kind == AVGPOOL:
            for t in range(T):
                _avgpool_backward(row, gA[t * n_out :], gB[t * n_src :])
            t0 = _tick(prof, ps + PH_BACK_ACT, t0)
        else:
            # dL/dI[t] through the neuron (eqs. 9-10) or tanh.
            if ann:
                a = acts[0, oo : oo + n_out]
                if act == RELU:  # f'(I) = 1{a > 0}
                    for j in range(n_out):
                        gA[j] = gA[j] if a[j] > 0.0 else 0.0
                else:  # f'(I) = 1 - a^2
                    for j in range(n_out):
                        gA[j] *= 1.0 - a[j] * a[j]
            else:
                _bptt_layer(gA, T, n_out, vm, row[V_OFF], acts, oo, ths[l], leak, surr, detach, reset, sg, gnext)
            t0 = _tick(prof, ps + PH_BACK_ACT, t0)
            o_ch = row[OUT_C]
            if io < 0:
                # The input is the same at every step: dW = (sum_t dL/dI[t]) * x, db = sum_t dL/dI[t].
                G = gA[:n_out]
                for t in range(1, T):
                    gt = gA[t * n_out : (t + 1) * n_out]
                    for j in range(n_out):
                        G[j] += gt[j]
                if want_params and row[B_OFF] >= 0:
                    _bias_grad(G, n_out // o_ch, o_ch, grad[row[B_OFF] : row[B_OFF] + o_ch])
                t0 = _tick(prof, ps + PH_BIAS, t0)
                if kind == CONV:
                    if want_params:
                        kk = row[IN_C] * row[K] * row[K]
                        npos = row[OUT_H] * row[OUT_W]
                        tmp = wtmp[: kk * o_ch].reshape((kk, o_ch))
                        np.dot(cc[cc_offs[l] : cc_offs[l] + kk * npos].reshape((kk, npos)),
                               G.reshape((npos, o_ch)), tmp)
                        _axpy1(wtmp[: kk * o_ch], grad[row[W_OFF] : row[W_OFF] + kk * o_ch])
                    t0 = _tick(prof, ps + PH_WGRAD, t0)
                    if want_dx:
                        _conv_input_grad(row, theta_b, G, dx, cols, nz, sparse_max)
                else:
                    if want_params:
                        _fc_weight_grad(row, x, G, grad, nz)
                    t0 = _tick(prof, ps + PH_WGRAD, t0)
                    if want_dx:
                        _fc_input_grad(row, theta_b, G, dx, nz)
                t0 = _tick(prof, ps + PH_IGRAD, t0)
            else:
                if want_params and row[B_OFF] >= 0:
                    _bias_grad(gA, T * n_out // o_ch, o_ch, grad[row[B_OFF] : row[B_OFF] + o_ch])
                t0 = _tick(prof, ps + PH_BIAS, t0)
                if kind == CONV:
                    if want_params:
                        kk = row[IN_C] * row[K] * row[K]
                        npos = row[OUT_H] * row[OUT_W]
                        wsz = kk * o_ch
                        tmp = wtmp[:wsz].reshape((kk, o_ch))
                        gw = grad[row[W_OFF] : row[W_OFF] + wsz]
                        cl = cc[cc_offs[l] : cc_offs[l] + T * npos * kk]
                        if gemm_steps:  # one GEMM per step (OpenBLAS small-matrix kernels)
                            for t in range(T):
                                a = cl[t * npos * kk : (t + 1) * npos * kk].reshape((npos, kk))
                                np.dot(a.T, gA[t * n_out : (t + 1) * n_out].reshape((npos, o_ch)), tmp)
                                _axpy1(wtmp[:wsz], gw)
                        else:  # one GEMM over all steps
                            np.dot(cl.reshape((T * npos, kk)).T, gA[: T * n_out].reshape((T * npos, o_ch)), tmp)
                            _axpy1(wtmp[:wsz], gw)
                    t0 = _tick(prof, ps + PH_WGRAD, t0)
                    kk = row[IN_C] * row[K] * row[K]
                    npos = row[OUT_H] * row[OUT_W]
                    if gemm_steps or _count_nonzero(gA, T * n_out) <= sparse_max * (T * n_out):
                        for t in range(T):
                            _conv_input_grad(row, theta_b, gA[t * n_out :], gB[t * n_src :], cols, nz, sparse_max)
                    else:  # one GEMM over all steps, into this layer's im2col block (the weight gradient is done)
                        dc = cc[cc_offs[l] : cc_offs[l] + T * npos * kk]
                        wb = row[W_OFF]
                        np.dot(gA[: T * n_out].reshape((T * npos, o_ch)),
                               theta_b[wb : wb + o_ch * kk].reshape((o_ch, kk)), dc.reshape((T * npos, kk)))
                        for t in range(T):
                            _col2im(row, dc[t * npos * kk :], gB[t * n_src :])
                    t0 = _tick(prof, ps + PH_IGRAD, t0)
                else:
                    if want_params:
                        for t in range(T):
                            _fc_weight_grad(row, acts[t, io : io + n_src], gA[t * n_out :], grad, nz)
                    t0 = _tick(prof, ps + PH_WGRAD, t0)
                    for t in range(T):
                        _fc_input_grad(row, theta_b, gA[t * n_out :], gB[t * n_src :], nz)
                    t0 = _tick(prof, ps + PH_IGRAD, t0)
        gA, gB = gB, gA


@_jit
def _bias_grad(g, rows, O, b):
    """``b[o] += sum_r g[r, o]`` over ``rows`` rows, four rows per pass (a fixed
    order; the memory accumulator is touched once per four rows)."""
    r4 = rows - rows % 4
    for r in range(0, r4, 4):
        g0 = g[r * O : (r + 1) * O]
        g1 = g[(r + 1) * O : (r + 2) * O]
        g2 = g[(r + 2) * O : (r + 3) * O]
        g3 = g[(r + 3) * O : (r + 4) * O]
        for o in range(O):
            b[o] += (g0[o] + g1[o]) + (g2[o] + g3[o])
    for r in range(r4, rows):
        gr = g[r * O : (r + 1) * O]
        for o in range(O):
            b[o] += gr[o]


@_jit
def _axpy1(x, y):
    """``y += x`` elementwise (same length)."""
    for i in range(y.shape[0]):
        y[i] += x[i]


@_jit
def _sumsq(g, lanes):
    """``sum_k g[k]^2`` in float64 in a fixed order: 64 interleaved partial sums
    (``lanes[j] = sum of g[64 i + j]^2``, a loop LLVM vectorises), then the
    lanes pairwise (tree of 6 levels), then the tail in order."""
    n = g.shape[0]
    nb = n - n % 64
    for j in range(64):
        lanes[j] = 0.0
    for b in range(0, nb, 64):
        gb = g[b : b + 64]
        for j in range(64):
            a = np.float64(gb[j])
            lanes[j] += a * a
    w = 32
    while w >= 1:
        for j in range(w):
            lanes[j] = lanes[j] + lanes[j + w]
        w //= 2
    s = lanes[0]
    for k in range(nb, n):
        a = np.float64(g[k])
        s += a * a
    return s


# The batch driver: one kernel processes examples ``lo..hi-1`` of a batch with its
# own buffers.  It releases the GIL (``nogil``), so :mod:`npdpsnn.kernels.numba_backend`
# runs fixed chunks of the batch on an engine's pool of threads -- no parfors compilation,
# and the same result whatever the number of threads.  One entry point for every
# operation (``mode``), with runtime flags only: Numba compiles the kernel once (a
# literal ``True`` or ``1`` passed to a jitted callee would compile a second copy).
FORWARD, GRADS, CLIPPED, INPUT_GRADS, INPUT_VJP = range(5)


def workspace_layout(table: np.ndarray, T: int, act_size: int, v_size: int, max_size: int, col_size: int,
                     wmat_size: int, n_params: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The per-thread workspace of :func:`run_chunk`: the offsets of each conv
    layer's im2col block in the im2col cache (one block for the first layer, ``T``
    for the others; -1 for other layers) and the sizes of the float32, float64,
    int32 and int64 arrays that :func:`_carve` cuts the buffers from."""
    offs = np.full(table.shape[0], -1, np.int64)
    cc_total = 0
    for l, row in enumerate(table):
        if row[KIND] == CONV:
            n = int(row[OUT_H] * row[OUT_W] * row[IN_C] * row[K] * row[K])
            offs[l] = cc_total
            cc_total += n if row[IN_OFF] < 0 else T * n
    n_classes = int(table[-1, OUT_C])
    f32 = 2 * T * act_size + T * v_size + 3 * T * max_size + col_size + wmat_size + cc_total + n_params
    f64 = 3 * max_size + n_classes + 64
    return offs, (f32 - T * act_size, f64, T * act_size, max_size)


@_inline
def _carve(ws32, ws64, wsi32, wsi64, T, act_size, v_size, max_size, col_size, wmat_size, n_params, n_classes):
    """The buffers of one example, as views of the thread's workspace (reused from
    call to call: every buffer is written before it is read)."""
    o = 0
    acts = ws32[o : o + T * act_size].reshape((T, act_size))
    o += T * act_size
    vm = ws32[o : o + T * v_size].reshape((T, v_size))
    o += T * v_size
    cur = ws32[o : o + T * max_size]
    o += T * max_size
    gA = ws32[o : o + T * max_size]
    o += T * max_size
    gB = ws32[o : o + T * max_size]
    o += T * max_size
    cols = ws32[o : o + col_size]
    o += col_size
    wtmp = ws32[o : o + wmat_size]
    o += wmat_size
    g = ws32[o : o + n_params]
    o += n_params
    cc = ws32[o:]
    arg = wsi32[: T * act_size].reshape((T, act_size))
    asum = ws64[:max_size]
    sg = ws64[max_size : 2 * max_size]
    gnext = ws64[2 * max_size : 3 * max_size]
    logits = ws64[3 * max_size : 3 * max_size + n_classes]
    lanes = ws64[3 * max_size + n_classes : 3 * max_size + n_classes + 64]
    nz = wsi64[:max_size]
    return acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, cc, nz, sg, gnext, g, lanes


@_chunk
def run_chunk(mode, table, theta, theta_b, X, Y, D, lo, hi, T, leak, ths, surr, detach, ann, act, reset, act_size,
              v_size, max_size, col_size, wmat_size, cc_offs, ws32, ws64, wsi32, wsi64, sparse_max, gemm_steps, clip, grads,
              acc, norms, losses, correct, dx_out, logits_out, prof):
    """Examples ``lo <= i < hi`` of a batch, by ``mode``:

    * ``FORWARD``: ``logits_out[i]``;
    * ``GRADS``: ``grads[i]`` (forward kernel layout) and ``losses[i]``;
    * ``CLIPPED``: fused per-example gradient, flat L2 clipping and summation
      (eq. 11): ``acc = sum_i g_i clip_factor(||g_i||_2, clip)`` in float64 (the
      norm too), with ``norms[i]``, ``losses[i]`` and ``correct[i]`` (1 where
      ``argmax logits == y``); no ``B x P`` array;
    * ``INPUT_GRADS``: ``dx_out[i]`` = dL/dx (kernel layout) of the cross-entropy
      with label ``Y[i]``, and ``losses[i]``;
    * ``INPUT_VJP``: ``dx_out[i]``, the vector-Jacobian product with
      ``dL/dlogits = D[i]``.  No parameter gradient is formed for these two.

    Model options: ``ths[l]`` is ``V_th`` of hidden layer ``l`` (float32, one
    entry per table row), ``reset`` the reset code (``RESET_ZERO`` /
    ``RESET_SUBTRACT``), ``act`` the ANN activation (``TANH`` / ``RELU``); a
    layer without bias has ``B_OFF = -1`` in the table (no bias read or written).

    Arrays a mode does not use may be empty.  ``cc_offs`` and the workspace
    ``ws32``/``ws64``/``wsi32``/``wsi64`` (one per thread, reused) are laid out by
    :func:`workspace_layout`.  ``prof``: cycle counts ``(B, profile_slots)`` per
    example and phase (``CLIPPED`` only), or ``(0, 0)``."""
    n_classes = table[table.shape[0] - 1, OUT_C]
    P = theta.shape[0]
    acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, cc, nz, sg, gnext, g, lanes = _carve(
        ws32, ws64, wsi32, wsi64, T, act_size, v_size, max_size, col_size, wmat_size, P, n_classes)
    bufs = (acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, cc, cc_offs, nz, sg, gnext)
    want_params = mode == GRADS or mode == CLIPPED
    want_dx = mode == INPUT_GRADS or mode == INPUT_VJP
    gs = table.shape[0] * N_PHASES
    off = np.zeros(0)
    if mode == CLIPPED:
        acc[:] = 0.0
    for i in range(lo, hi):
        pr = prof[i] if prof.shape[0] else off
        t0 = _now(pr)
        if mode == CLIPPED:
            g[:] = 0.0
        elif mode == GRADS:
            grads[i, :] = 0.0
        t0 = _tick(pr, gs + G_ZERO, t0)
        _forward(table, theta, X[i], T, leak, ths, ann, act, reset, acts, vm, arg, cur, asum, logits, cc, cc_offs, nz,
                 gemm_steps, pr)
        if mode == FORWARD:
            for o in range(n_classes):
                logits_out[i, o] = logits[o]
            continue
        t0 = _now(pr)
        if mode == INPUT_VJP:
            for o in range(n_classes):
                logits[o] = D[i, o]
        else:
            losses[i] = _ce(logits, Y[i])  # eq. 7; logits now holds dL/dlogits
        t0 = _tick(pr, gs + G_LOSS, t0)
        target = grads[i] if mode == GRADS else g
        dx = dx_out[i] if want_dx else cur
        _backward(table, theta, theta_b, X[i], T, leak, ths, surr, detach, ann, act, reset, bufs, logits, sparse_max,
                  gemm_steps, target, want_params, dx, want_dx, pr)
        if mode != CLIPPED:
            continue
        t0 = _now(pr)
        correct[i] = 1 if _predicted(logits, Y[i]) == Y[i] else 0  # logits holds p - onehot(y)
        norm = math.sqrt(_sumsq(g, lanes))
        norms[i] = norm
        scale = _clip_factor(norm, clip)
        t0 = _tick(pr, gs + G_CLIP_NORM, t0)
        if scale != 0.0:
            for k in range(P):
                acc[k] += scale * np.float64(g[k])
        _tick(pr, gs + G_CLIP_SUM, t0)
