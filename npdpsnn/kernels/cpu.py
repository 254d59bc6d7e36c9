"""Numba CPU kernels: forward, per-example BPTT gradients, fused clipping.

One generic per-example kernel walks the layer table of
:mod:`npdpsnn.kernels.program` (channel-last activations, kernel weight layouts)
and computes exactly the math of :mod:`npdpsnn.kernels.reference`; the neuron
update, the BPTT step, the surrogates and the loss are compiled from their
single definitions in :mod:`npdpsnn.model`.

Work is split over examples: fixed chunks of the batch run on a thread pool
(the chunk kernels release the GIL), each chunk with its own buffers, so BPTT
memory is bounded per thread (``T x`` one example's activations), never
``B x T x`` activations.

Speed notes (see ``bench/``):
* direct encoding feeds the same image at every step, so the first layer's
  current is computed once per example and its weight gradient once from
  ``sum_t dL/dI[t]`` (linearity);
* spikes are binary, so layers fed by spikes loop over non-zero inputs only
  (event-driven forward and weight gradient);
* the training path fuses clipping with accumulation (no ``B x P`` array);
* input gradients (:func:`input_grad_chunk`) reuse the same backward pass
  without parameter gradients; the training path never forms ``dL/dx``.
No fastmath anywhere: gradients and clipping follow IEEE arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from npdpsnn.engine import configure_numba_cache
from npdpsnn.kernels.program import (
    AVGPOOL, B_OFF, CONV, IN_C, IN_H, IN_OFF, IN_W, K, KIND, MAXPOOL, OUT_C, OUT_H, OUT_OFF, OUT_W,
    PAD, STRIDE, V_OFF, W_OFF,
)
from npdpsnn.model.loss import predicted_class, softmax_cross_entropy
from npdpsnn.model.neurons import bptt_step, membrane_update
from npdpsnn.model.surrogates import surrogate_grad
from npdpsnn.privacy.mechanism import clip_factor

configure_numba_cache()  # before the first @njit(cache=True) below
_jit = njit(cache=True)
_sg = _jit(surrogate_grad)
_membrane = _jit(membrane_update)
_bptt = _jit(bptt_step)
_ce = _jit(softmax_cross_entropy)
_predicted = _jit(predicted_class)
_clip_factor = _jit(clip_factor)


# ------------------------------------------------------------------ layers
@_jit
def _axpy(a, x, y):
    """``y += a * x`` elementwise; ``x`` and ``y`` are views of the same length
    (indexed from 0, so the loop vectorises)."""
    for i in range(y.shape[0]):
        y[i] += a * x[i]

@njit(cache=True)
def _im2col(row, src, cols):
    """``cols[(oy, ox), (ky, kx, c)] = src[oy*s+ky-p, ox*s+kx-p, c]`` (0 in the
    padding).  For a fixed ``ky`` the ``(kx, c)`` run is contiguous in both."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    Ho, Wo = row[OUT_H], row[OUT_W]
    k, s, p = row[K], row[STRIDE], row[PAD]
    kk = C * k * k
    run = k * C
    for oy in range(Ho):
        for ox in range(Wo):
            r = cols[(oy * Wo + ox) * kk : (oy * Wo + ox + 1) * kk]
            ix0 = ox * s - p
            for ky in range(k):
                iy = oy * s + ky - p
                rr = ky * run
                if iy < 0 or iy >= H:
                    for j in range(run):
                        r[rr + j] = 0.0
                elif ix0 >= 0 and ix0 + k <= W:
                    base = (iy * W + ix0) * C
                    for j in range(run):
                        r[rr + j] = src[base + j]
                else:
                    for kx in range(k):
                        ix = ix0 + kx
                        for c in range(C):
                            r[rr + kx * C + c] = src[(iy * W + ix) * C + c] if 0 <= ix < W else 0.0


