//! 2-D convolution on the CPU, the batch spread over the rayon pool.
//!
//! Unpadded convolutions with stride 1 run as direct convolutions vectorised over output
//! columns ([`super::direct`]) on CPUs with AVX2 or AVX-512. 1-D convolutions with any
//! stride (EnvNet's first two), and unpadded stride-1 ones on other CPUs, run as
//! implicit GEMMs over a channels-last copy of each image, without a column matrix
//! (below). The others use im2col per image and one GEMM per band of
//! output rows; forward, input gradient and weight gradient share the same im2col
//! layout, so the backward passes never materialise the whole batch's column matrix
//! (for the digits net's second convolution that would be 26 MB).
//!
//! Layouts are contiguous NCHW for activations and `[c_out, c_in, kh, kw]` for weights,
//! as in burn. Groups and dilation are not supported (callers fall back to burn).

use super::direct;
use super::simd::{self, multiversion};
use gemm::Parallelism;
use rayon::prelude::*;

/// Shapes of one convolution: input `[n, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`,
/// symmetric zero padding, equal-or-not strides, no dilation, no groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding on each side (rows, columns).
    pub pad: [usize; 2],
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl ConvGeom {
    /// The geometry of `x` convolved with `weight`; `None` when the kernel does not fit
    /// or a dimension is zero.
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> Option<Self> {
        let [n, c_in, h, w] = x;
        let [c_out, wc, kh, kw] = weight;
        if wc != c_in || stride[0] == 0 || stride[1] == 0 || kh == 0 || kw == 0 {
            return None;
        }
        let (hp, wp) = (h + 2 * pad[0], w + 2 * pad[1]);
        if hp < kh || wp < kw || n == 0 || c_in == 0 || c_out == 0 {
            return None;
        }
        Some(Self {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            stride,
            pad,
            oh: (hp - kh) / stride[0] + 1,
            ow: (wp - kw) / stride[1] + 1,
        })
    }

    /// Rows of the column matrix: `c_in * kh * kw`.
    pub fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output positions per image: `oh * ow`.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }

    fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    fn out_len(&self) -> usize {
        self.c_out * self.p()
    }

    /// Output shape `[n, c_out, oh, ow]`.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.c_out, self.oh, self.ow]
    }

    /// Multiply-adds times two of one forward pass.
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.out_len() * self.k()) as f64
    }
}

multiversion! {
/// Fills `cols` (`[k, p]`, row-major) with the patches of one image `x` (`[c_in, h, w]`).
pub fn im2col(g: &ConvGeom, x: &[f32], cols: &mut [f32]) {
    im2col_band(g, x, 0..g.oh, cols)
}
}

