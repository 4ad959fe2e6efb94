//! Direct convolution of one image for unpadded, stride-1 convolutions, vectorised over
//! output columns (EnvNet's 2-D layers).
//!
//! The forward kernel computes a tile of output row `oy`: a block of up to 8 output
//! channels times up to 3 vectors of consecutive output columns (4 x 2 with AVX2), held in
//! registers for the whole reduction over input channels and kernel taps. Each tap loads
//! the tile's input vectors once (`x[ci][oy + ky][ox + kx ..]`, unaligned) and multiplies
//! them by one broadcast weight per channel, so a tap costs `channels + vectors` loads
//! for `channels * vectors` FMAs. The weights are packed once per call
//! ([`Packed`]) so that the channels of a tap are adjacent in memory.
//!
//! The weight gradient sums `dy[co][oy][ox] * x[ci][oy + ky][ox + kx]` over the output
//! positions of the image in vectors of columns, for a block of output channels times a
//! block of kernel columns `kx` at once, and reduces the lanes at the end of the tile.
//!
//! The input gradient is the forward convolution of the output gradient, zero-padded by
//! `kh - 1` rows and `kw - 1` columns on each side, with the flipped and transposed
//! kernel ([`Packed::flipped`]). The padding columns are materialised in a scratch
//! buffer; the padding rows are not: each output row skips the taps that would read
//! them.
//!
//! Row lengths that are not a multiple of the vector width end in a partial vector,
//! read and written with masked loads and stores, so no value outside the image is
//! touched. Kernels exist for AVX-512F + VL (16 lanes) and AVX2 + FMA (8 lanes), picked at
//! run time; elsewhere the entry points return `false` and callers use another path.

use super::conv::ConvGeom;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output channels per block of [`Packed`] weights.
const BLOCK: usize = 8;

/// The instruction sets the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
}

/// The best instruction set of this CPU that the kernels support.
fn detect() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Some(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Isa::Avx2);
        }
    }
    None
}

/// Whether this CPU runs the direct kernels (AVX-512F, or AVX2 and FMA).
pub fn available() -> bool {
    detect().is_some()
}

/// Convolution weights packed for the forward kernel: blocks of up to [`BLOCK`] output
/// channels, block `b` (channels `co0..co0 + cb`) stored from `co0 * c_in * kh * kw` as
/// `[c_in, kh, kw, cb]`.
#[derive(Clone, Debug)]
pub struct Packed {
    data: Vec<f32>,
    c_out: usize,
    c_in: usize,
    kh: usize,
    kw: usize,
}

impl Packed {
    fn from_fn(
        [c_out, c_in, kh, kw]: [usize; 4],
        f: impl Fn(usize, usize, usize, usize) -> f32,
    ) -> Self {
        let k = c_in * kh * kw;
        let mut data = vec![0.0f32; c_out * k];
        for co0 in (0..c_out).step_by(BLOCK) {
            let cb = BLOCK.min(c_out - co0);
            let block = &mut data[co0 * k..(co0 + cb) * k];
            for ci in 0..c_in {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let tap = ((ci * kh + ky) * kw + kx) * cb;
                        for j in 0..cb {
                            block[tap + j] = f(co0 + j, ci, ky, kx);
                        }
                    }
                }
            }
        }
        Self {
            data,
            c_out,
            c_in,
            kh,
            kw,
        }
    }

    /// The weights `w` (`[c_out, c_in, kh, kw]`) of `g`, for [`forward`].
    pub fn weights(g: &ConvGeom, w: &[f32]) -> Self {
        let (c_in, kh, kw) = (g.c_in, g.kh, g.kw);
        assert_eq!(w.len(), g.c_out * g.k(), "weights of {g:?}");
        Self::from_fn([g.c_out, c_in, kh, kw], |co, ci, ky, kx| {
            w[((co * c_in + ci) * kh + ky) * kw + kx]
        })
    }

    /// The kernel of `g`'s input gradient, for [`input_grad`]: a convolution from
    /// `c_out` to `c_in` channels with `w'[ci][co][ky][kx] = w[co][ci][kh-1-ky][kw-1-kx]`.
    pub fn flipped(g: &ConvGeom, w: &[f32]) -> Self {
        let (c_in, kh, kw) = (g.c_in, g.kh, g.kw);
        assert_eq!(w.len(), g.c_out * g.k(), "weights of {g:?}");
        Self::from_fn([c_in, g.c_out, kh, kw], |ci, co, ky, kx| {
            w[((co * c_in + ci) * kh + kh - 1 - ky) * kw + kw - 1 - kx]
        })
    }
}