@njit(cache=True)
def _col2im(row, dcols, dsrc):
    """Adjoint of :func:`_im2col`: ``dsrc[iy, ix, c] = sum of the dcols entries that read it``."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    Ho, Wo = row[OUT_H], row[OUT_W]
    k, s, p = row[K], row[STRIDE], row[PAD]
    kk = C * k * k
    run = k * C
    for i in range(C * H * W):
        dsrc[i] = 0.0
    for oy in range(Ho):
        for ox in range(Wo):
            r = dcols[(oy * Wo + ox) * kk : (oy * Wo + ox + 1) * kk]
            ix0 = ox * s - p
            for ky in range(k):
                iy = oy * s + ky - p
                if iy < 0 or iy >= H:
                    continue
                rr = ky * run
                if ix0 >= 0 and ix0 + k <= W:
                    base = (iy * W + ix0) * C
                    for j in range(run):
                        dsrc[base + j] += r[rr + j]
                else:
                    for kx in range(k):
                        ix = ix0 + kx
                        if 0 <= ix < W:
                            for c in range(C):
                                dsrc[(iy * W + ix) * C + c] += r[rr + kx * C + c]


@njit(cache=True)
def _conv_forward(row, theta, src, out, cols):
    """``out = im2col(src) @ W + b`` with ``W`` the ``(k*k*C, O)`` CPU forward layout;
    ``out`` is ``(Ho*Wo, O)`` channel-last.  One small GEMM per call (BLAS).
    ``cols`` keeps ``im2col(src)`` for the weight gradient."""
    O, npos = row[OUT_C], row[OUT_H] * row[OUT_W]
    kk = row[IN_C] * row[K] * row[K]
    wo, bo = row[W_OFF], row[B_OFF]
    _im2col(row, src, cols)
    a = cols[: npos * kk].reshape((npos, kk))
    res = out[: npos * O].reshape((npos, O))
    np.dot(a, theta[wo : wo + kk * O].reshape((kk, O)), res)
    bias = theta[bo : bo + O]
    for i in range(npos):
        _axpy(np.float32(1.0), bias, res[i])


@njit(cache=True)
def _conv_backward_weight(row, cols, g, grad, wtmp):
    """``dW += cols^T @ g`` with ``cols = im2col(input)`` kept by the forward pass
    (``(k*k*C, O)``, the CPU forward layout)."""
    O, npos = row[OUT_C], row[OUT_H] * row[OUT_W]
    kk = row[IN_C] * row[K] * row[K]
    wo = row[W_OFF]
    a = cols[: npos * kk].reshape((npos, kk))
    tmp = wtmp[: kk * O].reshape((kk, O))
    np.dot(a.T, g[: npos * O].reshape((npos, O)), tmp)
    _axpy(np.float32(1.0), wtmp[: kk * O], grad[wo : wo + kk * O])


@njit(cache=True)
def _conv_backward_input(row, theta_b, g, dsrc, cols):
    """``dsrc = col2im(g @ W)`` with ``W`` the CPU backward layout ``(O, k*k*C)``."""
    O, npos = row[OUT_C], row[OUT_H] * row[OUT_W]
    kk = row[IN_C] * row[K] * row[K]
    wo = row[W_OFF]
    d = cols[: npos * kk].reshape((npos, kk))
    np.dot(g[: npos * O].reshape((npos, O)), theta_b[wo : wo + O * kk].reshape((O, kk)), d)
    _col2im(row, cols, dsrc)


@njit(cache=True)
def _fc_forward(row, theta, src, out):
    """``out[o] = b[o] + sum_j src[j] W[j,o]`` over non-zero inputs."""
    n_in, O, wo, bo = row[IN_C], row[OUT_C], row[W_OFF], row[B_OFF]
    for o in range(O):
        out[o] = theta[bo + o]
    for j in range(n_in):
        v = src[j]
        if v == 0.0:
            continue
        wb = wo + j * O
        _axpy(v, theta[wb : wb + O], out[:O])


@njit(cache=True)
def _fc_backward_weight(row, src, g, grad):
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    for j in range(n_in):
        v = src[j]
        if v == 0.0:
            continue
        wb = wo + j * O
        _axpy(v, g[:O], grad[wb : wb + O])


@njit(cache=True)
def _fc_backward_input(row, theta_b, g, dsrc):
    """``dsrc[j] = sum_o W[o,j] g[o]`` with the backward layout ``(O, n_in)``."""
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    for j in range(n_in):
        dsrc[j] = 0.0
    for o in range(O):
        gv = g[o]
        if gv == 0.0:
            continue
        wb = wo + o * n_in
        _axpy(gv, theta_b[wb : wb + n_in], dsrc[:n_in])


@njit(cache=True)
def _maxpool_forward(row, src, out, arg):
    """Max over each window; ``arg`` keeps the input index of the first maximum
    (row-major within the window, as PyTorch routes the gradient).  Branch-free
    and vectorised over the contiguous channels."""
    C, W = row[IN_C], row[IN_W]
    Ho, Wo, k, s = row[OUT_H], row[OUT_W], row[K], row[STRIDE]
    for oy in range(Ho):
        for ox in range(Wo):
            ob = (oy * Wo + ox) * C
            best = out[ob : ob + C]
            bi = arg[ob : ob + C]
            first = (oy * s * W + ox * s) * C
            for c in range(C):
                best[c] = src[first + c]
                bi[c] = first + c
            for ky in range(k):
                for kx in range(k):
                    base = ((oy * s + ky) * W + ox * s + kx) * C
                    if ky == 0 and kx == 0:
                        continue
                    win = src[base : base + C]
                    for c in range(C):
                        gt = win[c] > best[c]
                        best[c] = win[c] if gt else best[c]
                        bi[c] = base + c if gt else bi[c]


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _weight_forward(row, theta, src, out, cols):
    """Current of a conv or fc layer; ``cols`` is this layer's im2col cache slot."""
    if row[KIND] == CONV:
        _conv_forward(row, theta, src, out, cols)
    else:
        _fc_forward(row, theta, src, out)


