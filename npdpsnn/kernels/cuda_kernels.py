"""numba.cuda kernels: one thread block per example, threads over the layer's
outputs (forward), weights (weight gradients) and inputs (input gradients).

Imported only by :mod:`npdpsnn.kernels.cuda` (the CUDA backend), on first use: importing this
module imports ``numba.cuda`` (the real target, or the simulator when
``NUMBA_ENABLE_CUDASIM=1`` was set before numba was imported).

The math is that of :mod:`npdpsnn.kernels.reference` / ``cpu.py``, with the same
float32 / float64 choices (float32 currents, membranes and gradients; float64
logits, loss, norms and sums):

* the forward runs layer by layer over all ``T`` steps at once (currents of all
  steps, then the membrane recurrence with one thread per neuron); layer 0's
  current is computed once (direct encoding);
* ``T`` is a compile-time constant (:func:`kernels_for`): the convolutions of
  spike inputs are time-blocked, one thread per output / weight / input element
  for all ``T`` steps with the per-step accumulators in registers;
* every gradient entry is owned by one thread (bias sums: a fixed split over
  the block, combined in order), so there are no atomics and results do not
  depend on scheduling;
* input gradients are gathered (one thread per input element, output positions
  in ascending order) instead of scattered;
* max-pool routes to the first maximum in row-major window order;
* the neuron update, the BPTT step and the surrogate are compiled from their one
  definition in :mod:`npdpsnn.model` with ``cuda.jit(device=True)``.
* model options (ReLU ANN, reset by subtraction, per-layer thresholds
  ``ths[l]``, bias-free layers with ``B_OFF = -1``) are runtime arguments
  tested once per layer, each in its own loop over the neurons.

No fastmath.  (NVVM may still contract ``a*b + c`` into one fused multiply-add,
which rounds once instead of twice: sums can differ from the CPU kernels in the
last float32 bit.  Forward passes on dyadic data are exact either way.)

Per-example scratch lives in global memory, one row per block, sized from the
:class:`~npdpsnn.kernels.program.Program`: ``acts``/``arg`` ``T*act_size``,
``vm`` ``T*v_size``, ``ga``/``gb`` ``T*max_size`` (``ga`` doubles as the
forward's current buffer), ``asum`` ``max_size`` float64, ``lg`` the logits
(float64) and ``grads`` the ``P`` float32 gradient of the example.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from npdpsnn.engine import CUDA_MAXREG
from npdpsnn.kernels.program import (
    AVGPOOL, B_OFF, CONV, IN_C, IN_H, IN_OFF, IN_W, K, KIND, MAXPOOL, OUT_C, OUT_H, OUT_OFF, OUT_W, PAD,
    STRIDE, V_OFF, W_OFF,
)
from npdpsnn.model.loss import predicted_class, softmax_cross_entropy
from npdpsnn.model.neurons import RELU, RESET_SUBTRACT, bptt, bptt_step, membrane, membrane_update
from npdpsnn.model.surrogates import surrogate_grad
from npdpsnn.privacy.mechanism import clip_factor

MAX_THREADS = 1024  # size of the shared reduction buffer: the most threads per block

# Modes of the example kernel: logits only; + per-example gradients; + clipping
# factors; input gradient of the cross-entropy; input VJP of given dL/dlogits.
MODE_FORWARD, MODE_GRADS, MODE_CLIP, MODE_INPUT, MODE_INPUT_VJP = 0, 1, 2, 3, 4

_sg = cuda.jit(device=True)(surrogate_grad)
_membrane = cuda.jit(device=True)(membrane_update)
_bptt = cuda.jit(device=True)(bptt_step)
_membrane_reset = cuda.jit(device=True)(membrane)  # called with a constant reset code
_bptt_reset = cuda.jit(device=True)(bptt)
_ce = cuda.jit(device=True)(softmax_cross_entropy)
_predicted = cuda.jit(device=True)(predicted_class)
_clip_factor = cuda.jit(device=True)(clip_factor)

# ------------------------------------------------------------------ forward pieces
@cuda.jit(device=True)
def _bias(theta, bo, o):
    """``b[o]``, or 0 for a layer without bias (``bo < 0``)."""
    return theta[bo + o] if bo >= 0 else np.float32(0.0)


@cuda.jit(device=True)
def _conv_out(row, theta, src, so, j):
    """Output ``j`` (channel-last) of a conv layer reading ``src[so:]``; the
    bias (if any) first, then ``ky, kx, c`` in order, zero inputs skipped."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    O, Wo = row[OUT_C], row[OUT_W]
    k, s, p, wo = row[K], row[STRIDE], row[PAD], row[W_OFF]
    pos = j // O
    o = j - pos * O
    oy = pos // Wo
    ox = pos - oy * Wo
    acc = _bias(theta, row[B_OFF], o)
    for ky in range(k):
        iy = oy * s + ky - p
        if iy < 0 or iy >= H:
            continue
        for kx in range(k):
            ix = ox * s + kx - p
            if ix < 0 or ix >= W:
                continue
            base = so + (iy * W + ix) * C
            for c in range(C):
                v = src[base + c]
                if v != 0.0:
                    acc += v * theta[wo + ((c * k + ky) * k + kx) * O + o]
    return acc


