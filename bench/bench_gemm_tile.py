"""Probe: can a register-blocked SIMD micro-kernel beat OpenBLAS on the conv GEMMs?

The conv2 GEMMs of Net2 (per example and time step: 64 positions x 256 taps x 32
channels, forward ``cols . W``, weight gradient ``colsT . G``, input gradient
``G . WT``) take most of an SNN step (``bench/README.md``).  Numba's loop vectoriser
keeps accumulators in memory, so this probe writes the micro-kernel directly in
LLVM IR through a Numba ``@intrinsic``: a 6 x 16 (or 1 x 16) tile of
C held in 8-float vector registers over the whole K loop, ``llvm.fmuladd`` per
rank-1 update, B read as rows of 16 floats and A as broadcast scalars with
arbitrary strides (so one kernel serves all three orientations).  It times each
shape per time step (M = 64) and over the 5 steps of T = 5 (M = 320) against
OpenBLAS through Numba's ``np.dot`` (BLAS single-threaded), one thread, best of 5
rounds of 200 calls, and checks the result against a float64 product.

    python bench/bench_gemm_tile.py > bench/results/gemm-tile-<machine>.jsonl

Not library code: the result decides whether such kernels are worth adding.
"""
import json
import os
import sys
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

W = 8  # floats per vector