# ------------------------------------------------------------------ one example
@njit(cache=True)
def _forward(table, theta, x, T, leak, th, ann, acts, vm, arg, cur0, cur1, asum, logits, colcache, col_offs):
    """Forward pass of one example; fills ``acts``/``vm``/``arg`` per step, the
    output layer's summed input ``asum`` and ``logits``."""
    L = table.shape[0]
    for t in range(T):
        for l in range(L - 1):
            row = table[l]
            kind = row[KIND]
            n_out = row[OUT_C] * row[OUT_H] * row[OUT_W]
            oo = row[OUT_OFF]
            out = acts[t, oo : oo + n_out]
            if row[IN_OFF] < 0:
                src = x
            else:
                src = acts[t, row[IN_OFF] :]
            if kind == MAXPOOL:
                _maxpool_forward(row, src, out, arg[t, oo : oo + n_out])
            elif kind == AVGPOOL:
                _avgpool_forward(row, src, out)
            else:
                if l == 0:  # direct encoding: layer 0's current is the same at every step
                    if t == 0:
                        _weight_forward(row, theta, src, cur0, colcache[0, max(col_offs[l], 0) :])
                    cur = cur0
                else:
                    cur = cur1
                    _weight_forward(row, theta, src, cur, colcache[t, max(col_offs[l], 0) :])
                if ann:
                    for j in range(n_out):
                        out[j] = math.tanh(cur[j])
                else:
                    vo = row[V_OFF]
                    for j in range(n_out):
                        if t == 0:
                            v = cur[j]
                        else:
                            v = _membrane(vm[t - 1, vo + j], acts[t - 1, oo + j], cur[j], leak)
                        vm[t, vo + j] = v
                        out[j] = 1.0 if v >= th else 0.0
    # Output layer: logits = sum_t (W a[t] + b) / T = W (sum_t a[t]) / T + b.
    row = table[L - 1]
    n_in, O, wo, bo = row[IN_C], row[OUT_C], row[W_OFF], row[B_OFF]
    for j in range(n_in):
        acc = 0.0
        for t in range(T):
            acc += x[j] if row[IN_OFF] < 0 else acts[t, row[IN_OFF] + j]
        asum[j] = acc
    for o in range(O):
        logits[o] = 0.0
    for j in range(n_in):
        v = asum[j]
        if v == 0.0:
            continue
        for o in range(O):
            logits[o] += v * theta[wo + j * O + o]
    for o in range(O):
        logits[o] = logits[o] / T + theta[bo + o]


