//! Non-overlapping max pooling (kernel = stride, no padding, floor) on the CPU, with
//! the position of each maximum kept as one byte per output for the backward pass.

use super::simd::multiversion;
use rayon::prelude::*;

/// Shape of a pooling: `planes` = batch x channels images of `h` x `w`, window `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    /// Number of `h` x `w` planes (batch size times channels).
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window side and stride (at most 15, so that a position fits in a byte).
    pub k: usize,
}

impl PoolGeom {
    /// Output height.
    pub fn oh(&self) -> usize {
        self.h / self.k
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        self.w / self.k
    }
}

/// Forward pass: the maxima (`[planes, oh, ow]`) and, per output, the position of the
/// maximum inside its window (`dy * k + dx`; the first one on ties, as PyTorch).
pub fn forward(g: &PoolGeom, x: &[f32]) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow, k) = (g.oh(), g.ow(), g.k);
    let olen = oh * ow;
    let mut y = vec![0.0f32; g.planes * olen];
    let mut arg = vec![0u8; g.planes * olen];
    y.par_chunks_mut(olen.max(1))
        .zip(arg.par_chunks_mut(olen.max(1)))
        .zip(x.par_chunks((g.h * g.w).max(1)))
        .for_each(|((yp, ap), xp)| {
            if k == 2 {
                forward_plane_2(xp, g.w, oh, ow, yp, ap);
                return;
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f32::NEG_INFINITY;
                    let mut at = 0u8;
                    let mut first = true;
                    for dy in 0..k {
                        let row = &xp[(oy * k + dy) * g.w + ox * k..][..k];
                        for (dx, v) in row.iter().enumerate() {
                            if first || wins(*v, best) {
                                best = *v;
                                at = (dy * k + dx) as u8;
                                first = false;
                            }
                        }
                    }
                    yp[oy * ow + ox] = best;
                    ap[oy * ow + ox] = at;
                }
            }
        });
    (y, arg)
}

/// Whether `v` replaces the running maximum `best`: larger, or a NaN over a number, so
/// that NaN propagates as in PyTorch; ties keep the first.
#[inline(always)]
pub(crate) fn wins(v: f32, best: f32) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

multiversion! {
/// One plane with a 2x2 window: two input rows per output row.
pub fn forward_plane_2(xp: &[f32], w: usize, oh: usize, ow: usize, yp: &mut [f32], ap: &mut [u8]) {
    for oy in 0..oh {
        let r0 = &xp[2 * oy * w..][..2 * ow];
        let r1 = &xp[(2 * oy + 1) * w..][..2 * ow];
        let yr = &mut yp[oy * ow..(oy + 1) * ow];
        let ar = &mut ap[oy * ow..(oy + 1) * ow];
        for ox in 0..ow {
            let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
            let (mut best, mut at) = (a, 0u8);
            if wins(b, best) {
                best = b;
                at = 1;
            }
            if wins(c, best) {
                best = c;
                at = 2;
            }
            if wins(d, best) {
                best = d;
                at = 3;
            }
            yr[ox] = best;
            ar[ox] = at;
        }
    }
}
}

/// Backward pass: routes each output gradient to the position of its maximum.
pub fn backward(g: &PoolGeom, arg: &[u8], dy: &[f32]) -> Vec<f32> {
    let (oh, ow, k) = (g.oh(), g.ow(), g.k);
    let olen = oh * ow;
    let mut dx = vec![0.0f32; g.planes * g.h * g.w];
    dx.par_chunks_mut((g.h * g.w).max(1))
        .zip(dy.par_chunks(olen.max(1)).zip(arg.par_chunks(olen.max(1))))
        .for_each(|(dxp, (dyp, ap))| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let a = ap[oy * ow + ox] as usize;
                    let (ddy, ddx) = (a / k, a % k);
                    dxp[(oy * k + ddy) * g.w + ox * k + ddx] += dyp[oy * ow + ox];
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_window_maximum_and_routes_its_gradient() {
        // one 4x5 plane, window 2: the last column is dropped (floor)
        let x = [
            1.0, 5.0, 2.0, 0.0, 9.0, //
            3.0, 4.0, 7.0, 1.0, 9.0, //
            0.0, 0.0, 1.0, 1.0, 9.0, //
            8.0, 0.0, 1.0, 2.0, 9.0,
        ];
        let g = PoolGeom {
            planes: 1,
            h: 4,
            w: 5,
            k: 2,
        };
        let (y, arg) = forward(&g, &x);
        assert_eq!(y, vec![5.0, 7.0, 8.0, 2.0]);
        assert_eq!(arg, vec![1, 2, 2, 3]);
        let dx = backward(&g, &arg, &[1.0, 2.0, 3.0, 4.0]);
        let mut want = vec![0.0; 20];
        want[1] = 1.0;
        want[7] = 2.0;
        want[15] = 3.0;
        want[18] = 4.0;
        assert_eq!(dx, want);
        // ties go to the first position, NaN wins, for both window paths
        let (_, arg) = forward(
            &PoolGeom {
                planes: 1,
                h: 2,
                w: 2,
                k: 2,
            },
            &[0.0; 4],
        );
        assert_eq!(arg, vec![0]);
        let (y, arg) = forward(
            &PoolGeom {
                planes: 1,
                h: 2,
                w: 2,
                k: 2,
            },
            &[1.0, f32::NAN, 2.0, 3.0],
        );
        assert!(y[0].is_nan());
        assert_eq!(arg, vec![1]);
        let mut x3 = [0.0f32; 9];
        x3[4] = f32::NAN;
        x3[8] = 5.0;
        let (y, arg) = forward(
            &PoolGeom {
                planes: 1,
                h: 3,
                w: 3,
                k: 3,
            },
            &x3,
        );
        assert!(y[0].is_nan());
        assert_eq!(arg, vec![4]);
    }
}