multiversion! {
/// [`im2col`] for the output rows `rows` only: `cols` is `[k, rows.len() * ow]`.
pub fn im2col_band(g: &ConvGeom, x: &[f32], rows: std::ops::Range<usize>, cols: &mut [f32]) {
    let (p, ow) = (rows.len() * g.ow, g.ow);
    let oy0 = rows.start;
    let mut row = 0;
    for ci in 0..g.c_in {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let dst = &mut cols[row * p..(row + 1) * p];
                for oy in rows.clone() {
                    let out = &mut dst[(oy - oy0) * ow..(oy - oy0 + 1) * ow];
                    let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                    if iy < 0 || iy as usize >= g.h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    if g.stride[1] == 1 && g.pad[1] == 0 {
                        copy_run(out, &src[kx..kx + ow]);
                    } else if g.pad[1] == 0 {
                        // strided, unpadded (EnvNet's 1-D convolutions): every index is
                        // inside the row, (ow - 1) * stride + kx < w
                        for (o, v) in out.iter_mut().zip(src[kx..].iter().step_by(g.stride[1])) {
                            *o = *v;
                        }
                    } else {
                        for (ox, o) in out.iter_mut().enumerate() {
                            let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                            *o = if ix >= 0 && (ix as usize) < g.w {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
                row += 1;
            }
        }
    }
}
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (often 8 to 24 values): in
/// blocks of 8 that compile to vector moves instead of a `memcpy` call per run.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let src = &src[..dst.len()];
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        let block: [f32; 8] = b.try_into().expect("chunk of 8");
        a.copy_from_slice(&block);
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = *b;
    }
}

multiversion! {
/// Adds the column matrix `cols` (`[k, p]`) back into one image gradient `dx`
/// (`[c_in, h, w]`): the adjoint of [`im2col`].
pub fn col2im_add(g: &ConvGeom, cols: &[f32], dx: &mut [f32]) {
    col2im_add_band(g, cols, 0..g.oh, dx)
}
}

multiversion! {
/// [`col2im_add`] for the output rows `rows` only: the adjoint of [`im2col_band`].
pub fn col2im_add_band(
    g: &ConvGeom,
    cols: &[f32],
    rows: std::ops::Range<usize>,
    dx: &mut [f32],
) {
    let (p, ow) = (rows.len() * g.ow, g.ow);
    let oy0 = rows.start;
    let mut row = 0;
    for ci in 0..g.c_in {
        let plane = &mut dx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let src = &cols[row * p..(row + 1) * p];
                for oy in rows.clone() {
                    let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let s = &src[(oy - oy0) * ow..(oy - oy0 + 1) * ow];
                    if g.stride[1] == 1 && g.pad[1] == 0 {
                        simd::add_assign(&mut dst[kx..kx + ow], s);
                    } else if g.pad[1] == 0 {
                        for (d, v) in dst[kx..].iter_mut().step_by(g.stride[1]).zip(s) {
                            *d += v;
                        }
                    } else {
                        for (ox, v) in s.iter().enumerate() {
                            let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                            if ix >= 0 && (ix as usize) < g.w {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]` with explicit row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    matmul_into(
        (m, n, k),
        (dst, n),
        accumulate,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
    )
}

/// [`matmul`] into a destination with row stride `dst_rs` (a block of columns of a
/// wider matrix).
#[allow(clippy::too_many_arguments)]
fn matmul_into(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (&mut [f32], usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(
        m == 0 || n == 0 || dst.len() >= (m - 1) * dst_rs + n,
        "matmul: destination too small"
    );
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every index gemm touches inside the three slices,
    // dst is a unique borrow and does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Column-matrix elements per band: bands of output rows are sized so that their
/// column matrix stays in a core's cache (the digits net's layers fit whole; EnvNet's
/// 8x8 convolution over a 25 x 119 map would otherwise write 8 MB per image).
const BAND_ELEMS: usize = 1 << 17;

impl ConvGeom {
    /// Output rows per band.
    fn band_rows(&self) -> usize {
        (BAND_ELEMS / (self.k() * self.ow).max(1)).clamp(1, self.oh.max(1))
    }

    /// The bands of output rows.
    fn bands(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let r = self.band_rows();
        (0..self.oh)
            .step_by(r)
            .map(move |a| a..(a + r).min(self.oh))
    }
}

/// Forward pass: `y[b] = W * im2col(x[b]) + bias`. `x` is `[n, c_in, h, w]`, `weight`
/// `[c_out, k]`, `bias` `[c_out]`; returns `[n, c_out, oh, ow]`.
fn forward_im2col(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (k, p, c_out) = (g.k(), g.p(), g.c_out);
    let mut y = vec![0.0f32; g.n * g.out_len()];
    y.par_chunks_mut(g.out_len())
        .zip(x.par_chunks(g.in_len()))
        .for_each_init(
            || vec![0.0f32; k * g.band_rows() * g.ow],
            |cols, (yb, xb)| {
                if let Some(bias) = bias {
                    for (row, b) in yb.chunks_mut(p).zip(bias) {
                        row.fill(*b);
                    }
                }
                for band in g.bands() {
                    let pb = band.len() * g.ow;
                    im2col_band(g, xb, band.clone(), cols);
                    matmul_into(
                        (c_out, pb, k),
                        (&mut yb[band.start * g.ow..], p),
                        bias.is_some(),
                        weight,
                        (k, 1),
                        cols,
                        (pb, 1),
                    );
                }
            },
        );
    y
}

/// Gradient with respect to the input: `dx[b] = col2im(W^T * dy[b])`.
fn backward_input_im2col(g: &ConvGeom, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, c_out) = (g.k(), g.p(), g.c_out);
    let mut dx = vec![0.0f32; g.n * g.in_len()];
    dx.par_chunks_mut(g.in_len())
        .zip(dy.par_chunks(g.out_len()))
        .for_each_init(
            || vec![0.0f32; k * g.band_rows() * g.ow],
            |cols, (dxb, dyb)| {
                for band in g.bands() {
                    let pb = band.len() * g.ow;
                    // W^T: [k, c_out] read from W [c_out, k] with swapped strides
                    matmul(
                        (k, pb, c_out),
                        cols,
                        false,
                        weight,
                        (1, k),
                        &dyb[band.start * g.ow..],
                        (p, 1),
                    );
                    col2im_add_band(g, cols, band, dxb);
                }
            },
        );
    dx
}

/// Gradients of the weight (`[c_out, k]`) and bias (`[c_out]`):
/// `dW = sum_b dy[b] * im2col(x[b])^T`, `db = sum over b and positions of dy`.
fn backward_weight_im2col(g: &ConvGeom, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (k, p, c_out) = (g.k(), g.p(), g.c_out);
    let per = images_per_partial(g.n);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(g.in_len() * per)
        .zip(dy.par_chunks(g.out_len() * per))
        .map(|(xs, dys)| {
            let mut cols = vec![0.0f32; k * g.band_rows() * g.ow];
            let mut dw = vec![0.0f32; c_out * k];
            let mut db = vec![0.0f32; c_out];
            let mut first = true;
            for (xb, dyb) in xs.chunks(g.in_len()).zip(dys.chunks(g.out_len())) {
                for band in g.bands() {
                    let pb = band.len() * g.ow;
                    im2col_band(g, xb, band.clone(), &mut cols);
                    // cols^T: [pb, k] read from cols [k, pb] with swapped strides
                    matmul(
                        (c_out, k, pb),
                        &mut dw,
                        !first,
                        &dyb[band.start * g.ow..],
                        (p, 1),
                        &cols,
                        (1, pb),
                    );
                    first = false;
                }
                for (d, row) in db.iter_mut().zip(dyb.chunks(p)) {
                    *d += row.iter().sum::<f32>();
                }
            }
            (dw, db)
        })
        .collect();
    sum_partials(partials, c_out * k, c_out)
}

/// Partial weight gradients per batch: the batch's images are split into this many
/// runs, each summed on its own (in parallel), then the partial sums are added. The split
/// depends on the batch alone, never on the thread count, so every weight update, and
/// with it a whole training run, comes out the same however many threads run it. (This
/// phase then uses at most two threads; `scarce cv --jobs` is the way to use more cores
/// on networks this small.)
const PARTIALS: usize = 2;

fn images_per_partial(n: usize) -> usize {
    n.div_ceil(PARTIALS).max(1)
}

/// The sum of per-chunk (weight gradient, bias gradient) pairs; zeros when there are none.
fn sum_partials(
    partials: Vec<(Vec<f32>, Vec<f32>)>,
    w_len: usize,
    b_len: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut dw = vec![0.0f32; w_len];
    let mut db = vec![0.0f32; b_len];
    for (w, b) in partials {
        dw.iter_mut().zip(&w).for_each(|(a, v)| *a += v);
        db.iter_mut().zip(&b).for_each(|(a, v)| *a += v);
    }
    (dw, db)
}

// ------------------------------------------------------------ implicit GEMM path
//
// Unpadded convolutions with stride 1, and 1-D convolutions with any stride (EnvNet's
// layers), need no column matrix. With the input stored channels-last (`[h, w, c_in]`),
// the patch values of kernel row `ky` for output position `n` are the `kw * c_in`
// consecutive values from `((oy + ky) * w + ox * sx) * c_in`: a strided view of the
// input that GEMM reads directly, one GEMM per kernel row. For stride 1 the outputs are
// computed "wide", at `oy * w + ox` with `ox < w`, so that consecutive positions are
// `c_in` values apart; the `w - ow` extra columns of each row are dropped afterwards.
// The input gradient of a stride-1 convolution is itself such a convolution (of the
// zero-padded output gradient with the flipped, transposed kernel).

impl ConvGeom {
    /// Whether the implicit-GEMM path applies.
    fn implicit(&self) -> bool {
        self.pad == [0, 0] && (self.stride == [1, 1] || (self.h == 1 && self.kh == 1))
    }

    /// Output positions in the wide layout.
    fn wide(&self) -> usize {
        (self.oh - 1) * self.w + self.ow
    }

    /// Values of one kernel row: `kw * c_in`.
    fn kc(&self) -> usize {
        self.kw * self.c_in
    }

    /// The stride-1 convolution whose output is the input gradient of this one.
    fn transposed(&self) -> ConvGeom {
        ConvGeom {
            n: self.n,
            c_in: self.c_out,
            h: self.oh + 2 * (self.kh - 1),
            w: self.ow + 2 * (self.kw - 1),
            c_out: self.c_in,
            kh: self.kh,
            kw: self.kw,
            stride: [1, 1],
            pad: [0, 0],
            oh: self.h,
            ow: self.w,
        }
    }
}

/// `[c, h, w]` -> `[h, w, c]` (one image).
fn to_channels_last(c: usize, hw: usize, x: &[f32], out: &mut [f32]) {
    if c == 1 {
        out[..hw].copy_from_slice(&x[..hw]);
        return;
    }
    for (ci, plane) in x.chunks_exact(hw).enumerate().take(c) {
        for (p, v) in plane.iter().enumerate() {
            out[p * c + ci] = *v;
        }
    }
}

/// Weights `[c_out, c_in, kh, kw]` -> `[c_out, kh, kw, c_in]`.
fn weights_channels_last(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; w.len()];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    out[((co * g.kh + ky) * g.kw + kx) * g.c_in + ci] =
                        w[((co * g.c_in + ci) * g.kh + ky) * g.kw + kx];
                }
            }
        }
    }
    out
}

/// One image's wide output `yw` (`[c_out, wide]`) from its channels-last input `xt`
/// and channels-last weights `wt`; `yw` is overwritten, or accumulated into when
/// `accumulate` (e.g. pre-filled with the bias).
fn implicit_image(g: &ConvGeom, xt: &[f32], wt: &[f32], yw: &mut [f32], accumulate: bool) {
    let (kc, nw) = (g.kc(), g.wide());
    for ky in 0..g.kh {
        matmul_into(
            (g.c_out, nw, kc),
            (yw, nw),
            accumulate || ky > 0,
            &wt[ky * kc..],
            (g.kh * kc, 1),
            &xt[ky * g.w * g.c_in..],
            (1, g.stride[1] * g.c_in),
        );
    }
}

/// Copies the wide rows of `yw` (`[c, oh, w]`-ish, `wide` per channel) into compact
/// `[c, oh, ow]` `y`.
fn compact(g: &ConvGeom, c: usize, yw: &[f32], y: &mut [f32]) {
    let (nw, p) = (g.wide(), g.p());
    for ch in 0..c {
        for oy in 0..g.oh {
            y[ch * p + oy * g.ow..ch * p + (oy + 1) * g.ow]
                .copy_from_slice(&yw[ch * nw + oy * g.w..ch * nw + oy * g.w + g.ow]);
        }
    }
}

fn forward_implicit(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let wt = weights_channels_last(g, weight);
    let direct = g.wide() == g.p();
    let mut y = vec![0.0f32; g.n * g.out_len()];
    y.par_chunks_mut(g.out_len())
        .zip(x.par_chunks(g.in_len()))
        .for_each_init(
            || {
                let wide = if direct { 0 } else { g.c_out * g.wide() };
                (vec![0.0f32; g.in_len()], vec![0.0f32; wide])
            },
            |(xt, yw), (yb, xb)| {
                to_channels_last(g.c_in, g.h * g.w, xb, xt);
                let out: &mut [f32] = if direct { yb } else { yw };
                if let Some(bias) = bias {
                    for (row, b) in out.chunks_mut(g.wide()).zip(bias) {
                        row.fill(*b);
                    }
                }
                implicit_image(g, xt, &wt, out, bias.is_some());
                if !direct {
                    compact(g, g.c_out, yw, yb);
                }
            },
        );
    y
}

fn backward_input_implicit(g: &ConvGeom, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    debug_assert_eq!(g.stride, [1, 1]);
    let t = g.transposed();
    // flipped and transposed kernel, channels-last: [c_in, kh, kw, c_out]
    let mut wf = vec![0.0f32; weight.len()];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    wf[((ci * g.kh + (g.kh - 1 - ky)) * g.kw + (g.kw - 1 - kx)) * g.c_out + co] =
                        weight[((co * g.c_in + ci) * g.kh + ky) * g.kw + kx];
                }
            }
        }
    }
    let mut dx = vec![0.0f32; g.n * g.in_len()];
    dx.par_chunks_mut(g.in_len())
        .zip(dy.par_chunks(g.out_len()))
        .for_each_init(
            || (vec![0.0f32; t.in_len()], vec![0.0f32; t.c_out * t.wide()]),
            |(dyp, dxw), (dxb, dyb)| {
                // zero-padded, channels-last output gradient
                dyp.fill(0.0);
                for co in 0..g.c_out {
                    for oy in 0..g.oh {
                        let row = (oy + g.kh - 1) * t.w + g.kw - 1;
                        for ox in 0..g.ow {
                            dyp[(row + ox) * g.c_out + co] = dyb[(co * g.oh + oy) * g.ow + ox];
                        }
                    }
                }
                implicit_image(&t, dyp, &wf, dxw, false);
                compact(&t, g.c_in, dxw, dxb);
            },
        );
    dx
}

fn backward_weight_implicit(g: &ConvGeom, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (kc, nw, p, c_out) = (g.kc(), g.wide(), g.p(), g.c_out);
    let krow = g.kh * kc;
    let direct = nw == p;
    let per = images_per_partial(g.n);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(g.in_len() * per)
        .zip(dy.par_chunks(g.out_len() * per))
        .map(|(xs, dys)| {
            let mut xt = vec![0.0f32; g.in_len()];
            // wide output gradient, zero in the dropped columns
            let mut dyw = vec![0.0f32; if direct { 0 } else { c_out * nw }];
            let mut dwt = vec![0.0f32; c_out * krow];
            let mut db = vec![0.0f32; c_out];
            for (xb, dyb) in xs.chunks(g.in_len()).zip(dys.chunks(g.out_len())) {
                to_channels_last(g.c_in, g.h * g.w, xb, &mut xt);
                let d: &[f32] = if direct {
                    dyb
                } else {
                    for co in 0..c_out {
                        for oy in 0..g.oh {
                            dyw[co * nw + oy * g.w..co * nw + oy * g.w + g.ow].copy_from_slice(
                                &dyb[co * p + oy * g.ow..co * p + (oy + 1) * g.ow],
                            );
                        }
                    }
                    &dyw
                };
                for ky in 0..g.kh {
                    matmul_into(
                        (c_out, kc, nw),
                        (&mut dwt[ky * kc..], krow),
                        true,
                        d,
                        (nw, 1),
                        &xt[ky * g.w * g.c_in..],
                        (g.stride[1] * g.c_in, 1),
                    );
                }
                for (s, row) in db.iter_mut().zip(dyb.chunks(p)) {
                    *s += row.iter().sum::<f32>();
                }
            }
            (dwt, db)
        })
        .collect();
    let (dwt, db) = sum_partials(partials, c_out * krow, c_out);
    // [c_out, kh, kw, c_in] -> [c_out, c_in, kh, kw]
    let mut dw = vec![0.0f32; dwt.len()];
    for co in 0..c_out {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                for ci in 0..g.c_in {
                    dw[((co * g.c_in + ci) * g.kh + ky) * g.kw + kx] =
                        dwt[((co * g.kh + ky) * g.kw + kx) * g.c_in + ci];
                }
            }
        }
    }
    (dw, db)
}

// ------------------------------------------------------------ direct path
//
// Unpadded stride-1 convolutions, image by image with the kernels of `direct`.

impl ConvGeom {
    /// Whether the direct kernels apply (and this CPU runs them).
    fn direct(&self) -> bool {
        self.pad == [0, 0] && self.stride == [1, 1] && direct::available()
    }
}

fn forward_direct(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let packed = direct::Packed::weights(g, weight);
    let mut y = vec![0.0f32; g.n * g.out_len()];
    y.par_chunks_mut(g.out_len())
        .zip(x.par_chunks(g.in_len()))
        .for_each(|(yb, xb)| {
            if let Some(bias) = bias {
                for (row, b) in yb.chunks_mut(g.p()).zip(bias) {
                    row.fill(*b);
                }
            }
            let done = direct::forward(g, xb, &packed, yb, bias.is_some());
            debug_assert!(done, "direct kernels checked available");
        });
    y
}

fn backward_input_direct(g: &ConvGeom, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let packed = direct::Packed::flipped(g, weight);
    let mut dx = vec![0.0f32; g.n * g.in_len()];
    dx.par_chunks_mut(g.in_len())
        .zip(dy.par_chunks(g.out_len()))
        .for_each_init(Vec::new, |scratch, (dxb, dyb)| {
            let done = direct::input_grad(g, dyb, &packed, scratch, dxb);
            debug_assert!(done, "direct kernels checked available");
        });
    dx
}

fn backward_weight_direct(g: &ConvGeom, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (p, c_out) = (g.p(), g.c_out);
    let per = images_per_partial(g.n);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(g.in_len() * per)
        .zip(dy.par_chunks(g.out_len() * per))
        .map(|(xs, dys)| {
            let mut dw = vec![0.0f32; c_out * g.k()];
            let mut db = vec![0.0f32; c_out];
            for (xb, dyb) in xs.chunks(g.in_len()).zip(dys.chunks(g.out_len())) {
                let done = direct::weight_grad(g, xb, dyb, &mut dw);
                debug_assert!(done, "direct kernels checked available");
                for (s, row) in db.iter_mut().zip(dyb.chunks(p)) {
                    *s += row.iter().sum::<f32>();
                }
            }
            (dw, db)
        })
        .collect();
    sum_partials(partials, c_out * g.k(), c_out)
}

/// Forward pass: `x` `[n, c_in, h, w]`, `weight` `[c_out, c_in, kh, kw]`, `bias`
/// `[c_out]`; returns `[n, c_out, oh, ow]`.
pub fn forward(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    if g.direct() {
        forward_direct(g, x, weight, bias)
    } else if g.implicit() {
        forward_implicit(g, x, weight, bias)
    } else {
        forward_im2col(g, x, weight, bias)
    }
}

/// Gradient with respect to the input (`[n, c_in, h, w]`) from the output gradient `dy`.
pub fn backward_input(g: &ConvGeom, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    if g.direct() {
        backward_input_direct(g, weight, dy)
    } else if g.implicit() && g.stride == [1, 1] {
        backward_input_implicit(g, weight, dy)
    } else {
        backward_input_im2col(g, weight, dy)
    }
}

/// Gradients of the weight (`[c_out, c_in, kh, kw]`) and bias (`[c_out]`).
pub fn backward_weight(g: &ConvGeom, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    if g.direct() {
        backward_weight_direct(g, x, dy)
    } else if g.implicit() {
        backward_weight_implicit(g, x, dy)
    } else {
        backward_weight_im2col(g, x, dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution, for checking.
    fn naive(g: &ConvGeom, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.n * g.out_len()];
        for n in 0..g.n {
            for co in 0..g.c_out {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = b[co];
                        for ci in 0..g.c_in {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w
                                    {
                                        continue;
                                    }
                                    s += x[((n * g.c_in + ci) * g.h + iy as usize) * g.w
                                        + ix as usize]
                                        * w[((co * g.c_in + ci) * g.kh + ky) * g.kw + kx];
                                }
                            }
                        }
                        y[((n * g.c_out + co) * g.oh + oy) * g.ow + ox] = s;
                    }
                }
            }
        }
        y
    }

    fn seq(len: usize, a: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32) * a).sin()).collect()
    }

    #[test]
    fn forward_matches_the_definition_with_stride_and_padding() {
        for (x, w, s, p) in [
            ([2, 1, 7, 6], [3, 1, 3, 3], [1, 1], [0, 0]),
            ([3, 2, 9, 8], [4, 2, 5, 3], [2, 1], [1, 2]),
            ([1, 3, 5, 5], [2, 3, 5, 5], [1, 1], [0, 0]),
            ([2, 2, 1, 40], [3, 2, 1, 7], [1, 2], [0, 0]),
            ([1, 1, 3, 17], [2, 1, 2, 4], [1, 3], [0, 0]),
            ([2, 16, 30, 40], [2, 16, 8, 8], [1, 1], [0, 0]), // several bands of rows
        ] {
            let g = ConvGeom::new(x, w, s, p).unwrap();
            if x[1] == 16 {
                assert!(g.bands().count() > 2, "{:?}", g.bands().collect::<Vec<_>>());
            }
            let xs = seq(x.iter().product(), 0.37);
            let ws = seq(w.iter().product(), 0.71);
            let bs = seq(w[0], 1.3);
            let got = forward(&g, &xs, &ws, Some(&bs));
            let want = naive(&g, &xs, &ws, &bs);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{g:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn implicit_gemm_matches_im2col_forward_and_both_gradients() {
        for (x, w, s) in [
            ([2, 1, 7, 6], [3, 1, 3, 3], [1, 1]),
            ([3, 16, 25, 30], [16, 16, 8, 8], [1, 1]), // EnvNet's conv4, narrower
            ([2, 1, 32, 40], [4, 1, 8, 8], [1, 1]),    // conv3: one input channel
            ([2, 3, 6, 20], [5, 3, 1, 4], [1, 1]),     // 1 x k kernels
            ([2, 1, 1, 300], [4, 1, 1, 64], [1, 2]),   // conv1: 1-D, stride 2
            ([3, 6, 1, 200], [8, 6, 1, 16], [1, 2]),   // conv2
            ([1, 2, 1, 50], [3, 2, 1, 5], [1, 3]),
            ([2, 4, 5, 9], [3, 4, 5, 9], [1, 1]), // kernel as large as the input
        ] {
            let g = ConvGeom::new(x, w, s, [0, 0]).unwrap();
            assert!(g.implicit(), "{g:?}");
            let xs = seq(x.iter().product(), 0.37);
            let ws = seq(w.iter().product(), 0.71);
            let bs = seq(w[0], 1.3);
            let dy = seq(g.n * g.out_len(), 0.53);
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len());
                for (i, (u, v)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (u - v).abs() < 1e-3 * (1.0 + v.abs()),
                        "{g:?} {what}[{i}]: {u} vs {v}"
                    );
                }
            };
            close(
                &forward_implicit(&g, &xs, &ws, Some(&bs)),
                &forward_im2col(&g, &xs, &ws, Some(&bs)),
                "y",
            );
            close(
                &forward_implicit(&g, &xs, &ws, None),
                &naive(&g, &xs, &ws, &vec![0.0; w[0]]),
                "y0",
            );
            close(
                &if g.stride == [1, 1] {
                    backward_input_implicit(&g, &ws, &dy)
                } else {
                    backward_input(&g, &ws, &dy)
                },
                &backward_input_im2col(&g, &ws, &dy),
                "dx",
            );
            let (dw, db) = backward_weight_implicit(&g, &xs, &dy);
            let (dw0, db0) = backward_weight_im2col(&g, &xs, &dy);
            close(&dw, &dw0, "dw");
            close(&db, &db0, "db");
        }
    }

    #[test]
    fn direct_path_matches_im2col_on_envnet_shapes() {
        for (x, w) in [
            ([3, 16, 25, 119], [16, 16, 8, 8]), // conv4
            ([2, 1, 32, 126], [16, 1, 8, 8]),   // conv3
            ([5, 16, 6, 37], [32, 16, 1, 4]),   // conv5, batch not a multiple of 2
            ([2, 32, 6, 15], [64, 32, 1, 2]),   // conv7
        ] {
            let g = ConvGeom::new(x, w, [1, 1], [0, 0]).unwrap();
            assert_eq!(g.direct(), direct::available(), "{g:?}");
            let xs = seq(x.iter().product(), 0.37);
            let ws = seq(w.iter().product(), 0.71);
            let bs = seq(w[0], 1.3);
            let dy = seq(g.n * g.out_len(), 0.53);
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len());
                for (i, (u, v)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (u - v).abs() < 1e-3 * (1.0 + v.abs()),
                        "{g:?} {what}[{i}]: {u} vs {v}"
                    );
                }
            };
            close(
                &forward(&g, &xs, &ws, Some(&bs)),
                &forward_im2col(&g, &xs, &ws, Some(&bs)),
                "y",
            );
            close(
                &backward_input(&g, &ws, &dy),
                &backward_input_im2col(&g, &ws, &dy),
                "dx",
            );
            let (dw, db) = backward_weight(&g, &xs, &dy);
            let (dw0, db0) = backward_weight_im2col(&g, &xs, &dy);
            close(&dw, &dw0, "dw");
            close(&db, &db0, "db");
        }
    }

    #[test]
    fn weight_gradients_are_the_same_bits_on_any_number_of_threads() {
        // one shape per path: direct (where the CPU has it), implicit GEMM, columns
        for (x, w, s, p) in [
            ([17, 16, 6, 37], [32, 16, 1, 4], [1, 1], [0, 0]),
            ([13, 6, 1, 200], [8, 6, 1, 16], [1, 2], [0, 0]),
            ([11, 2, 9, 8], [4, 2, 5, 3], [2, 1], [1, 2]),
        ] {
            let g = ConvGeom::new(x, w, s, p).unwrap();
            let xs = seq(x.iter().product(), 0.37);
            let dy = seq(g.n * g.out_len(), 0.53);
            let on = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| backward_weight(&g, &xs, &dy))
            };
            let one = on(1);
            for threads in [2, 3, 8] {
                let (dw, db) = on(threads);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&dw), bits(&one.0), "{g:?} dw, {threads} threads");
                assert_eq!(bits(&db), bits(&one.1), "{g:?} db, {threads} threads");
            }
        }
    }

    #[test]
    fn padded_and_2d_strided_convolutions_keep_the_column_path() {
        assert!(!ConvGeom::new([1, 1, 8, 8], [1, 1, 3, 3], [1, 1], [1, 1])
            .unwrap()
            .implicit());
        assert!(!ConvGeom::new([1, 1, 8, 8], [1, 1, 3, 3], [2, 2], [0, 0])
            .unwrap()
            .implicit());
        assert!(!ConvGeom::new([1, 1, 8, 8], [1, 1, 3, 3], [1, 2], [0, 0])
            .unwrap()
            .implicit());
    }

    #[test]
    fn geometry_rejects_a_kernel_larger_than_the_input() {
        assert!(ConvGeom::new([1, 1, 4, 4], [1, 1, 5, 5], [1, 1], [0, 0]).is_none());
        assert!(ConvGeom::new([1, 2, 4, 4], [1, 1, 3, 3], [1, 1], [0, 0]).is_none());
        assert_eq!(
            ConvGeom::new([1, 1, 4, 4], [1, 1, 5, 5], [1, 1], [1, 1])
                .unwrap()
                .out_shape(),
            [1, 1, 2, 2]
        );
    }
}
