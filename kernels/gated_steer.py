"""gated_steer in Triton: each program takes BLOCK_N rows and sweeps them in BLOCK_D chunks, the K
attributes held in broadcast tiles, so theta and gate_w chunks are loaded once per BLOCK_N rows.
Every tl.sum reduces the last axis of its tile ([BLOCK_N, BLOCK_K, BLOCK_D] for dot products with
theta/gate_w, [BLOCK_N, BLOCK_D, BLOCK_K] for combinations of them): on triton 3.6 / H100 a
reduction over the middle axis of a 3D tile gave wrong results for some tile shapes. Same math and outputs as
steerkit.reference.gated_steer_forward_rows / gated_steer_backward_rows, accumulated in float32.
norms[:,1] is only computed when norm_preserve is set (the only case the backward reads it)."""
from __future__ import annotations

import os

import triton
import triton.language as tl


def _blocks(n: int, d: int, k: int) -> tuple[int, int, int, int]:
    """(BLOCK_N, BLOCK_K, BLOCK_D, num_warps). The interpreter pays per program and per op, not per
    element, so it gets large tiles; a GPU gets tiles that fit in registers."""
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    budget, n_cap, d_cap = ((1 << 20), 256, 2048) if interp else (8192, 16, 512)
    block_k = max(2, triton.next_power_of_2(k))
    block_d = max(16, min(triton.next_power_of_2(max(d, 1)), d_cap, max(16, budget // block_k)))
    block_n = max(1, min(n_cap, triton.next_power_of_2(max(n, 1)), budget // (block_k * block_d)))
    warps = 4 if block_n * block_k * block_d <= 4096 else 8
    return block_n, block_k, block_d, warps


@triton.jit
def _steer_chunk(h_rows, th_ptr, c, ds, dmask, nmask, ks, kmask, D):
    """h + Σ_k c_k θ_k for one [BLOCK_N, BLOCK_D] chunk of the rows, in float32."""
    x = tl.load(h_rows + ds[None, :], mask=nmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    tt = tl.load(th_ptr + ks[None, :] * D + ds[:, None], mask=dmask[:, None] & kmask[None, :], other=0.0)
    return x + tl.sum(c[:, None, :] * tt.to(tl.float32)[None, :, :], axis=2)


@triton.jit
def _row_coefficients(h_rows, w_ptr, b_ptr, s_ptr, s_stride, rows, nmask, ks, kmask, D,
                      HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """(gates g, coefficients c = strength·g, ‖h‖²) for the program's rows: one sweep over D."""
    z = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    sq = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        x = tl.load(h_rows + ds[None, :], mask=nmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
        sq += tl.sum(x * x, axis=1)
        if HAS_W:
            wt = tl.load(w_ptr + ks[:, None] * D + ds[None, :], mask=kmask[:, None] & dmask[None, :], other=0.0)
            z += tl.sum(x[:, None, :] * wt.to(tl.float32)[None, :, :], axis=2)
    if HAS_W:
        if HAS_B:
            z += tl.load(b_ptr + ks, mask=kmask, other=0.0)[None, :]
        g = 1.0 / (1.0 + tl.exp(-z))
    else:
        g = tl.full([BLOCK_N, BLOCK_K], 1.0, tl.float32)
    nk_mask = nmask[:, None] & kmask[None, :]
    s = tl.load(s_ptr + rows[:, None] * s_stride + ks[None, :], mask=nk_mask, other=0.0)
    return g, tl.where(nk_mask, s * g, 0.0), sq


@triton.jit
def _steered_norm(h_rows, th_ptr, c, nmask, ks, kmask, D, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """‖h + Σ_k c_k θ_k‖ of each of the program's rows: one sweep over D."""
    su = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        u = _steer_chunk(h_rows, th_ptr, c, ds, ds < D, nmask, ks, kmask, D)
        su += tl.sum(u * u, axis=1)
    return tl.sqrt(su)


@triton.jit
def _forward_kernel(h_ptr, h_stride, out_ptr, th_ptr, w_ptr, b_ptr, s_ptr, s_stride, gates_ptr, norms_ptr,
                    N, D, K, HAS_W: tl.constexpr, HAS_B: tl.constexpr, NORM: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = rows < N
    ks = tl.arange(0, BLOCK_K)
    kmask = ks < K
    h_rows = h_ptr + rows[:, None] * h_stride
    g, c, sq = _row_coefficients(h_rows, w_ptr, b_ptr, s_ptr, s_stride, rows, nmask, ks, kmask, D, HAS_W, HAS_B,
                                 BLOCK_N, BLOCK_K, BLOCK_D)
    nh = tl.sqrt(sq)
    tl.store(gates_ptr + rows[:, None] * K + ks[None, :], g, mask=nmask[:, None] & kmask[None, :])
    nu = nh * 0.0
    r = nh * 0.0 + 1.0
    if NORM:
        nu = _steered_norm(h_rows, th_ptr, c, nmask, ks, kmask, D, BLOCK_N, BLOCK_D)
        r = tl.where(nu > 1e-8, nh / nu, 1.0)
    out_rows = out_ptr + rows[:, None] * D
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        u = _steer_chunk(h_rows, th_ptr, c, ds, dmask, nmask, ks, kmask, D)
        tl.store(out_rows + ds[None, :], (r[:, None] * u).to(out_ptr.dtype.element_ty),
                 mask=nmask[:, None] & dmask[None, :])
    tl.store(norms_ptr + 2 * rows, nh, mask=nmask)
    tl.store(norms_ptr + 2 * rows + 1, nu, mask=nmask)


@triton.jit
def _backward_kernel(g_ptr, g_stride, h_ptr, h_stride, th_ptr, w_ptr, s_ptr, s_stride, gates_ptr, norms_ptr,
                     gram_ptr, dh_ptr, dc_ptr, ra_ptr, N, D, K, HAS_W: tl.constexpr, NORM: tl.constexpr,
                     BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = rows < N
    ks = tl.arange(0, BLOCK_K)
    kmask = ks < K
    nk_mask = nmask[:, None] & kmask[None, :]
    g_rows = g_ptr + rows[:, None] * g_stride
    h_rows = h_ptr + rows[:, None] * h_stride
    g_th = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    h_th = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    gh = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        row_mask = nmask[:, None] & dmask[None, :]
        gr = tl.load(g_rows + ds[None, :], mask=row_mask, other=0.0).to(tl.float32)
        tt = tl.load(th_ptr + ks[:, None] * D + ds[None, :], mask=kmask[:, None] & dmask[None, :], other=0.0)
        tt = tt.to(tl.float32)
        g_th += tl.sum(gr[:, None, :] * tt[None, :, :], axis=2)
        if NORM:
            x = tl.load(h_rows + ds[None, :], mask=row_mask, other=0.0).to(tl.float32)
            h_th += tl.sum(x[:, None, :] * tt[None, :, :], axis=2)
            gh += tl.sum(gr * x, axis=1)
    gate = tl.load(gates_ptr + rows[:, None] * K + ks[None, :], mask=nk_mask, other=0.0)
    s = tl.load(s_ptr + rows[:, None] * s_stride + ks[None, :], mask=nk_mask, other=0.0)
    c = tl.where(nk_mask, s * gate, 0.0)
    r = gh * 0.0 + 1.0
    a = gh * 0.0
    hc = gh * 0.0
    dc = g_th
    if NORM:
        nh = tl.load(norms_ptr + 2 * rows, mask=nmask, other=0.0)
        nu = tl.load(norms_ptr + 2 * rows + 1, mask=nmask, other=0.0)
        scaled = nu > 1e-8
        g_u = gh + tl.sum(c * g_th, axis=1)
        r = tl.where(scaled, nh / nu, 1.0)
        a = tl.where(scaled, g_u / (nu * nu), 0.0)
        hc = tl.where(scaled & (nh > 0), g_u / (nu * nh), 0.0)
        gram = tl.load(gram_ptr + ks[:, None] * K + ks[None, :], mask=kmask[:, None] & kmask[None, :], other=0.0)
        u_th = h_th + tl.sum(c[:, None, :] * gram[None, :, :], axis=2)  # gram is symmetric
        dc = r[:, None] * (g_th - a[:, None] * u_th)
    if HAS_W:
        dz = dc * s * gate * (1.0 - gate)
    else:
        dz = dc * 0.0
    tl.store(dc_ptr + rows[:, None] * K + ks[None, :], dc, mask=nk_mask)
    tl.store(ra_ptr + 2 * rows, r, mask=nmask)
    tl.store(ra_ptr + 2 * rows + 1, a, mask=nmask)
    # dh = r grad + (hc - r a) h - r a Σ c_k theta_k + Σ dz_k w_k
    ct = -(r * a)[:, None] * c
    hfac = hc - r * a
    dh_rows = dh_ptr + rows[:, None] * D
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        row_mask = nmask[:, None] & dmask[None, :]
        tile_mask = dmask[:, None] & kmask[None, :]  # [BLOCK_D, BLOCK_K] tiles of theta^T and gate_w^T
        acc = r[:, None] * tl.load(g_rows + ds[None, :], mask=row_mask, other=0.0).to(tl.float32)
        if NORM:
            x = tl.load(h_rows + ds[None, :], mask=row_mask, other=0.0).to(tl.float32)
            tt = tl.load(th_ptr + ks[None, :] * D + ds[:, None], mask=tile_mask, other=0.0)
            acc += hfac[:, None] * x + tl.sum(ct[:, None, :] * tt.to(tl.float32)[None, :, :], axis=2)
        if HAS_W:
            wt = tl.load(w_ptr + ks[None, :] * D + ds[:, None], mask=tile_mask, other=0.0)
            acc += tl.sum(dz[:, None, :] * wt.to(tl.float32)[None, :, :], axis=2)
        tl.store(dh_rows + ds[None, :], acc.to(dh_ptr.dtype.element_ty), mask=row_mask)


def forward(h, theta, gate_w, gate_b, strength, norm_preserve, out, gates, norms):
    """Fills ``out`` [N,D], ``gates`` [N,K] and ``norms`` [N,2] (float32) for the rows of ``h``."""
    n, d = h.shape
    k = theta.shape[0]
    if n == 0:
        return out, gates, norms
    block_n, block_k, block_d, warps = _blocks(n, d, k)
    _forward_kernel[(triton.cdiv(n, block_n),)](
        h, h.stride(0), out, theta, gate_w if gate_w is not None else theta,
        gate_b if gate_b is not None else strength, strength, strength.stride(0) if strength.dim() == 2 else 0,
        gates, norms, n, d, k, HAS_W=gate_w is not None, HAS_B=gate_b is not None, NORM=bool(norm_preserve),
        BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=block_d, num_warps=warps,
    )
    return out, gates, norms


def backward_rows(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve, dh, dc, ra):
    """Fills ``dh`` [N,D], ``dc`` [N,K] and ``ra`` [N,2] (float32): the row-local backward."""
    n, d = h.shape
    k = theta.shape[0]
    if n == 0:
        return dh, dc, ra
    block_n, block_k, block_d, warps = _blocks(n, d, k)
    _backward_kernel[(triton.cdiv(n, block_n),)](
        grad, grad.stride(0), h, h.stride(0), theta, gate_w if gate_w is not None else theta, strength,
        strength.stride(0) if strength.dim() == 2 else 0, gates, norms, gram, dh, dc, ra, n, d, k,
        HAS_W=gate_w is not None, NORM=bool(norm_preserve), BLOCK_N=block_n, BLOCK_K=block_k,
        BLOCK_D=block_d, num_warps=warps,
    )
    return dh, dc, ra