@njit(cache=True)
def _backward(table, theta, theta_b, x, T, leak, th, surr, detach, ann, acts, vm, arg, gA, gB, asum, dlogits, cols,
              wtmp, colcache, col_offs, grad, want_params, dx, want_dx):
    """BPTT of one example from ``dlogits`` = dL/dlogits, after :func:`_forward`.

    With ``want_params`` the parameter gradient is added to ``grad``; with
    ``want_dx``, ``dx`` receives dL/dx (kernel layout).  The image enters layer
    0 at every step, so ``dL/dx = W0^T (sum_t dL/dI0[t])`` (linearity), one
    backward-input product per example, computed only when asked."""
    L = table.shape[0]
    O = dlogits.shape[0]
    row = table[L - 1]
    n_in, wo, bo = row[IN_C], row[W_OFF], row[B_OFF]
    if want_params:
        for o in range(O):
            grad[bo + o] += dlogits[o]
        for j in range(n_in):
            v = asum[j] / T
            if v != 0.0:
                for o in range(O):
                    grad[wo + j * O + o] += v * dlogits[o]
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
        for t in range(T):
            gA[t, j] = acc / T
    for l in range(L - 2, -1, -1):
        row = table[l]
        kind = row[KIND]
        n_out = row[OUT_C] * row[OUT_H] * row[OUT_W]
        n_src = row[IN_C] * row[IN_H] * row[IN_W]
        oo = row[OUT_OFF]
        if kind == MAXPOOL:
            for t in range(T):
                for i in range(n_src):
                    gB[t, i] = 0.0
                for i in range(n_out):
                    gB[t, arg[t, oo + i]] += gA[t, i]
        elif kind == AVGPOOL:
            for t in range(T):
                _avgpool_backward(row, gA[t], gB[t])
        else:
            # dL/dI[t] through the neuron (eqs. 9-10) or tanh.
            if ann:
                for j in range(n_out):
                    a = acts[0, oo + j]
                    gA[0, j] *= 1.0 - a * a
            else:
                vo = row[V_OFF]
                for j in range(n_out):
                    g_next = np.float32(0.0)
                    for t in range(T - 1, -1, -1):
                        v = vm[t, vo + j]
                        g_next = _bptt(gA[t, j], v, acts[t, oo + j], g_next, _sg(surr, v - th), leak, detach)
                        gA[t, j] = g_next
            if want_params:
                bo = row[B_OFF]
                o_ch = row[OUT_C]
                for t in range(T):
                    for j0 in range(0, n_out, o_ch):
                        for o in range(o_ch):
                            grad[bo + o] += gA[t, j0 + o]
            if l == 0:
                # The input is the same at every step: dW = (sum_t dL/dI[t]) * x.
                for t in range(1, T):
                    for j in range(n_out):
                        gA[0, j] += gA[t, j]
                if kind == CONV:
                    if want_params:
                        _conv_backward_weight(row, colcache[0, col_offs[l] :], gA[0], grad, wtmp)
                    if want_dx:
                        _conv_backward_input(row, theta_b, gA[0], dx, cols)
                else:
                    if want_params:
                        _fc_backward_weight(row, x, gA[0], grad)
                    if want_dx:
                        _fc_backward_input(row, theta_b, gA[0], dx)
            else:
                src_off = row[IN_OFF]
                for t in range(T):
                    src = acts[t, src_off : src_off + n_src]
                    if kind == CONV:
                        if want_params:
                            _conv_backward_weight(row, colcache[t, col_offs[l] :], gA[t], grad, wtmp)
                        _conv_backward_input(row, theta_b, gA[t], gB[t], cols)
                    else:
                        if want_params:
                            _fc_backward_weight(row, src, gA[t], grad)
                        _fc_backward_input(row, theta_b, gA[t], gB[t])
        gA, gB = gB, gA


@njit(cache=True)
def _example_grad(table, theta, theta_b, x, y, T, leak, th, surr, detach, ann, acts, vm, arg, cur, gA, gB, asum,
                  logits, cols, wtmp, colcache, col_offs, grad):
    """Adds the gradient of one example's loss to ``grad``; returns the loss."""
    half = cur.shape[0] // 2
    _forward(table, theta, x, T, leak, th, ann, acts, vm, arg, cur[:half], cur[half:], asum, logits, colcache,
             col_offs)
    loss = _ce(logits, y)  # eq. 7; logits now holds dL/dlogits
    _backward(table, theta, theta_b, x, T, leak, th, surr, detach, ann, acts, vm, arg, gA, gB, asum, logits, cols,
              wtmp, colcache, col_offs, grad, True, cur, False)
    return loss


# ------------------------------------------------------------------ batch drivers
@njit(cache=True)
def _sumsq(g):
    """``sum_k g[k]^2`` in float64, as four interleaved partial sums (a fixed
    summation order that the CPU can pipeline)."""
    s0 = s1 = s2 = s3 = 0.0
    n = g.shape[0]
    n4 = n - n % 4
    for k in range(0, n4, 4):
        a, b, c, d = np.float64(g[k]), np.float64(g[k + 1]), np.float64(g[k + 2]), np.float64(g[k + 3])
        s0 += a * a
        s1 += b * b
        s2 += c * c
        s3 += d * d
    for k in range(n4, n):
        a = np.float64(g[k])
        s0 += a * a
    return (s0 + s1) + (s2 + s3)


# Batch drivers: each processes examples ``lo..hi-1`` of a batch with its own
# buffers.  They release the GIL (``nogil``), so :mod:`npdpsnn.kernels.numba_backend`
# runs fixed chunks of the batch on an engine's pool of threads -- no parfors compilation,
# and the same result whatever the number of threads.
@njit(cache=True)
def _buffers(T, act_size, v_size, max_size, col_size, wmat_size, col_total, n_classes):
    return (np.zeros((T, act_size), np.float32), np.zeros((T, v_size), np.float32),
            np.zeros((T, act_size), np.int64), np.zeros(2 * max_size, np.float32),
            np.zeros((T, max_size), np.float32), np.zeros((T, max_size), np.float32),
            np.zeros(max_size, np.float64), np.zeros(n_classes, np.float64), np.zeros(col_size, np.float32),
            np.zeros(wmat_size, np.float32), np.zeros((T, col_total), np.float32))