def make_tile(R, NV):
    @intrinsic
    def tile(typingctx, A, a0, sr, sp, B, b0, ldb, C, c0, ldc, K):
        sig = types.void(A, a0, sr, sp, B, b0, ldb, C, c0, ldc, K)

        def codegen(context, builder, signature, args):
            A_, a0_, sr_, sp_, B_, b0_, ldb_, C_, c0_, ldc_, K_ = args
            at = signature.args
            pa = context.make_array(at[0])(context, builder, A_).data
            pb = context.make_array(at[4])(context, builder, B_).data
            pc = context.make_array(at[7])(context, builder, C_).data
            i64 = ir.IntType(64)
            f32 = ir.FloatType()
            vt = ir.VectorType(f32, W)
            vp = vt.as_pointer()
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                                                 "llvm.fmuladd.v8f32")
            a0_, sr_, sp_, b0_, ldb_, c0_, ldc_, K_ = [context.cast(builder, v, t, types.int64) for v, t in
                                                     zip((a0_, sr_, sp_, b0_, ldb_, c0_, ldc_, K_),
                                                         (at[1], at[2], at[3], at[5], at[6], at[8], at[9], at[10]))]
            zero = ir.Constant(vt, [0.0] * W)
            pre = builder.block
            loop = builder.append_basic_block("tile.loop")
            body = builder.append_basic_block("tile.body")
            done = builder.append_basic_block("tile.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            p = builder.phi(i64)
            p.add_incoming(ir.Constant(i64, 0), pre)
            accs = []
            for _ in range(R * NV):
                ph = builder.phi(vt)
                ph.add_incoming(zero, pre)
                accs.append(ph)
            cond = builder.icmp_signed("<", p, K_)
            builder.cbranch(cond, body, done)
            builder.position_at_end(body)
            boff = builder.add(b0_, builder.mul(p, ldb_))
            bv = []
            for v in range(NV):
                ptr = builder.gep(pb, [builder.add(boff, ir.Constant(i64, v * W))])
                bv.append(builder.load(builder.bitcast(ptr, vp), align=4))
            aoff = builder.add(a0_, builder.mul(p, sp_))
            new = []
            for r in range(R):
                ptr = builder.gep(pa, [builder.add(aoff, builder.mul(ir.Constant(i64, r), sr_))])
                s = builder.load(ptr)
                sv = builder.insert_element(ir.Constant(vt, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
                sv = builder.shuffle_vector(sv, ir.Constant(vt, ir.Undefined),
                                            ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W))
                for v in range(NV):
                    new.append(builder.call(fma, [sv, bv[v], accs[r * NV + v]]))
            pn = builder.add(p, ir.Constant(i64, 1))
            body_end = builder.block
            builder.branch(loop)
            p.add_incoming(pn, body_end)
            for a, n in zip(accs, new):
                a.add_incoming(n, body_end)
            builder.position_at_end(done)
            for r in range(R):
                for v in range(NV):
                    off = builder.add(c0_, builder.add(builder.mul(ir.Constant(i64, r), ldc_), ir.Constant(i64, v * W)))
                    builder.store(accs[r * NV + v], builder.bitcast(builder.gep(pc, [off]), vp), align=4)
            return context.get_dummy_value()
        return sig, codegen
    return tile


_t6x2 = make_tile(6, 2)
_t1x2 = make_tile(1, 2)


@njit(cache=False, error_model="numpy")
def gemm(A, a0, sr, sp, B, b0, ldb, C, c0, ldc, M, N, K):
    """C[i, j] = sum_p A[a0 + i*sr + p*sp] * B[b0 + p*ldb + j], N a multiple of 16 (all the shapes timed here)."""
    j = 0
    while j + 16 <= N:
        i = 0
        while i + 6 <= M:
            _t6x2(A, a0 + i * sr, sr, sp, B, b0 + j, ldb, C, c0 + i * ldc + j, ldc, K)
            i += 6
        while i < M:
            _t1x2(A, a0 + i * sr, sr, sp, B, b0 + j, ldb, C, c0 + i * ldc + j, ldc, K)
            i += 1
        j += 16


@njit(cache=False)
def blas_fwd(a, w, c, reps):
    for _ in range(reps):
        np.dot(a, w, c)


@njit(cache=False)
def blas_wg(a, g, c, reps):
    for _ in range(reps):
        np.dot(a.T, g, c)


@njit(cache=False)
def rep_gemm(A, a0, sr, sp, B, b0, ldb, C, c0, ldc, M, N, K, reps):
    for _ in range(reps):
        gemm(A, a0, sr, sp, B, b0, ldb, C, c0, ldc, M, N, K)


def _best_us(f, args, reps):
    f(*args, 1)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        f(*args, reps)
        best = min(best, time.perf_counter() - t)
    return best / reps * 1e6


def main() -> None:
    import threadpoolctl

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_cpu import environment

    threadpoolctl.threadpool_limits(1)
    env = environment()
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    env["simd"] = sorted(x for x in flags if x.startswith(("avx", "fma")))
    print(json.dumps(env), flush=True)
    rng = np.random.default_rng(0)
    T = 5
    # (layer, positions, taps, channels, input density): Net2's conv2 on pooled spikes, conv1 on the image
    for layer, npos, kk, O, dens in (("conv2", 64, 256, 32, 0.4), ("conv1", 484, 49, 16, 1.0)):
        cols = (rng.random((T * npos, kk)) < dens).astype(np.float32) * rng.random((T * npos, kk)).astype(np.float32)
        if layer == "conv2":
            cols = (cols > 0).astype(np.float32)
        w = rng.standard_normal((kk, O)).astype(np.float32)
        g = rng.standard_normal((T * npos, O)).astype(np.float32)
        wb = np.ascontiguousarray(w.T)
        for M in ((npos, T * npos) if layer == "conv2" else (npos,)):
            a = np.ascontiguousarray(cols[:M])
            gg = np.ascontiguousarray(g[:M])
            cases = [  # name, BLAS call, its arguments, tile arguments (A, a0, sr, sp, B, b0, ldb), (M, N, K), exact
                ("forward cols.W", blas_fwd, (a, w), (a.ravel(), 0, kk, 1, w.ravel(), 0, O), (M, O, kk),
                 a.astype(np.float64) @ w),
                ("weight gradient colsT.G", blas_wg, (a, gg), (a.ravel(), 0, 1, kk, gg.ravel(), 0, O), (kk, O, M),
                 a.T.astype(np.float64) @ gg),
            ]
            if layer == "conv2":
                cases.append(("input gradient G.WT", blas_fwd, (gg, wb), (gg.ravel(), 0, O, 1, wb.ravel(), 0, kk),
                              (M, kk, O), gg.astype(np.float64) @ wb))
            for name, blas, bargs, targs, (m, n, k), exact in cases:
                c1 = np.empty((m, n), np.float32)
                c2 = np.empty((m, n), np.float32)
                reps = max(20, int(2e8 / (m * n * k)))
                t_blas = _best_us(blas, (*bargs, c1), reps)
                t_tile = _best_us(rep_gemm, (*targs, c2.ravel(), 0, n, m, n, k), reps)
                print(json.dumps({
                    "kind": "gemm", "layer": layer, "product": name, "M": m, "N": n, "K": k,
                    "rows": "one time step" if M == npos else f"all {T} time steps",
                    "blas_us": round(t_blas, 2), "tile_us": round(t_tile, 2),
                    "blas_gmac_s": round(m * n * k / t_blas / 1e3, 1),
                    "tile_gmac_s": round(m * n * k / t_tile / 1e3, 1),
                    "max_abs_err_blas": float(np.abs(c1 - exact).max()),
                    "max_abs_err_tile": float(np.abs(c2 - exact).max()),
                    "load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
