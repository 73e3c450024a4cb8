"""gated_steer in Triton: each program takes BLOCK_N rows and sweeps them in BLOCK_D chunks, theta and
gate_w chunks loaded once per BLOCK_N rows; the K attributes in broadcast tiles below DOT_MIN_K, as
tl.dot from it. The forward sweeps h twice (gates, norms and h·θ; then the output).
Every tl.sum reduces the last axis of its tile ([BLOCK_N, BLOCK_K, BLOCK_D] for dot products with
theta/gate_w, [BLOCK_N, BLOCK_D, BLOCK_K] for combinations of them): on triton 3.6 / H100 a
reduction over the middle axis of a 3D tile gave wrong results for some tile shapes. Same math and outputs as
steerkit.reference.gated_steer_forward_rows / gated_steer_backward_rows, accumulated in float32.
norms[:,1] is only computed when norm_preserve is set (the only case the backward reads it)."""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# K from which the dot products and the steering combination run as tl.dot (tensor cores) rather than
# broadcast sums over [BLOCK_N, BLOCK_K, BLOCK_D] tiles, whose registers grow with K (issue 20)
DOT_MIN_K = 8


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


def _dot_blocks(n: int, d: int, k: int) -> tuple[int, int, int, int]:
    """(BLOCK_N, BLOCK_K, BLOCK_D, num_warps) for the tl.dot form: every dot dimension at least 16 (its
    minimum), [BLOCK_N, BLOCK_D] chunks of h and [BLOCK_D, BLOCK_K] chunks of the vectors in registers."""
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    block_k = max(16, triton.next_power_of_2(k))
    block_n = 64 if interp else (32 if n >= 8192 else 16)
    block_d = max(16, min(triton.next_power_of_2(max(d, 1)), 1024 if interp else 128))
    return block_n, block_k, block_d, 4


def launch_config(h: torch.Tensor, theta: torch.Tensor, norm_preserve: bool) -> dict:
    """The constexprs and the gram matrix of a ``_coefficients`` kernel: tile sizes, tl.dot or not, its
    precision, and θθᵀ in float32 zero-padded to [BLOCK_K, BLOCK_K] (the norm identity's; a placeholder
    pointer without norm preservation)."""
    n, d = h.shape
    k = theta.shape[0]
    use_dot = k >= DOT_MIN_K
    block_n, block_k, block_d, warps = _dot_blocks(n, d, k) if use_dot else _blocks(n, d, k)
    if norm_preserve:
        t = theta.float()
        gram = torch.zeros((block_k, block_k), dtype=torch.float32, device=h.device)
        gram[:k, :k] = t @ t.T
    else:
        gram = h
    return dict(gram=gram, USE_DOT=use_dot, PRECISION="ieee" if h.dtype == torch.float32 else None,
                SPLIT=h.dtype != torch.float32, BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=block_d, num_warps=warps)