/// One image's convolution as the forward kernel sees it: `c_in` planes of `h` x `w`
/// inputs with `pad` virtual zero rows above and below, `c_out` planes of `oh` x `ow`
/// outputs.
#[derive(Clone, Copy, Debug)]
struct Plan {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Plan {
    /// The plan of `g` (which is unpadded).
    fn of(g: &ConvGeom) -> Self {
        Self {
            c_in: g.c_in,
            h: g.h,
            w: g.w,
            c_out: g.c_out,
            kh: g.kh,
            kw: g.kw,
            pad: 0,
            oh: g.oh,
            ow: g.ow,
        }
    }

    /// Checks that the plan is consistent and that the slices hold its values, which
    /// is what keeps every access of the kernels in bounds.
    fn check(&self, x: &[f32], wts: &Packed, y: &[f32]) {
        assert!(self.kh > 0 && self.kw > 0 && self.c_in > 0 && self.c_out > 0);
        assert!(self.h > 0 && self.w >= self.kw && self.h + 2 * self.pad >= self.kh);
        assert_eq!(self.oh, self.h + 2 * self.pad - self.kh + 1);
        assert_eq!(self.ow, self.w - self.kw + 1);
        assert!(self.pad < self.kh, "padding rows beyond the kernel");
        assert_eq!(
            [wts.c_out, wts.c_in, wts.kh, wts.kw],
            [self.c_out, self.c_in, self.kh, self.kw],
            "packed weights of another convolution"
        );
        assert_eq!(wts.data.len(), self.c_out * self.c_in * self.kh * self.kw);
        assert!(x.len() >= self.c_in * self.h * self.w, "input too short");
        assert!(
            y.len() >= self.c_out * self.oh * self.ow,
            "output too short"
        );
    }
}

/// `y[co][oy][ox] = (acc ? y : 0) + sum_{ci, ky, kx} w[co][ci][ky][kx] x[ci][oy+ky][ox+kx]`
/// for one image of the unpadded, stride-1 convolution `g` (`g.n` is ignored): `x` is
/// `[c_in, h, w]`, `y` `[c_out, oh, ow]`, `w` from [`Packed::weights`]. Returns `false`,
/// leaving `y` untouched, when the CPU lacks the instruction sets of the kernels.
pub fn forward(g: &ConvGeom, x: &[f32], w: &Packed, y: &mut [f32], acc: bool) -> bool {
    match detect() {
        Some(isa) => {
            forward_with(isa, g, x, w, y, acc);
            true
        }
        None => false,
    }
}

fn forward_with(isa: Isa, g: &ConvGeom, x: &[f32], w: &Packed, y: &mut [f32], acc: bool) {
    assert!(
        g.stride == [1, 1] && g.pad == [0, 0],
        "direct kernels: {g:?}"
    );
    run_forward(isa, &Plan::of(g), x, w, y, acc);
}

/// The input gradient `dx` (`[c_in, h, w]`) of one image of `g` from its output
/// gradient `dy` (`[c_out, oh, ow]`); `w` comes from [`Packed::flipped`], `scratch` is
/// reused between calls. Returns `false`, leaving `dx` untouched, when the CPU lacks
/// the instruction sets of the kernels.
pub fn input_grad(
    g: &ConvGeom,
    dy: &[f32],
    w: &Packed,
    scratch: &mut Vec<f32>,
    dx: &mut [f32],
) -> bool {
    match detect() {
        Some(isa) => {
            input_grad_with(isa, g, dy, w, scratch, dx);
            true
        }
        None => false,
    }
}

fn input_grad_with(
    isa: Isa,
    g: &ConvGeom,
    dy: &[f32],
    w: &Packed,
    scratch: &mut Vec<f32>,
    dx: &mut [f32],
) {
    assert!(
        g.stride == [1, 1] && g.pad == [0, 0],
        "direct kernels: {g:?}"
    );
    assert!(dy.len() >= g.c_out * g.p(), "output gradient too short");
    // dy with kw - 1 zero columns on each side of every row
    let wide = g.ow + 2 * (g.kw - 1);
    scratch.resize(g.c_out * g.oh * wide, 0.0);
    for (src, dst) in dy.chunks_exact(g.ow).zip(scratch.chunks_exact_mut(wide)) {
        dst[..g.kw - 1].fill(0.0);
        dst[g.kw - 1..g.kw - 1 + g.ow].copy_from_slice(src);
        dst[g.kw - 1 + g.ow..].fill(0.0);
    }
    let plan = Plan {
        c_in: g.c_out,
        h: g.oh,
        w: wide,
        c_out: g.c_in,
        kh: g.kh,
        kw: g.kw,
        pad: g.kh - 1,
        oh: g.h,
        ow: g.w,
    };
    run_forward(isa, &plan, scratch, w, dx, false);
}

/// `dw[co][ci][ky][kx] += sum_{oy, ox} dy[co][oy][ox] x[ci][oy+ky][ox+kx]` for one image
/// of the unpadded, stride-1 convolution `g`: `x` is `[c_in, h, w]`, `dy`
/// `[c_out, oh, ow]`, `dw` `[c_out, c_in, kh, kw]`. Returns `false`, leaving `dw`
/// untouched, when the CPU lacks the instruction sets of the kernels.
pub fn weight_grad(g: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) -> bool {
    match detect() {
        Some(isa) => {
            weight_grad_with(isa, g, x, dy, dw);
            true
        }
        None => false,
    }
}

fn weight_grad_with(isa: Isa, g: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(
        g.stride == [1, 1] && g.pad == [0, 0],
        "direct kernels: {g:?}"
    );
    assert!(g.kh > 0 && g.kw > 0 && g.h >= g.kh && g.w >= g.kw);
    assert_eq!((g.oh, g.ow), (g.h - g.kh + 1, g.w - g.kw + 1));
    assert!(x.len() >= g.c_in * g.h * g.w, "input too short");
    assert!(dy.len() >= g.c_out * g.p(), "output gradient too short");
    assert!(dw.len() >= g.c_out * g.k(), "weight gradient too short");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was detected on this CPU (or checked by the tests), and the
        // asserts above are the bounds `weight_grad_image` relies on.
        Isa::Avx512 => unsafe { weight_grad_avx512(g, x, dy, dw) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { weight_grad_avx2(g, x, dy, dw) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("no direct kernels on this architecture"),
    }
}

fn run_forward(isa: Isa, p: &Plan, x: &[f32], w: &Packed, y: &mut [f32], acc: bool) {
    p.check(x, w, y);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was detected on this CPU (or checked by the tests), and
        // `Plan::check` has checked the bounds `forward_image` relies on.
        Isa::Avx512 => unsafe { forward_avx512(p, x, &w.data, y, acc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { forward_avx2(p, x, &w.data, y, acc) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("no direct kernels on this architecture"),
    }
}

// ------------------------------------------------------------------ vector types

/// The vector operations the kernels are written with, implemented for each
/// instruction set.
///
/// # Safety
///
/// Every method may only be called on a CPU with the instruction sets of the
/// implementation, from a function compiled with them (so that it is inlined there);
/// the pointers must be valid for the lanes read or written: all `L` lanes, or those
/// selected by the mask.
trait Simd {
    /// Lanes per vector.
    const L: usize;
    /// Output channels per forward tile (divides [`BLOCK`]).
    const CO: usize;
    /// Vectors of output columns per forward tile.
    const NV: usize;
    /// Output channels per weight-gradient tile.
    const WG_CO: usize;
    /// Kernel columns per weight-gradient tile.
    const WG_KX: usize;
    type V: Copy;
    type M: Copy;
    /// The first `n` lanes (all of them when `n >= L`).
    unsafe fn mask(n: usize) -> Self::M;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    /// The lanes of `m` from `p`, zero elsewhere; the others are not read.
    unsafe fn load_m(p: *const f32, m: Self::M) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Writes the lanes of `m` only.
    unsafe fn store_m(p: *mut f32, v: Self::V, m: Self::M);
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `a * b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The sum of the lanes.
    unsafe fn sum(v: Self::V) -> f32;
}

#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const L: usize = 16;
    const CO: usize = 8;
    const NV: usize = 3;
    // 16 accumulators: LLVM reduces their lanes with VEX-encoded instructions, which
    // only reach the first 16 registers; larger tiles spill an accumulator per step
    const WG_CO: usize = 4;
    const WG_KX: usize = 4;
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_m(p: *const f32, m: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_m(p: *mut f32, v: __m512, m: __mmask16) {
        _mm512_mask_storeu_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const L: usize = 8;
    // 16 registers: 4 x 2 accumulators, 2 input vectors, a weight and the mask
    const CO: usize = 4;
    const NV: usize = 2;
    const WG_CO: usize = 4;
    const WG_KX: usize = 2;
    type V = __m256;
    type M = __m256i;

    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes)
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_m(p: *const f32, m: __m256i) -> __m256 {
        _mm256_maskload_ps(p, m)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_m(p: *mut f32, v: __m256, m: __m256i) {
        _mm256_maskstore_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        _mm256_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s)))
    }
}

// ------------------------------------------------------------------ forward kernel

/// Strides of a forward tile's reduction.
#[derive(Clone, Copy)]
struct Taps {
    /// Input channels.
    c_in: usize,
    /// Kernel rows the tile's output row reads (the others fall into the padding).
    rows: usize,
    /// Kernel columns.
    kw: usize,
    /// Input values per channel plane and per row.
    x_plane: usize,
    x_row: usize,
    /// Packed weights per input channel, per kernel row and per tap.
    w_ci: usize,
    w_row: usize,
    w_tap: usize,
    /// Output values per channel plane.
    y_plane: usize,
}

/// One tile: `CO` output channels times `NV` vectors of one output row, the last vector
/// restricted to the lanes of `m`.
///
/// # Safety
///
/// The CPU has `S`'s instruction sets. For `ci < t.c_in`, `r < t.rows`, `kx < t.kw`,
/// `j < CO` and the lanes `l` used (`v * S::L + l`, every lane of the first `NV - 1`
/// vectors and those of `m` in the last): `x + ci * x_plane + r * x_row + kx +
/// v * S::L + l` and `y + j * y_plane + v * S::L + l` are in bounds, and so is
/// `w + ci * w_ci + r * w_row + kx * w_tap + j`.
#[inline(always)]
unsafe fn forward_tile<S: Simd, const CO: usize, const NV: usize>(
    t: &Taps,
    x: *const f32,
    w: *const f32,
    y: *mut f32,
    m: S::M,
    acc: bool,
) {
    let mut a = [[S::zero(); NV]; CO];
    if acc {
        for (j, row) in a.iter_mut().enumerate() {
            for (v, av) in row.iter_mut().enumerate() {
                let p = y.add(j * t.y_plane + v * S::L);
                *av = if v + 1 == NV {
                    S::load_m(p, m)
                } else {
                    S::load(p)
                };
            }
        }
    }
    for ci in 0..t.c_in {
        for r in 0..t.rows {
            let xr = x.add(ci * t.x_plane + r * t.x_row);
            let mut wp = w.add(ci * t.w_ci + r * t.w_row);
            for kx in 0..t.kw {
                let mut xv = [S::zero(); NV];
                for (v, xvv) in xv.iter_mut().enumerate() {
                    let p = xr.add(kx + v * S::L);
                    *xvv = if v + 1 == NV {
                        S::load_m(p, m)
                    } else {
                        S::load(p)
                    };
                }
                for (j, row) in a.iter_mut().enumerate() {
                    let b = S::splat(wp.add(j));
                    for (av, xvv) in row.iter_mut().zip(&xv) {
                        *av = S::fma(*xvv, b, *av);
                    }
                }
                wp = wp.add(t.w_tap);
            }
        }
    }
    for (j, row) in a.iter().enumerate() {
        for (v, av) in row.iter().enumerate() {
            let p = y.add(j * t.y_plane + v * S::L);
            if v + 1 == NV {
                S::store_m(p, *av, m)
            } else {
                S::store(p, *av)
            }
        }
    }
}

/// [`forward_tile`] with `nv` vectors (1 to 3).
///
/// # Safety
///
/// As [`forward_tile`] with `NV = nv`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_tile_nv<S: Simd, const CO: usize>(
    nv: usize,
    t: &Taps,
    x: *const f32,
    w: *const f32,
    y: *mut f32,
    m: S::M,
    acc: bool,
) {
    match nv {
        1 => forward_tile::<S, CO, 1>(t, x, w, y, m, acc),
        2 => forward_tile::<S, CO, 2>(t, x, w, y, m, acc),
        _ => forward_tile::<S, CO, 3>(t, x, w, y, m, acc),
    }
}

/// [`forward_tile`] with `co` channels (1 to 8) and `nv` vectors (1 to 3).
///
/// # Safety
///
/// As [`forward_tile`] with `CO = co` and `NV = nv`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_tile_any<S: Simd>(
    co: usize,
    nv: usize,
    t: &Taps,
    x: *const f32,
    w: *const f32,
    y: *mut f32,
    m: S::M,
    acc: bool,
) {
    match co {
        1 => forward_tile_nv::<S, 1>(nv, t, x, w, y, m, acc),
        2 => forward_tile_nv::<S, 2>(nv, t, x, w, y, m, acc),
        3 => forward_tile_nv::<S, 3>(nv, t, x, w, y, m, acc),
        4 => forward_tile_nv::<S, 4>(nv, t, x, w, y, m, acc),
        5 => forward_tile_nv::<S, 5>(nv, t, x, w, y, m, acc),
        6 => forward_tile_nv::<S, 6>(nv, t, x, w, y, m, acc),
        7 => forward_tile_nv::<S, 7>(nv, t, x, w, y, m, acc),
        _ => forward_tile_nv::<S, 8>(nv, t, x, w, y, m, acc),
    }
}

/// The forward pass of one image, tile by tile.
///
/// # Safety
///
/// The CPU has `S`'s instruction sets, and `p.check(x, w, y)` has passed (for `w` the
/// packed data of the weights checked).
#[inline(always)]
unsafe fn forward_image<S: Simd>(p: &Plan, x: &[f32], w: &[f32], y: &mut [f32], acc: bool) {
    let k = p.c_in * p.kh * p.kw;
    let nvec = p.ow.div_ceil(S::L);
    let full = S::mask(S::L);
    let tail = S::mask(p.ow - (nvec - 1) * S::L);
    let ntiles = nvec.div_ceil(S::NV);
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    for co0 in (0..p.c_out).step_by(BLOCK) {
        let cb = BLOCK.min(p.c_out - co0);
        let wb = w.as_ptr().add(co0 * k);
        for oy in 0..p.oh {
            // kernel rows whose input row oy + ky - pad lies inside the image
            let ky0 = p.pad.saturating_sub(oy);
            let ky1 = p.kh.min(p.h + p.pad - oy);
            let taps = Taps {
                c_in: p.c_in,
                rows: ky1 - ky0,
                kw: p.kw,
                x_plane: p.h * p.w,
                x_row: p.w,
                w_ci: p.kh * p.kw * cb,
                w_row: p.kw * cb,
                w_tap: cb,
                y_plane: p.oh * p.ow,
            };
            let x_row = xp.add((oy + ky0 - p.pad) * p.w);
            let w_row = wb.add(ky0 * p.kw * cb);
            let mut v0 = 0;
            for tile in 0..ntiles {
                // the row's vectors spread evenly over the tiles
                let nv = nvec / ntiles + usize::from(tile < nvec % ntiles);
                let m = if v0 + nv == nvec { tail } else { full };
                let ox0 = v0 * S::L;
                let mut j0 = 0;
                while j0 < cb {
                    let co = S::CO.min(cb - j0);
                    forward_tile_any::<S>(
                        co,
                        nv,
                        &taps,
                        x_row.add(ox0),
                        w_row.add(j0),
                        yp.add((co0 + j0) * p.oh * p.ow + oy * p.ow + ox0),
                        m,
                        acc,
                    );
                    j0 += co;
                }
                v0 += nv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
/// # Safety
///
/// As [`forward_image`] for [`Avx512`].
unsafe fn forward_avx512(p: &Plan, x: &[f32], w: &[f32], y: &mut [f32], acc: bool) {
    forward_image::<Avx512>(p, x, w, y, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// # Safety
///
/// As [`forward_image`] for [`Avx2`].
unsafe fn forward_avx2(p: &Plan, x: &[f32], w: &[f32], y: &mut [f32], acc: bool) {
    forward_image::<Avx2>(p, x, w, y, acc)
}

// ------------------------------------------------------------------ weight gradient

/// Strides of a weight-gradient tile.
#[derive(Clone, Copy)]
struct Sums {
    /// Output rows and columns.
    oh: usize,
    ow: usize,
    /// Output gradient values per channel plane and per row.
    dy_plane: usize,
    dy_row: usize,
    /// Input values per row.
    x_row: usize,
    /// Weight-gradient values per output channel.
    dw_co: usize,
}

/// One tile: the gradients of the weights of `CO` output channels from `dy` on, for
/// one input channel and kernel row and `KX` kernel columns, with the input at `x`
/// (channel `ci`, row `ky`, column `kx0`), added to `dw` (at `[co0][ci][ky][kx0]`).
///
/// # Safety
///
/// The CPU has `S`'s instruction sets. For `j < CO`, `oy < s.oh`, `kx < KX` and
/// output columns `ox < s.ow`: `dy + j * dy_plane + oy * dy_row + ox` and
/// `x + oy * x_row + ox + kx` are in bounds, and so is `dw + j * dw_co + kx`.
#[inline(always)]
unsafe fn weight_grad_tile<S: Simd, const CO: usize, const KX: usize>(
    s: &Sums,
    dy: *const f32,
    x: *const f32,
    dw: *mut f32,
) {
    let mut a = [[S::zero(); KX]; CO];
    let nvec = s.ow.div_ceil(S::L);
    let (full, tail) = (S::mask(S::L), S::mask(s.ow - (nvec - 1) * S::L));
    for oy in 0..s.oh {
        let (d, xr) = (dy.add(oy * s.dy_row), x.add(oy * s.x_row));
        // one loop for full and partial vectors (masked loads cost as much as plain
        // ones with AVX-512) keeps the accumulators in the same registers
        for v in 0..nvec {
            let m = if v + 1 == nvec { tail } else { full };
            let o = v * S::L;
            let mut dv = [S::zero(); CO];
            for (j, dvj) in dv.iter_mut().enumerate() {
                *dvj = S::load_m(d.add(j * s.dy_plane + o), m);
            }
            for kx in 0..KX {
                let xv = S::load_m(xr.add(o + kx), m);
                for (row, dvj) in a.iter_mut().zip(&dv) {
                    row[kx] = S::fma(*dvj, xv, row[kx]);
                }
            }
        }
    }
    for (j, row) in a.iter().enumerate() {
        for (kx, av) in row.iter().enumerate() {
            *dw.add(j * s.dw_co + kx) += S::sum(*av);
        }
    }
}

/// [`weight_grad_tile`] with `kx` kernel columns (1 to 4).
///
/// # Safety
///
/// As [`weight_grad_tile`] with `KX = kx`.
#[inline(always)]
unsafe fn weight_grad_tile_kx<S: Simd, const CO: usize>(
    kx: usize,
    s: &Sums,
    dy: *const f32,
    x: *const f32,
    dw: *mut f32,
) {
    match kx {
        1 => weight_grad_tile::<S, CO, 1>(s, dy, x, dw),
        2 => weight_grad_tile::<S, CO, 2>(s, dy, x, dw),
        3 => weight_grad_tile::<S, CO, 3>(s, dy, x, dw),
        _ => weight_grad_tile::<S, CO, 4>(s, dy, x, dw),
    }
}

/// The weight gradient of one image, tile by tile.
///
/// # Safety
///
/// The CPU has `S`'s instruction sets, and the asserts of [`weight_grad_with`] have
/// passed.
#[inline(always)]
unsafe fn weight_grad_image<S: Simd>(g: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let s = Sums {
        oh: g.oh,
        ow: g.ow,
        dy_plane: g.p(),
        dy_row: g.ow,
        x_row: g.w,
        dw_co: g.k(),
    };
    let (xp, dyp, dwp) = (x.as_ptr(), dy.as_ptr(), dw.as_mut_ptr());
    for co0 in (0..g.c_out).step_by(S::WG_CO) {
        let co = S::WG_CO.min(g.c_out - co0);
        for ci in 0..g.c_in {
            for ky in 0..g.kh {
                for kx0 in (0..g.kw).step_by(S::WG_KX) {
                    let kx = S::WG_KX.min(g.kw - kx0);
                    let d = dyp.add(co0 * g.p());
                    let xs = xp.add((ci * g.h + ky) * g.w + kx0);
                    let o = dwp.add(co0 * g.k() + (ci * g.kh + ky) * g.kw + kx0);
                    match co {
                        1 => weight_grad_tile_kx::<S, 1>(kx, &s, d, xs, o),
                        2 => weight_grad_tile_kx::<S, 2>(kx, &s, d, xs, o),
                        3 => weight_grad_tile_kx::<S, 3>(kx, &s, d, xs, o),
                        4 => weight_grad_tile_kx::<S, 4>(kx, &s, d, xs, o),
                        5 => weight_grad_tile_kx::<S, 5>(kx, &s, d, xs, o),
                        6 => weight_grad_tile_kx::<S, 6>(kx, &s, d, xs, o),
                        7 => weight_grad_tile_kx::<S, 7>(kx, &s, d, xs, o),
                        _ => weight_grad_tile_kx::<S, 8>(kx, &s, d, xs, o),
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
/// # Safety
///
/// As [`weight_grad_image`] for [`Avx512`].
unsafe fn weight_grad_avx512(g: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    weight_grad_image::<Avx512>(g, x, dy, dw)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// # Safety
///
/// As [`weight_grad_image`] for [`Avx2`].
unsafe fn weight_grad_avx2(g: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    weight_grad_image::<Avx2>(g, x, dy, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction sets of this CPU that the kernels support.
    fn isas() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                v.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Isa::Avx2);
            }
        }
        if v.is_empty() {
            eprintln!("no AVX2 or AVX-512: the direct kernels are not tested");
        }
        v
    }

    fn seq(len: usize, a: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32) * a).sin()).collect()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (u, v)) in got.iter().zip(want).enumerate() {
            assert!(
                (u - v).abs() <= 1e-4 * (1.0 + v.abs()),
                "{what}[{i}]: {u} vs {v}"
            );
        }
    }

    /// The definitions, in f64: (y, dx, dw) of one image.
    fn naive(g: &ConvGeom, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f32>; 3] {
        let mut y = vec![0.0f64; g.c_out * g.p()];
        let mut dx = vec![0.0f64; g.c_in * g.h * g.w];
        let mut dw = vec![0.0f64; g.c_out * g.k()];
        for co in 0..g.c_out {
            for ci in 0..g.c_in {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let wi = ((co * g.c_in + ci) * g.kh + ky) * g.kw + kx;
                        for oy in 0..g.oh {
                            for ox in 0..g.ow {
                                let xi = (ci * g.h + oy + ky) * g.w + ox + kx;
                                let yi = (co * g.oh + oy) * g.ow + ox;
                                y[yi] += w[wi] as f64 * x[xi] as f64;
                                dx[xi] += w[wi] as f64 * dy[yi] as f64;
                                dw[wi] += dy[yi] as f64 * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
        [y, dx, dw].map(|v| v.into_iter().map(|a| a as f32).collect())
    }

    #[test]
    fn direct_kernels_match_the_definition() {
        // (c_in, h, w, c_out, kh, kw)
        let shapes = [
            (1, 7, 6, 3, 3, 3),
            (16, 25, 119, 16, 8, 8), // EnvNet's conv4
            (1, 32, 126, 16, 8, 8),  // conv3: one input channel
            (16, 6, 37, 32, 1, 4),   // conv5
            (32, 6, 15, 64, 1, 2),   // conv7
            (3, 5, 9, 5, 5, 9),      // kernel as large as the input
            (4, 3, 40, 3, 3, 1),     // one kernel column, width a multiple of 8
            (5, 9, 23, 11, 3, 2),    // channel counts off the blocking
            (2, 4, 56, 13, 2, 5),    // 52 columns: 3 vectors of 16 and a partial one
            (7, 3, 104, 9, 1, 8),    // 97 columns: 7 vectors of 16
            (2, 3, 1, 3, 1, 1),      // one column
            (6, 2, 33, 17, 2, 17),   // 17 columns, 17 channels
        ];
        for (c_in, h, w, c_out, kh, kw) in shapes {
            let g = ConvGeom::new([1, c_in, h, w], [c_out, c_in, kh, kw], [1, 1], [0, 0]).unwrap();
            let x = seq(c_in * h * w, 0.37);
            let wt = seq(c_out * g.k(), 0.71);
            let dy = seq(c_out * g.p(), 0.53);
            let [y0, dx0, dw0] = naive(&g, &x, &wt, &dy);
            let packed = Packed::weights(&g, &wt);
            let flipped = Packed::flipped(&g, &wt);
            for isa in isas() {
                let what = |s: &str| format!("{isa:?} {g:?} {s}");
                let mut y = vec![f32::NAN; g.c_out * g.p()];
                forward_with(isa, &g, &x, &packed, &mut y, false);
                close(&y, &y0, &what("y"));
                // accumulating onto a bias-like prefill
                let mut y = vec![0.5; g.c_out * g.p()];
                forward_with(isa, &g, &x, &packed, &mut y, true);
                let shifted: Vec<f32> = y0.iter().map(|v| v + 0.5).collect();
                close(&y, &shifted, &what("y + 0.5"));
                let mut dx = vec![f32::NAN; c_in * h * w];
                let mut scratch = vec![f32::NAN; 3];
                input_grad_with(isa, &g, &dy, &flipped, &mut scratch, &mut dx);
                close(&dx, &dx0, &what("dx"));
                // the scratch buffer is reused as it is left
                input_grad_with(isa, &g, &dy, &flipped, &mut scratch, &mut dx);
                close(&dx, &dx0, &what("dx again"));
                let mut dw = vec![1.0; g.c_out * g.k()];
                weight_grad_with(isa, &g, &x, &dy, &mut dw);
                let shifted: Vec<f32> = dw0.iter().map(|v| v + 1.0).collect();
                close(&dw, &shifted, &what("1 + dw"));
            }
        }
    }

    #[test]
    fn kernels_leave_the_values_around_the_output_alone() {
        let g = ConvGeom::new([1, 3, 6, 21], [5, 3, 2, 3], [1, 1], [0, 0]).unwrap();
        let x = seq(g.c_in * g.h * g.w, 0.3);
        let wt = seq(g.c_out * g.k(), 0.9);
        let dy = seq(g.c_out * g.p(), 0.4);
        let packed = Packed::weights(&g, &wt);
        for isa in isas() {
            let mut y = vec![7.0; g.c_out * g.p() + 40];
            forward_with(isa, &g, &x, &packed, &mut y[..g.c_out * g.p()], false);
            assert!(y[g.c_out * g.p()..].iter().all(|v| *v == 7.0), "{isa:?} y");
            let mut dx = vec![7.0; g.c_in * g.h * g.w + 40];
            let flipped = Packed::flipped(&g, &wt);
            let n = g.c_in * g.h * g.w;
            input_grad_with(isa, &g, &dy, &flipped, &mut Vec::new(), &mut dx[..n]);
            assert!(dx[n..].iter().all(|v| *v == 7.0), "{isa:?} dx");
            let mut dw = vec![7.0; g.c_out * g.k() + 40];
            let n = g.c_out * g.k();
            weight_grad_with(isa, &g, &x, &dy, &mut dw[..n]);
            assert!(dw[n..].iter().all(|v| *v == 7.0), "{isa:?} dw");
        }
    }

    #[test]
    #[should_panic(expected = "packed weights of another convolution")]
    fn packed_weights_must_match_the_geometry() {
        let g = ConvGeom::new([1, 2, 5, 5], [3, 2, 2, 2], [1, 1], [0, 0]).unwrap();
        let other = ConvGeom::new([1, 2, 5, 5], [3, 2, 3, 2], [1, 1], [0, 0]).unwrap();
        let packed = Packed::weights(&other, &seq(3 * other.k(), 0.1));
        let mut y = vec![0.0; g.c_out * g.p()];
        // the check runs before the instruction set matters
        run_forward(
            Isa::Avx2,
            &Plan::of(&g),
            &seq(50, 0.2),
            &packed,
            &mut y,
            false,
        );
    }
}