@njit(cache=True, nogil=True)
def per_example_grads_chunk(table, theta, theta_b, X, Y, lo, hi, T, leak, th, surr, detach, ann, act_size,
                            v_size, max_size, col_size, wmat_size, col_offs, col_total, grads, losses):
    """``grads[i]`` (forward kernel layout) and ``losses[i]`` for ``lo <= i < hi``."""
    n_classes = table[table.shape[0] - 1, OUT_C]
    acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, colcache = _buffers(
        T, act_size, v_size, max_size, col_size, wmat_size, col_total, n_classes)
    for i in range(lo, hi):
        grads[i, :] = 0.0
        losses[i] = _example_grad(table, theta, theta_b, X[i], Y[i], T, leak, th, surr, detach, ann,
                                  acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, colcache, col_offs, grads[i])


@njit(cache=True, nogil=True)
def clipped_sum_chunk(table, theta, theta_b, X, Y, lo, hi, T, leak, th, surr, detach, ann, act_size,
                      v_size, max_size, col_size, wmat_size, col_offs, col_total, clip, acc, norms, losses, correct):
    """Fused per-example gradient, flat L2 clipping and summation (eq. 11) over
    examples ``lo <= i < hi``: ``acc = sum_i g_i min(1, clip / ||g_i||_2)`` in
    float64 (the norm too).  ``correct[i]`` is 1 where ``argmax logits == y``."""
    P = theta.shape[0]
    n_classes = table[table.shape[0] - 1, OUT_C]
    acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, colcache = _buffers(
        T, act_size, v_size, max_size, col_size, wmat_size, col_total, n_classes)
    g = np.zeros(P, np.float32)
    acc[:] = 0.0
    for i in range(lo, hi):
        g[:] = 0.0
        losses[i] = _example_grad(table, theta, theta_b, X[i], Y[i], T, leak, th, surr, detach, ann,
                                  acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, colcache, col_offs, g)
        correct[i] = 1 if _predicted(logits, Y[i]) == Y[i] else 0  # logits holds p - onehot(y)
        norm = math.sqrt(_sumsq(g))
        norms[i] = norm
        scale = _clip_factor(norm, clip)
        if scale != 0.0:
            for k in range(P):
                acc[k] += scale * np.float64(g[k])


@njit(cache=True, nogil=True)
def forward_chunk(table, theta, X, lo, hi, T, leak, th, ann, act_size, v_size, max_size, col_size, col_offs,
                  col_total, logits_out):
    """Logits of examples ``lo <= i < hi``."""
    n_classes = table[table.shape[0] - 1, OUT_C]
    acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, colcache = _buffers(
        T, act_size, v_size, max_size, 1, 1, col_total, n_classes)
    for i in range(lo, hi):
        _forward(table, theta, X[i], T, leak, th, ann, acts, vm, arg, cur[:max_size], cur[max_size:], asum, logits,
                 colcache, col_offs)
        for o in range(n_classes):
            logits_out[i, o] = logits[o]


@njit(cache=True, nogil=True)
def input_grad_chunk(table, theta, theta_b, X, Y, D, use_labels, lo, hi, T, leak, th, surr, detach, ann, act_size,
                     v_size, max_size, col_size, col_offs, col_total, dx_out, losses):
    """``dx_out[i]`` = dL/dx (kernel layout) for ``lo <= i < hi``: of the
    cross-entropy with label ``Y[i]`` (and ``losses[i]``) when ``use_labels``,
    else the vector-Jacobian product with ``dL/dlogits = D[i]``.  No parameter
    gradient is formed."""
    n_classes = table[table.shape[0] - 1, OUT_C]
    acts, vm, arg, cur, gA, gB, asum, logits, cols, wtmp, colcache = _buffers(
        T, act_size, v_size, max_size, col_size, 1, col_total, n_classes)
    for i in range(lo, hi):
        _forward(table, theta, X[i], T, leak, th, ann, acts, vm, arg, cur[:max_size], cur[max_size:], asum, logits,
                 colcache, col_offs)
        if use_labels:
            losses[i] = _ce(logits, Y[i])
        else:
            for o in range(n_classes):
                logits[o] = D[i, o]
        _backward(table, theta, theta_b, X[i], T, leak, th, surr, detach, ann, acts, vm, arg, gA, gB, asum, logits,
                  cols, wtmp, colcache, col_offs, cur, False, dx_out[i], True)