@triton.jit
def _steer_chunk(h_rows, th_ptr, c, ds, dmask, nmask, ks, kmask, D):
    """h + Σ_k c_k θ_k for one [BLOCK_N, BLOCK_D] chunk of the rows, in float32."""
    x = tl.load(h_rows + ds[None, :], mask=nmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    tt = tl.load(th_ptr + ks[None, :] * D + ds[:, None], mask=dmask[:, None] & kmask[None, :], other=0.0)
    return x + tl.sum(c[:, None, :] * tt.to(tl.float32)[None, :, :], axis=2)


@triton.jit
def _row_sums(h_rows, w_ptr, th_ptr, nmask, ks, kmask, D, HAS_W: tl.constexpr, NORM: tl.constexpr,
              USE_DOT: tl.constexpr, PRECISION: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """(z = h·w_kᵀ, p = h·θ_kᵀ, ‖h‖²) for the program's rows in one sweep over D: h is read once for the
    gates and the norm identity alike. With USE_DOT the [BLOCK_N, BLOCK_K] products are tl.dot over
    each chunk (tensor cores at K >= 8; 16-bit products are exact in float32), else broadcast sums."""
    z = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    p = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    sq = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        x = tl.load(h_rows + ds[None, :], mask=nmask[:, None] & dmask[None, :], other=0.0)
        xf = x.to(tl.float32)
        sq += tl.sum(xf * xf, axis=1)
        if USE_DOT:
            tile = ks[None, :] * D + ds[:, None]  # [BLOCK_D, BLOCK_K]: the vectors' chunk, transposed
            tmask = dmask[:, None] & kmask[None, :]
            if HAS_W:
                z = tl.dot(x, tl.load(w_ptr + tile, mask=tmask, other=0.0), z, input_precision=PRECISION)
            if NORM:
                p = tl.dot(x, tl.load(th_ptr + tile, mask=tmask, other=0.0), p, input_precision=PRECISION)
        else:
            tile = ks[:, None] * D + ds[None, :]  # [BLOCK_K, BLOCK_D]
            tmask = kmask[:, None] & dmask[None, :]
            if HAS_W:
                wt = tl.load(w_ptr + tile, mask=tmask, other=0.0).to(tl.float32)
                z += tl.sum(xf[:, None, :] * wt[None, :, :], axis=2)
            if NORM:
                tt = tl.load(th_ptr + tile, mask=tmask, other=0.0).to(tl.float32)
                p += tl.sum(xf[:, None, :] * tt[None, :, :], axis=2)
    return z, p, sq


@triton.jit
def _steer_chunk_dot(h_rows, th_ptr, c_hi, c_lo, ds, dmask, nmask, ks, kmask, D, PRECISION: tl.constexpr,
                     SPLIT: tl.constexpr):
    """h + c θ for one [BLOCK_N, BLOCK_D] chunk as tl.dot. For 16-bit θ the float32 coefficients go in
    as two 16-bit parts (hi + lo), which keeps ~16 bits of c against 8 for a single rounding."""
    x = tl.load(h_rows + ds[None, :], mask=nmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    tt = tl.load(th_ptr + ks[:, None] * D + ds[None, :], mask=kmask[:, None] & dmask[None, :], other=0.0)
    x = tl.dot(c_hi, tt, x, input_precision=PRECISION)
    if SPLIT:
        x = tl.dot(c_lo, tt, x, input_precision=PRECISION)
    return x


@triton.jit
def _steered_chunk(h_rows, th_ptr, c, c_hi, c_lo, ds, dmask, nmask, ks, kmask, D, USE_DOT: tl.constexpr,
                   PRECISION: tl.constexpr, SPLIT: tl.constexpr):
    if USE_DOT:
        return _steer_chunk_dot(h_rows, th_ptr, c_hi, c_lo, ds, dmask, nmask, ks, kmask, D, PRECISION, SPLIT)
    return _steer_chunk(h_rows, th_ptr, c, ds, dmask, nmask, ks, kmask, D)


@triton.jit
def _steered_norm(h_rows, th_ptr, c, c_hi, c_lo, nmask, ks, kmask, D, USE_DOT: tl.constexpr, PRECISION: tl.constexpr,
                  SPLIT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """‖h + Σ_k c_k θ_k‖ of each of the program's rows, summed directly: one more sweep over D, taken
    only where the identity in the forward would cancel."""
    su = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        u = _steered_chunk(h_rows, th_ptr, c, c_hi, c_lo, ds, ds < D, nmask, ks, kmask, D, USE_DOT, PRECISION, SPLIT)
        su += tl.sum(u * u, axis=1)
    return tl.sqrt(su)


@triton.jit
def _coefficients(h_rows, w_ptr, th_ptr, b_ptr, s_ptr, s_stride, gram_ptr, rows, nmask, ks, kmask, D,
                  HAS_W: tl.constexpr, HAS_B: tl.constexpr, NORM: tl.constexpr, USE_DOT: tl.constexpr,
                  PRECISION: tl.constexpr, SPLIT: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """(gates, c = strength·gate, c as hi + lo parts in θ's dtype, ‖h‖, steered norm, row scale r) from one
    sweep over h: ‖h + Σ c_k θ_k‖² = ‖h‖² + 2 Σ c_k (h·θ_k) + cᵀ(θθᵀ)c. A block with a row the steer
    nearly annuls (steered norm² below a quarter of ‖h‖², where the identity loses digits) takes a
    direct norm sweep instead."""
    nk_mask = nmask[:, None] & kmask[None, :]
    z, p, sq = _row_sums(h_rows, w_ptr, th_ptr, nmask, ks, kmask, D, HAS_W, NORM, USE_DOT, PRECISION,
                         BLOCK_N, BLOCK_K, BLOCK_D)
    if HAS_W:
        if HAS_B:
            z += tl.load(b_ptr + ks, mask=kmask, other=0.0)[None, :]
        g = 1.0 / (1.0 + tl.exp(-z))
    else:
        g = tl.full([BLOCK_N, BLOCK_K], 1.0, tl.float32)
    s = tl.load(s_ptr + rows[:, None] * s_stride + ks[None, :], mask=nk_mask, other=0.0)
    c = tl.where(nk_mask, s * g, 0.0)
    c_hi = c.to(th_ptr.dtype.element_ty)  # for tl.dot; unused (and free) without USE_DOT
    c_lo = (c - c_hi.to(tl.float32)).to(th_ptr.dtype.element_ty)
    nh = tl.sqrt(sq)
    nu = nh * 0.0
    r = nh * 0.0 + 1.0
    if NORM:
        gram = tl.load(gram_ptr + ks[:, None] * BLOCK_K + ks[None, :])  # zero-padded to [BLOCK_K, BLOCK_K]
        cg = tl.sum(c[:, None, :] * gram[None, :, :], axis=2)  # c θθᵀ (gram is symmetric)
        nu2 = sq + 2.0 * tl.sum(c * p, axis=1) + tl.sum(cg * c, axis=1)
        if tl.min(tl.where(nmask, nu2 - 0.25 * sq, 1.0), axis=0) < 0.0:
            nu = _steered_norm(h_rows, th_ptr, c, c_hi, c_lo, nmask, ks, kmask, D, USE_DOT, PRECISION, SPLIT,
                               BLOCK_N, BLOCK_D)
        else:
            nu = tl.sqrt(tl.maximum(nu2, 0.0))
        r = tl.where(nu > 1e-8, nh / nu, 1.0)
    return g, c, c_hi, c_lo, nh, nu, r


@triton.jit
def _forward_kernel(h_ptr, h_stride, out_ptr, th_ptr, w_ptr, b_ptr, s_ptr, s_stride, gram_ptr, gates_ptr, norms_ptr,
                    N, D, K, HAS_W: tl.constexpr, HAS_B: tl.constexpr, NORM: tl.constexpr, USE_DOT: tl.constexpr,
                    PRECISION: tl.constexpr, SPLIT: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """Two sweeps over h where the last version took three: the coefficients and norms, then the output."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = rows < N
    ks = tl.arange(0, BLOCK_K)
    kmask = ks < K
    h_rows = h_ptr + rows[:, None] * h_stride
    g, c, c_hi, c_lo, nh, nu, r = _coefficients(h_rows, w_ptr, th_ptr, b_ptr, s_ptr, s_stride, gram_ptr, rows, nmask,
                                                ks, kmask, D, HAS_W, HAS_B, NORM, USE_DOT, PRECISION, SPLIT,
                                                BLOCK_N, BLOCK_K, BLOCK_D)
    tl.store(gates_ptr + rows[:, None] * K + ks[None, :], g, mask=nmask[:, None] & kmask[None, :])
    out_rows = out_ptr + rows[:, None] * D
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        u = _steered_chunk(h_rows, th_ptr, c, c_hi, c_lo, ds, dmask, nmask, ks, kmask, D, USE_DOT, PRECISION, SPLIT)
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
    cfg = launch_config(h, theta, norm_preserve)
    _forward_kernel[(triton.cdiv(n, cfg["BLOCK_N"]),)](
        h, h.stride(0), out, theta, gate_w if gate_w is not None else theta,
        gate_b if gate_b is not None else strength, strength, strength.stride(0) if strength.dim() == 2 else 0,
        cfg.pop("gram"), gates, norms, n, d, k, HAS_W=gate_w is not None, HAS_B=gate_b is not None,
        NORM=bool(norm_preserve), **cfg,
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
