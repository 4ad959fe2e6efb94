//! Vector loops of the CPU kernels, compiled twice: for the baseline x86-64 target
//! (SSE2) and with AVX2 + FMA, picked at run time by CPU feature detection. On other
//! architectures only the baseline version exists.
//!
//! Reductions keep 8 independent partial sums so that the compiler can vectorise them
//! (a single running f32 sum is a serial dependency chain it may not reorder).

/// Defines `pub fn $name(args) -> ret` whose body is compiled for the baseline target
/// and, on x86-64, again with AVX2 and FMA enabled; the call picks the best one.
macro_rules! multiversion {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;

const LANES: usize = 8;

multiversion! {
    /// `(sum x, sum x^2)` of a run of values.
    pub fn sum_and_squares(x: &[f32]) -> (f32, f32) {
        let mut a = [0.0f32; LANES];
        let mut b = [0.0f32; LANES];
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..LANES {
                a[i] += c[i];
                b[i] += c[i] * c[i];
            }
        }
        let (mut sa, mut sb) = (a.iter().sum::<f32>(), b.iter().sum::<f32>());
        for v in rest {
            sa += v;
            sb += v * v;
        }
        (sa, sb)
    }
}

multiversion! {
    /// `dst = src * a + b`, then `max(., 0)` if `relu`.
    pub fn scale_shift(dst: &mut [f32], src: &[f32], a: f32, b: f32, relu: bool) {
        if relu {
            for (o, v) in dst.iter_mut().zip(src) {
                *o = (v * a + b).max(0.0);
            }
        } else {
            for (o, v) in dst.iter_mut().zip(src) {
                *o = v * a + b;
            }
        }
    }
}

multiversion! {
    /// With `d = dy` where `x * scale + shift > 0` (or everywhere unless `relu`), and
    /// 0 elsewhere: `(sum d, sum d * x)`.
    pub fn masked_sums(x: &[f32], dy: &[f32], scale: f32, shift: f32, relu: bool) -> (f32, f32) {
        let mut a = [0.0f32; LANES];
        let mut b = [0.0f32; LANES];
        let n = x.len().min(dy.len());
        let (x, dy) = (&x[..n], &dy[..n]);
        let full = n - n % LANES;
        for (xc, dc) in x[..full].chunks_exact(LANES).zip(dy[..full].chunks_exact(LANES)) {
            for i in 0..LANES {
                let d = if !relu || xc[i] * scale + shift > 0.0 { dc[i] } else { 0.0 };
                a[i] += d;
                b[i] += d * xc[i];
            }
        }
        let (mut sa, mut sb) = (a.iter().sum::<f32>(), b.iter().sum::<f32>());
        for (xv, dv) in x[full..].iter().zip(&dy[full..]) {
            let d = if !relu || xv * scale + shift > 0.0 { *dv } else { 0.0 };
            sa += d;
            sb += d * xv;
        }
        (sa, sb)
    }
}

multiversion! {
    /// `dx = ca * d + cb * x + cc` with `d` masked as in [`masked_sums`].
    pub fn masked_affine(
        dx: &mut [f32],
        x: &[f32],
        dy: &[f32],
        scale: f32,
        shift: f32,
        relu: bool,
        coef: [f32; 3],
    ) {
        let [ca, cb, cc] = coef;
        for ((o, xv), dv) in dx.iter_mut().zip(x).zip(dy) {
            let d = if !relu || xv * scale + shift > 0.0 { *dv } else { 0.0 };
            *o = ca * d + cb * xv + cc;
        }
    }
}

multiversion! {
    /// `dst += src` element by element.
    pub fn add_assign(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_a_plain_loop_for_every_length() {
        for n in [0, 1, 7, 8, 9, 23, 576] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
            let dy: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).cos()).collect();
            let (a, b) = sum_and_squares(&x);
            assert!((a - x.iter().sum::<f32>()).abs() < 1e-4);
            assert!((b - x.iter().map(|v| v * v).sum::<f32>()).abs() < 1e-4);
            let (a, b) = masked_sums(&x, &dy, 2.0, -0.5, true);
            let keep = |v: f32| v * 2.0 - 0.5 > 0.0;
            let wa: f32 = x
                .iter()
                .zip(&dy)
                .filter(|(v, _)| keep(**v))
                .map(|(_, d)| d)
                .sum();
            let wb: f32 = x
                .iter()
                .zip(&dy)
                .filter(|(v, _)| keep(**v))
                .map(|(v, d)| v * d)
                .sum();
            assert!((a - wa).abs() < 1e-4 && (b - wb).abs() < 1e-4, "n = {n}");
            let mut out = vec![0.0; n];
            masked_affine(&mut out, &x, &dy, 2.0, -0.5, false, [1.0, 2.0, 3.0]);
            for i in 0..n {
                assert!((out[i] - (dy[i] + 2.0 * x[i] + 3.0)).abs() < 1e-5);
            }
        }
    }
}