@cuda.jit(device=True)
def _fc_out(row, theta, src, so, o):
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    acc = _bias(theta, row[B_OFF], o)
    for j in range(n_in):
        v = src[so + j]
        if v != 0.0:
            acc += v * theta[wo + j * O + o]
    return acc


@cuda.jit(device=True)
def _maxpool_out(row, src, so, j):
    """(max, index of the first max in row-major window order relative to ``so``)."""
    C, W = row[IN_C], row[IN_W]
    Wo, k, s = row[OUT_W], row[K], row[STRIDE]
    pos = j // C
    c = j - pos * C
    oy = pos // Wo
    ox = pos - oy * Wo
    first = (oy * s * W + ox * s) * C + c
    best = src[so + first]
    bi = first
    for ky in range(k):
        for kx in range(k):
            if ky == 0 and kx == 0:
                continue
            q = ((oy * s + ky) * W + ox * s + kx) * C + c
            val = src[so + q]
            if val > best:
                best = val
                bi = q
    return best, bi


@cuda.jit(device=True)
def _avgpool_out(row, src, so, j):
    C, W = row[IN_C], row[IN_W]
    Wo, k, s = row[OUT_W], row[K], row[STRIDE]
    pos = j // C
    c = j - pos * C
    oy = pos // Wo
    ox = pos - oy * Wo
    acc = np.float32(0.0)
    for ky in range(k):
        for kx in range(k):
            acc += src[so + ((oy * s + ky) * W + ox * s + kx) * C + c]
    return acc / np.float32(k * k)


