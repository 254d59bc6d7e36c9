"""Numba CPU kernels: forward, per-example BPTT gradients, fused clipping.

One generic per-example kernel walks the layer table of
:mod:`npdpsnn.kernels.program` (channel-last activations, kernel weight layouts)
and computes exactly the math of :mod:`npdpsnn.kernels.reference`; the neuron
update, the BPTT step and the surrogates are compiled from their single
definitions in :mod:`npdpsnn.model`.

Work is split over examples: ``prange`` over one chunk of the batch per thread,
each chunk with its own buffers, so BPTT memory is bounded per thread
(``T x`` one example's activations), never ``B x T x`` activations.

Speed notes (see ``bench/``):
* direct encoding feeds the same image at every step, so the first layer's
  current is computed once per example and its weight gradient once from
  ``sum_t dL/dI[t]`` (linearity);
* spikes are binary, so layers fed by spikes loop over non-zero inputs only
  (event-driven forward and weight gradient);
* the training path fuses clipping with accumulation (no ``B x P`` array).
No fastmath anywhere: gradients and clipping follow IEEE arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from npdpsnn.kernels.program import (
    AVGPOOL, B_OFF, CONV, FC, HIDDEN, IN_C, IN_H, IN_OFF, IN_W, K, KIND, MAXPOOL, OUT_C, OUT_H, OUT_OFF, OUT_W,
    PAD, STRIDE, V_OFF, W_OFF,
)
from npdpsnn.model.neurons import bptt_step, membrane_update
from npdpsnn.model.surrogates import surrogate_grad

_jit = njit(cache=True, inline="always")
_sg = _jit(surrogate_grad)
_membrane = _jit(membrane_update)
_bptt = _jit(bptt_step)


# ------------------------------------------------------------------ layers
@njit(cache=True)
def _conv_forward(row, theta, src, out):
    """``out[oy,ox,o] = b[o] + sum W[c,ky,kx,o] * src[oy*s+ky-p, ox*s+kx-p, c]``,
    scattered from the non-zero inputs."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
    k, s, p, wo, bo = row[K], row[STRIDE], row[PAD], row[W_OFF], row[B_OFF]
    for i in range(Ho * Wo):
        for o in range(O):
            out[i * O + o] = theta[bo + o]
    for iy in range(H):
        for ix in range(W):
            base = (iy * W + ix) * C
            for c in range(C):
                v = src[base + c]
                if v == 0.0:
                    continue
                for ky in range(k):
                    ny = iy + p - ky
                    if ny < 0:
                        break
                    if ny % s != 0 or ny // s >= Ho:
                        continue
                    oy = ny // s
                    for kx in range(k):
                        nx = ix + p - kx
                        if nx < 0:
                            break
                        if nx % s != 0 or nx // s >= Wo:
                            continue
                        wb = wo + ((c * k + ky) * k + kx) * O
                        ob = (oy * Wo + nx // s) * O
                        for o in range(O):
                            out[ob + o] += v * theta[wb + o]


@njit(cache=True)
def _conv_backward_weight(row, src, g, grad):
    """``dW[c,ky,kx,o] += sum src[..] * g[oy,ox,o]`` over non-zero inputs."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
    k, s, p, wo = row[K], row[STRIDE], row[PAD], row[W_OFF]
    for iy in range(H):
        for ix in range(W):
            base = (iy * W + ix) * C
            for c in range(C):
                v = src[base + c]
                if v == 0.0:
                    continue
                for ky in range(k):
                    ny = iy + p - ky
                    if ny < 0:
                        break
                    if ny % s != 0 or ny // s >= Ho:
                        continue
                    oy = ny // s
                    for kx in range(k):
                        nx = ix + p - kx
                        if nx < 0:
                            break
                        if nx % s != 0 or nx // s >= Wo:
                            continue
                        wb = wo + ((c * k + ky) * k + kx) * O
                        ob = (oy * Wo + nx // s) * O
                        for o in range(O):
                            grad[wb + o] += v * g[ob + o]


@njit(cache=True)
def _conv_backward_input(row, theta, g, dsrc):
    """``dsrc[iy,ix,c] = sum_{ky,kx,o} W[c,ky,kx,o] g[oy,ox,o]`` (transposed conv)."""
    C, H, W = row[IN_C], row[IN_H], row[IN_W]
    O, Ho, Wo = row[OUT_C], row[OUT_H], row[OUT_W]
    k, s, p, wo = row[K], row[STRIDE], row[PAD], row[W_OFF]
    for iy in range(H):
        for ix in range(W):
            base = (iy * W + ix) * C
            for c in range(C):
                dsrc[base + c] = 0.0
            for ky in range(k):
                ny = iy + p - ky
                if ny < 0:
                    break
                if ny % s != 0 or ny // s >= Ho:
                    continue
                oy = ny // s
                for kx in range(k):
                    nx = ix + p - kx
                    if nx < 0:
                        break
                    if nx % s != 0 or nx // s >= Wo:
                        continue
                    ob = (oy * Wo + nx // s) * O
                    for c in range(C):
                        wb = wo + ((c * k + ky) * k + kx) * O
                        acc = np.float32(0.0)
                        for o in range(O):
                            acc += theta[wb + o] * g[ob + o]
                        dsrc[base + c] += acc


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
        for o in range(O):
            out[o] += v * theta[wb + o]


@njit(cache=True)
def _fc_backward_weight(row, src, g, grad):
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    for j in range(n_in):
        v = src[j]
        if v == 0.0:
            continue
        wb = wo + j * O
        for o in range(O):
            grad[wb + o] += v * g[o]


@njit(cache=True)
def _fc_backward_input(row, theta, g, dsrc):
    n_in, O, wo = row[IN_C], row[OUT_C], row[W_OFF]
    for j in range(n_in):
        wb = wo + j * O
        acc = np.float32(0.0)
        for o in range(O):
            acc += theta[wb + o] * g[o]
        dsrc[j] = acc


@njit(cache=True)
def _maxpool_forward(row, src, out, arg):
    """Max over each window; ``arg`` keeps the input index of the first maximum."""
    C, W = row[IN_C], row[IN_W]
    Ho, Wo, k, s = row[OUT_H], row[OUT_W], row[K], row[STRIDE]
    for oy in range(Ho):
        for ox in range(Wo):
            for c in range(C):
                best = -np.inf
                bi = 0
                for ky in range(k):
                    for kx in range(k):
                        idx = ((oy * s + ky) * W + ox * s + kx) * C + c
                        if src[idx] > best:
                            best = src[idx]
                            bi = idx
                out[(oy * Wo + ox) * C + c] = best
                arg[(oy * Wo + ox) * C + c] = bi


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
def _weight_forward(row, theta, src, out):
    if row[KIND] == CONV:
        _conv_forward(row, theta, src, out)
    else:
        _fc_forward(row, theta, src, out)


# ------------------------------------------------------------------ one example
@njit(cache=True)
def _forward(table, theta, x, T, leak, th, ann, acts, vm, arg, cur0, cur1, asum, logits):
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
                        _weight_forward(row, theta, src, cur0)
                    cur = cur0
                else:
                    cur = cur1
                    _weight_forward(row, theta, src, cur)
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
def _example_grad(table, theta, x, y, T, leak, th, surr, detach, ann, acts, vm, arg, cur, gA, gB, asum, logits, grad):
    """Adds the gradient of one example's loss to ``grad``; returns the loss."""
    _forward(table, theta, x, T, leak, th, ann, acts, vm, arg, cur[: cur.shape[0] // 2], cur[cur.shape[0] // 2 :], asum, logits)
    L = table.shape[0]
    # Cross-entropy of softmax(logits) (eq. 7), in float64.
    O = logits.shape[0]
    m = logits[0]
    for o in range(1, O):
        m = max(m, logits[o])
    z = 0.0
    for o in range(O):
        z += math.exp(logits[o] - m)
    lse = m + math.log(z)
    loss = lse - logits[y]
    row = table[L - 1]
    n_in, wo, bo = row[IN_C], row[W_OFF], row[B_OFF]
    for o in range(O):
        d = math.exp(logits[o] - lse) - (1.0 if o == y else 0.0)
        logits[o] = d  # logits now holds dL/dlogits
        grad[bo + o] += d
    for j in range(n_in):
        v = asum[j] / T
        if v != 0.0:
            for o in range(O):
                grad[wo + j * O + o] += v * logits[o]
    if L == 1:
        return loss
    # dL/d(input of the output layer), the same at every step.
    for j in range(n_in):
        acc = 0.0
        for o in range(O):
            acc += theta[wo + j * O + o] * logits[o]
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
            bo = row[B_OFF]
            o_ch = row[OUT_C]
            for t in range(T):
                for j in range(n_out):
                    grad[bo + j % o_ch] += gA[t, j]
            if l == 0:
                # The input is the same at every step: dW = (sum_t dL/dI[t]) * x.
                for t in range(1, T):
                    for j in range(n_out):
                        gA[0, j] += gA[t, j]
                if kind == CONV:
                    _conv_backward_weight(row, x, gA[0], grad)
                else:
                    _fc_backward_weight(row, x, gA[0], grad)
            else:
                src_off = row[IN_OFF]
                for t in range(T):
                    src = acts[t, src_off : src_off + n_src]
                    if kind == CONV:
                        _conv_backward_weight(row, src, gA[t], grad)
                        _conv_backward_input(row, theta, gA[t], gB[t])
                    else:
                        _fc_backward_weight(row, src, gA[t], grad)
                        _fc_backward_input(row, theta, gA[t], gB[t])
        gA, gB = gB, gA
    return loss


# ------------------------------------------------------------------ batch drivers
@njit(cache=True)
def _chunk(b, n, i):
    return i * b // n, (i + 1) * b // n


@njit(parallel=True, cache=True)
def per_example_grads_kernel(table, theta, X, Y, T, leak, th, surr, detach, ann, act_size, v_size, max_size,
                             n_chunks, grads, losses):
    """``grads[i]`` (kernel layout) and ``losses[i]`` for every example ``i``."""
    B = X.shape[0]
    n_classes = table[table.shape[0] - 1, OUT_C]
    nth = min(B, n_chunks)
    for ch in prange(nth):
        lo, hi = _chunk(B, nth, ch)
        acts = np.zeros((T, act_size), np.float32)
        vm = np.zeros((T, v_size), np.float32)
        arg = np.zeros((T, act_size), np.int64)
        cur = np.zeros(2 * max_size, np.float32)
        gA = np.zeros((T, max_size), np.float32)
        gB = np.zeros((T, max_size), np.float32)
        asum = np.zeros(max_size, np.float64)
        logits = np.zeros(n_classes, np.float64)
        for i in range(lo, hi):
            grads[i, :] = 0.0
            losses[i] = _example_grad(table, theta, X[i], Y[i], T, leak, th, surr, detach, ann,
                                      acts, vm, arg, cur, gA, gB, asum, logits, grads[i])


@njit(parallel=True, cache=True)
def clipped_sum_kernel(table, theta, X, Y, T, leak, th, surr, detach, ann, act_size, v_size, max_size,
                       clip, partial, norms, losses):
    """Fused per-example gradient, flat L2 clipping and summation (eq. 11).

    Each thread adds ``g_i * min(1, clip / ||g_i||_2)`` (norm in float64) to its
    own float64 row of ``partial``; the caller sums the rows.
    """
    B = X.shape[0]
    P = theta.shape[0]
    n_classes = table[table.shape[0] - 1, OUT_C]
    nth = min(B, partial.shape[0])
    for ch in prange(nth):
        lo, hi = _chunk(B, nth, ch)
        acts = np.zeros((T, act_size), np.float32)
        vm = np.zeros((T, v_size), np.float32)
        arg = np.zeros((T, act_size), np.int64)
        cur = np.zeros(2 * max_size, np.float32)
        gA = np.zeros((T, max_size), np.float32)
        gB = np.zeros((T, max_size), np.float32)
        asum = np.zeros(max_size, np.float64)
        logits = np.zeros(n_classes, np.float64)
        g = np.zeros(P, np.float32)
        acc = partial[ch]
        for i in range(lo, hi):
            g[:] = 0.0
            losses[i] = _example_grad(table, theta, X[i], Y[i], T, leak, th, surr, detach, ann,
                                      acts, vm, arg, cur, gA, gB, asum, logits, g)
            n2 = 0.0
            for k in range(P):
                gk = np.float64(g[k])
                n2 += gk * gk
            norm = math.sqrt(n2)
            norms[i] = norm
            scale = 1.0 if norm <= clip else clip / norm
            for k in range(P):
                acc[k] += scale * np.float64(g[k])


@njit(parallel=True, cache=True)
def forward_kernel(table, theta, X, T, leak, th, ann, act_size, v_size, max_size, n_chunks, logits_out):
    """Logits of every example."""
    B = X.shape[0]
    n_classes = table[table.shape[0] - 1, OUT_C]
    nth = min(B, n_chunks)
    for ch in prange(nth):
        lo, hi = _chunk(B, nth, ch)
        acts = np.zeros((T, act_size), np.float32)
        vm = np.zeros((T, v_size), np.float32)
        arg = np.zeros((T, act_size), np.int64)
        cur = np.zeros(2 * max_size, np.float32)
        asum = np.zeros(max_size, np.float64)
        logits = np.zeros(n_classes, np.float64)
        for i in range(lo, hi):
            _forward(table, theta, X[i], T, leak, th, ann, acts, vm, arg, cur[:max_size], cur[max_size:], asum, logits)
            for o in range(n_classes):
                logits_out[i, o] = logits[o]