# ------------------------------------------------------------------ backward pieces
@cuda.jit(device=True)
def _conv_dw(row, src, src_stride, Tw, g, ms, q):
    """``dW[q]`` (forward layout ``(C, k, k, O)``): sum over steps ``t < Tw`` and
    output positions of ``src[t][in] * g[t][out]``, zero inputs skipped."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
    k, s, p = row[K], row[STRIDE], row[PAD]
    r = q // O
    o = q - r * O
    r2 = r // k
    kx = r - r2 * k
    c = r2 // k
    ky = r2 - c * k
    acc = np.float32(0.0)
    for t in range(Tw):
        so = t * src_stride
        go = t * ms + o
        for oy in range(Ho):
            iy = oy * s + ky - p
            if iy < 0 or iy >= H:
                continue
            for ox in range(Wo):
                ix = ox * s + kx - p
                if ix < 0 or ix >= W:
                    continue
                v = src[so + (iy * W + ix) * C + c]
                if v != 0.0:
                    acc += v * g[go + (oy * Wo + ox) * O]
    return acc


@cuda.jit(device=True)
def _fc_dw(row, src, src_stride, Tw, g, ms, q):
    O = row[OUT_C]
    j = q // O
    o = q - j * O
    acc = np.float32(0.0)
    for t in range(Tw):
        v = src[t * src_stride + j]
        if v != 0.0:
            acc += v * g[t * ms + o]
    return acc


@cuda.jit(device=True)
def _fc_dx(row, theta_b, g, go, j):
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    acc = np.float32(0.0)
    for o in range(O):
        gv = g[go + o]
        if gv != 0.0:
            acc += gv * theta_b[wo + o * n_in + j]
    return acc


@cuda.jit(device=True)
def _pool_dx(row, g, go, arg, ao, i, is_max):
    """Gradient of a pool's input element ``i``: the windows containing it in
    ascending order."""
    C, W = row[IN_C], row[IN_W]
    Ho, Wo, k, s = row[OUT_H], row[OUT_W], row[K], row[STRIDE]
    pos = i // C
    c = i - pos * C
    iy = pos // W
    ix = pos - iy * W
    oy0 = max(0, (iy - k + s) // s)
    oy1 = min(Ho - 1, iy // s)
    ox0 = max(0, (ix - k + s) // s)
    ox1 = min(Wo - 1, ix // s)
    acc = np.float32(0.0)
    scale = np.float32(1.0) / np.float32(k * k)
    for oy in range(oy0, oy1 + 1):
        for ox in range(ox0, ox1 + 1):
            q = (oy * Wo + ox) * C + c
            if is_max:
                if arg[ao + q] == i:
                    acc += g[go + q]
            else:
                acc += g[go + q] * scale
    return acc


# ------------------------------------------------------------------ the example kernel
_BUILT: dict = {}


def _jit_options() -> dict:
    """``max_registers`` from the engine setting ``NPDPSNN_CUDA_MAXREG`` (a
    tuning knob; not under the simulator, whose ``jit`` does not take it)."""
    from numba import config

    maxreg = CUDA_MAXREG.get()
    if maxreg and not config.ENABLE_CUDASIM:
        return {"max_registers": maxreg}
    return {}


def kernels_for(T: int):
    """``(example_kernel, clipped_sum_kernel)`` compiled for ``T`` time steps.

    ``T`` is a compile-time constant (a closure variable, which Numba freezes):
    the per-step loops unroll and the per-step accumulators of the time-blocked
    loops (:func:`conv_fwd_T`, :func:`conv_dw_T`, :func:`conv_dx_T`) live in
    registers.  Each thread of those loops handles one output / weight / input
    for all ``T`` steps, so a weight is loaded once for ``T`` multiply-adds.
    """
    T = int(T)
    if T in _BUILT:
        return _BUILT[T]
    TT = T

    @cuda.jit(device=True)
    def conv_fwd_T(row, theta, src, sstride, so, j, out, ms):
        """``out[t*ms + j]`` = current ``j`` of a conv layer at every step ``t``
        (input ``src[t*sstride + so:]``); per step as :func:`_conv_out`."""
        C, H, W = row[IN_C], row[IN_H], row[IN_W]
        O, Wo = row[OUT_C], row[OUT_W]
        k, s, p, wo = row[K], row[STRIDE], row[PAD], row[W_OFF]
        pos = j // O
        o = j - pos * O
        oy = pos // Wo
        ox = pos - oy * Wo
        acc = cuda.local.array(TT, np.float32)
        b = _bias(theta, row[B_OFF], o)
        for t in range(TT):
            acc[t] = b
        kkO = k * k * O
        for ky in range(k):
            iy = oy * s + ky - p
            if iy < 0 or iy >= H:
                continue
            for kx in range(k):
                ix = ox * s + kx - p
                if ix < 0 or ix >= W:
                    continue
                base = so + (iy * W + ix) * C
                wb = wo + (ky * k + kx) * O + o
                for c in range(C):
                    w = theta[wb + c * kkO]
                    for t in range(TT):
                        v = src[t * sstride + base + c]
                        if v != 0.0:
                            acc[t] += v * w
        for t in range(TT):
            out[t * ms + j] = acc[t]

    @cuda.jit(device=True)
    def conv_dw_T(row, src, sstride, so, g, ms, q):
        """``dW[q]`` of a conv layer fed by spikes: one float32 sum per step over
        the output positions (zero inputs skipped), then the steps in order."""
        C, H, W = row[IN_C], row[IN_H], row[IN_W]
        O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
        k, s, p = row[K], row[STRIDE], row[PAD]
        r = q // O
        o = q - r * O
        r2 = r // k
        kx = r - r2 * k
        c = r2 // k
        ky = r2 - c * k
        acc = cuda.local.array(TT, np.float32)
        for t in range(TT):
            acc[t] = 0.0
        for oy in range(Ho):
            iy = oy * s + ky - p
            if iy < 0 or iy >= H:
                continue
            for ox in range(Wo):
                ix = ox * s + kx - p
                if ix < 0 or ix >= W:
                    continue
                sb = so + (iy * W + ix) * C + c
                gb = (oy * Wo + ox) * O + o
                for t in range(TT):
                    v = src[t * sstride + sb]
                    if v != 0.0:
                        acc[t] += v * g[t * ms + gb]
        total = acc[0]
        for t in range(1, TT):
            total += acc[t]
        return total

    @cuda.jit(device=True)
    def conv_dx_T(row, theta_b, g, i, out, ms):
        """``out[t*ms + i]`` = gradient of input element ``i`` at every step,
        gathered over output positions (ascending) and channels."""
        C, W = row[IN_C], row[IN_W]
        O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
        k, s, p, wo = row[K], row[STRIDE], row[PAD], row[W_OFF]
        pos = i // C
        c = i - pos * C
        iy = pos // W
        ix = pos - iy * W
        oy0 = max(0, (iy + p - k + s) // s)
        oy1 = min(Ho - 1, (iy + p) // s)
        ox0 = max(0, (ix + p - k + s) // s)
        ox1 = min(Wo - 1, (ix + p) // s)
        acc = cuda.local.array(TT, np.float32)
        for t in range(TT):
            acc[t] = 0.0
        for oy in range(oy0, oy1 + 1):
            ky = iy + p - oy * s
            for ox in range(ox0, ox1 + 1):
                kx = ix + p - ox * s
                ob = (oy * Wo + ox) * O
                wb = wo + (ky * k + kx) * O * C + c
                for o in range(O):
                    w = theta_b[wb + o * C]
                    for t in range(TT):
                        gv = g[t * ms + ob + o]
                        if gv != 0.0:
                            acc[t] += gv * w
        for t in range(TT):
            out[t * ms + i] = acc[t]

    @cuda.jit(**_jit_options())
    def example_kernel(table, theta, theta_b, X, Y, idx, leak, ths, surr, detach, ann, act, reset, act_size, v_size,
                       max_size, mode, clip, acts, vm, arg, ga, gb, asum, lg, grads, losses, norms, scales, correct, D, DX):
        """Block ``e`` runs example ``X[idx[e]]``: forward; for ``mode`` 1 and 2
        the loss, correctness and BPTT gradient (``grads[e]``, forward kernel
        layout); for ``mode == 2`` also its float64 L2 norm and clipping factor
        ``scales[e]``.  Modes 3 and 4 skip the parameter gradient and write
        ``DX[e]`` = dL/dx (kernel layout): of the cross-entropy (3, with the
        loss) or of the upstream gradient ``dL/dlogits = D[e]`` (4).  The image
        enters layer 0 at every step: ``dL/dx = sum_t dL/d(input of layer 0)[t]``.

        Model options: ``ths[l]`` is ``V_th`` of hidden layer ``l``, ``reset``
        the reset code (zero / subtraction), ``act`` the ANN activation (tanh /
        relu); a layer without bias has ``B_OFF = -1`` (no bias, no bias
        gradient).  Each is tested once per layer, outside the per-neuron loops."""
        e = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        red = cuda.shared.array(MAX_THREADS, np.float64)
        xi = idx[e]
        x = X[xi]
        A = acts[e]
        V = vm[e]
        ARG = arg[e]
        GA = ga[e]
        GB = gb[e]
        AS = asum[e]
        LG = lg[e]
        G = grads[e]
        L = table.shape[0]
        ms = max_size

        # ------------------------------------------------------ forward, layer by layer
        for l in range(L - 1):
            row = table[l]
            kind = row[KIND]
            n_out = row[OUT_C] * row[OUT_H] * row[OUT_W]
            oo = row[OUT_OFF]
            io = row[IN_OFF]
            if io < 0:
                src = x
                sstride = 0
                io = 0
            else:
                src = A
                sstride = act_size
            if kind == MAXPOOL or kind == AVGPOOL:
                for q in range(tid, TT * n_out, nt):
                    t = q // n_out
                    j = q - t * n_out
                    if kind == MAXPOOL:
                        best, bi = _maxpool_out(row, src, t * sstride + io, j)
                        A[t * act_size + oo + j] = best
                        ARG[t * act_size + oo + j] = bi
                    else:
                        A[t * act_size + oo + j] = _avgpool_out(row, src, t * sstride + io, j)
            else:
                # Currents of all steps (layer 0: once, direct encoding) into GA.
                Tc = 1 if sstride == 0 else TT
                if kind == CONV and Tc > 1:
                    for j in range(tid, n_out, nt):
                        conv_fwd_T(row, theta, src, sstride, io, j, GA, ms)
                else:
                    for q in range(tid, Tc * n_out, nt):
                        t = q // n_out
                        j = q - t * n_out
                        if kind == CONV:
                            GA[t * ms + j] = _conv_out(row, theta, src, t * sstride + io, j)
                        else:
                            GA[t * ms + j] = _fc_out(row, theta, src, t * sstride + io, j)
                cuda.syncthreads()
                vo = row[V_OFF]
                th = ths[l]
                if ann and act == RELU:
                    for j in range(tid, n_out, nt):
                        for t in range(TT):
                            cur = GA[(t if Tc > 1 else 0) * ms + j]
                            A[t * act_size + oo + j] = cur if cur > 0.0 else np.float32(0.0)
                elif ann:
                    for j in range(tid, n_out, nt):
                        for t in range(TT):
                            A[t * act_size + oo + j] = math.tanh(GA[(t if Tc > 1 else 0) * ms + j])
                elif reset == RESET_SUBTRACT:  # V[t] = leak (V[t-1] - V_th o[t-1]) + I[t]
                    for j in range(tid, n_out, nt):
                        for t in range(TT):
                            cur = GA[(t if Tc > 1 else 0) * ms + j]
                            if t == 0:
                                v = cur
                            else:
                                v = _membrane_reset(V[(t - 1) * v_size + vo + j], A[(t - 1) * act_size + oo + j],
                                                    cur, leak, th, RESET_SUBTRACT)
                            V[t * v_size + vo + j] = v
                            A[t * act_size + oo + j] = 1.0 if v >= th else 0.0
                else:
                    for j in range(tid, n_out, nt):
                        for t in range(TT):
                            cur = GA[(t if Tc > 1 else 0) * ms + j]
                            if t == 0:
                                v = cur
                            else:
                                v = _membrane(V[(t - 1) * v_size + vo + j], A[(t - 1) * act_size + oo + j], cur,
                                              leak)
                            V[t * v_size + vo + j] = v
                            A[t * act_size + oo + j] = 1.0 if v >= th else 0.0
            cuda.syncthreads()

        # ------------------------------------------------------ output layer
        row = table[L - 1]
        n_in, O, wo, bo = row[IN_C], row[OUT_C], row[W_OFF], row[B_OFF]
        io = row[IN_OFF]
        for j in range(tid, n_in, nt):
            acc = 0.0
            for t in range(TT):
                acc += x[j] if io < 0 else A[t * act_size + io + j]
            AS[j] = acc
        cuda.syncthreads()
        for o in range(tid, O, nt):
            acc = 0.0
            for j in range(n_in):
                v = AS[j]
                if v != 0.0:
                    acc += v * theta[wo + j * O + o]
            LG[o] = acc / TT + _bias(theta, bo, o)
        cuda.syncthreads()
        if mode == MODE_FORWARD:
            return
        want_params = mode <= MODE_CLIP
        want_dx = mode >= MODE_INPUT

        # ------------------------------------------------------ loss, dL/dlogits
        if mode == MODE_INPUT_VJP:
            for o in range(tid, LG.shape[0], nt):
                LG[o] = D[e, o]
        else:
            y = Y[xi]
            if tid == 0:
                losses[e] = _ce(LG, y)  # LG now holds dL/dlogits
                correct[e] = 1 if _predicted(LG, y) == y else 0
        cuda.syncthreads()

        # ------------------------------------------------------ output layer gradients
        if want_params:
            for q in range(tid, n_in * O + (O if bo >= 0 else 0), nt):
                if q < n_in * O:
                    j = q // O
                    o = q - j * O
                    v = AS[j] / TT
                    G[wo + q] = v * LG[o] if v != 0.0 else 0.0
                else:
                    G[bo + q - n_in * O] = LG[q - n_in * O]
        if L == 1 and want_dx:  # logits = W (sum_t x) / T + b = W x + b
            for j in range(tid, n_in, nt):
                acc = 0.0
                for o in range(O):
                    acc += theta[wo + j * O + o] * LG[o]
                DX[e, j] = acc
        if L > 1:
            # dL/d(input of the output layer), the same at every step.
            for j in range(tid, n_in, nt):
                acc = 0.0
                for o in range(O):
                    acc += theta[wo + j * O + o] * LG[o]
                val = acc / TT
                for t in range(TT):
                    GA[t * ms + j] = val
        cuda.syncthreads()

        # ------------------------------------------------------ hidden layers, top down
        for l in range(L - 2, -1, -1):
            row = table[l]
            kind = row[KIND]
            n_out = row[OUT_C] * row[OUT_H] * row[OUT_W]
            n_src = row[IN_C] * row[IN_H] * row[IN_W]
            oo = row[OUT_OFF]
            io = row[IN_OFF]
            if kind == MAXPOOL or kind == AVGPOOL:
                for q in range(tid, TT * n_src, nt):
                    t = q // n_src
                    i = q - t * n_src
                    GB[t * ms + i] = _pool_dx(row, GA, t * ms, ARG, t * act_size + oo, i, kind == MAXPOOL)
            else:
                # dL/dI[t] through the neuron (eqs. 9-10) or tanh, in place in GA.
                vo = row[V_OFF]
                th = ths[l]
                if ann and act == RELU:  # f'(I) = 1{a > 0}
                    for j in range(tid, n_out, nt):
                        if not A[oo + j] > 0.0:
                            GA[j] = 0.0
                elif ann:  # f'(I) = 1 - a^2
                    for j in range(tid, n_out, nt):
                        a = A[oo + j]
                        GA[j] *= 1.0 - a * a
                elif reset == RESET_SUBTRACT:
                    for j in range(tid, n_out, nt):
                        g_next = np.float32(0.0)
                        for t in range(TT - 1, -1, -1):
                            v = V[t * v_size + vo + j]
                            g_next = _bptt_reset(GA[t * ms + j], v, np.float32(0.0), g_next, _sg(surr, v - th), leak,
                                                 detach, th, RESET_SUBTRACT)
                            GA[t * ms + j] = g_next
                else:
                    for j in range(tid, n_out, nt):
                        g_next = np.float32(0.0)
                        for t in range(TT - 1, -1, -1):
                            v = V[t * v_size + vo + j]
                            g_next = _bptt(GA[t * ms + j], v, A[t * act_size + oo + j], g_next, _sg(surr, v - th),
                                           leak, detach)
                            GA[t * ms + j] = g_next
                cuda.syncthreads()
                oc = row[OUT_C]
                bo = row[B_OFF]
                npos = n_out // oc
                parts = 0
                if want_params and bo >= 0:
                    # Bias: sum over steps and positions, split over the block
                    # (``parts`` partial sums per channel, combined in order).
                    parts = max(1, min(nt // oc, npos))
                    if oc * parts > MAX_THREADS:
                        parts = 0
                    if parts > 0:
                        for q in range(tid, oc * parts, nt):
                            part = q // oc
                            o = q - part * oc
                            acc = np.float32(0.0)
                            for t in range(TT):
                                for pq in range(part, npos, parts):
                                    acc += GA[t * ms + pq * oc + o]
                            red[q] = acc
                    else:
                        for o in range(tid, oc, nt):
                            acc = np.float32(0.0)
                            for t in range(TT):
                                for pq in range(npos):
                                    acc += GA[t * ms + pq * oc + o]
                            G[bo + o] = acc
                wo = row[W_OFF]
                n_w = n_src * oc if kind != CONV else row[IN_C] * row[K] * row[K] * oc
                if io < 0 and want_dx:
                    # dL/dx: the input gradient of every step, summed over the steps.
                    for i in range(tid, n_src, nt):
                        if kind == CONV:
                            conv_dx_T(row, theta_b, GA, i, GB, ms)
                            acc = GB[i]
                            for t in range(1, TT):
                                acc += GB[t * ms + i]
                        else:
                            acc = _fc_dx(row, theta_b, GA, 0, i)
                            for t in range(1, TT):
                                acc += _fc_dx(row, theta_b, GA, t * ms, i)
                        DX[e, i] = acc
                elif io < 0:
                    # The input is the same at every step: dW = (sum_t dL/dI[t]) * x.
                    cuda.syncthreads()
                    for j in range(tid, n_out, nt):
                        s = GA[j]
                        for t in range(1, TT):
                            s += GA[t * ms + j]
                        GA[j] = s
                    cuda.syncthreads()
                    for q in range(tid, n_w, nt):
                        if kind == CONV:
                            G[wo + q] = _conv_dw(row, x, 0, 1, GA, ms, q)
                        else:
                            G[wo + q] = _fc_dw(row, x, 0, 1, GA, ms, q)
                else:
                    if want_params:
                        for q in range(tid, n_w, nt):
                            if kind == CONV:
                                G[wo + q] = conv_dw_T(row, A, act_size, io, GA, ms, q)
                            else:
                                G[wo + q] = _fc_dw(row, A[io:], act_size, TT, GA, ms, q)
                    if kind == CONV:
                        for i in range(tid, n_src, nt):
                            conv_dx_T(row, theta_b, GA, i, GB, ms)
                    else:
                        for q in range(tid, TT * n_src, nt):
                            t = q // n_src
                            i = q - t * n_src
                            GB[t * ms + i] = _fc_dx(row, theta_b, GA, t * ms, i)
                if parts > 0:
                    cuda.syncthreads()
                    for o in range(tid, oc, nt):
                        acc = np.float32(red[o])
                        for part in range(1, parts):
                            acc += np.float32(red[part * oc + o])
                        G[bo + o] = acc
            cuda.syncthreads()
            GA, GB = GB, GA

        if mode != MODE_CLIP:
            return
        # ------------------------------------------------------ float64 norm, clipping factor
        s = 0.0
        for k in range(tid, G.shape[0], nt):
            gk = np.float64(G[k])
            s += gk * gk
        red[tid] = s
        cuda.syncthreads()
        w = 1
        while w < nt:
            w *= 2
        w //= 2
        while w > 0:
            if tid < w and tid + w < nt:
                red[tid] += red[tid + w]
            cuda.syncthreads()
            w //= 2
        if tid == 0:
            norm = math.sqrt(red[0])
            norms[e] = norm
            scales[e] = _clip_factor(norm, clip)

    _BUILT[T] = (example_kernel, clipped_sum_kernel)
    return _BUILT[T]


@cuda.jit
def clipped_sum_kernel(grads, scales, B, out, resume):
    """``out[k] (+)= sum_{i < B} scales[i] * grads[i, k]`` in float64, examples in
    order, one thread per parameter: a fixed order (reproducible bit for bit).
    With ``resume`` the sum continues from ``out`` (the previous chunk's total),
    so a batch run in chunks gives the same bits as one launch."""
    k = cuda.grid(1)
    if k < out.shape[0]:
        acc = out[k] if resume else 0.0
        for i in range(B):
            if scales[i] != 0.0:  # 0: an example with a non-finite gradient, dropped
                acc += scales[i] * np.float64(grads[i, k])
        out[k] = acc
