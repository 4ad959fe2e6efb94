//! Fast CPU kernels for the layers of scarce's convolutional networks, plugged into
//! burn's autodiff with hand-written backward passes.
//!
//! On the default `flex` CPU device, burn's own convolution, training-mode batch norm and
//! max pooling spend most of a digits training step in layout changes, allocations and
//! single-threaded loops (`cargo bench --bench ops` shows it operation by operation;
//! `docs/performance.md` has the figures). The functions here compute the same results
//! with im2col + GEMM per image, one-pass per-channel statistics and byte-sized pooling
//! indices, in parallel over the batch.
//!
//! Every function takes and returns ordinary `Tensor`s. On any other device (wgpu, CUDA),
//! for other dtypes than f32, for shapes the kernels do not cover, or when the environment
//! variable `SCARCE_CPU_KERNELS=0` is set, they fall back to burn's own operations, so a
//! model written with them runs everywhere. Tests check values and gradients against
//! burn's operations on random shapes.

pub mod conv;
pub mod direct;
pub mod norm;
pub mod pool;
pub mod simd;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, TensorData};
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

type Ad = Autodiff<Flex>;

/// Where a tensor lives, as far as these kernels care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The flex CPU backend, no gradient tracking.
    Flex,
    /// The flex CPU backend under autodiff.
    FlexAutodiff,
    /// Anything else: use burn's operations.
    Burn,
}

/// Whether the CPU kernels are switched on (`SCARCE_CPU_KERNELS=0` turns them off).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("SCARCE_CPU_KERNELS")
            .map(|v| !matches!(v.trim(), "0" | "false" | "off" | "no"))
            .unwrap_or(true)
    })
}

/// Keeps the large, short-lived buffers of a training step in the process heap.
///
/// A digits step allocates and frees tens of megabytes of activations and column
/// matrices. With glibc's defaults every buffer above 128 KiB is a fresh `mmap`, and
/// freeing it unmaps the pages and interrupts the other cores to flush their TLBs; on
/// the 2-core machine that was a third of a step. This raises the mmap threshold to
/// glibc's maximum (32 MiB on 64-bit) and stops the heap from being trimmed after each
/// free. Called once by the `scarce` binary and the benches; harmless to call again,
/// and a no-op on other platforms.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; valid for any argument values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Whether tensors on `device` go through these kernels.
pub fn accelerates(device: &Device) -> bool {
    path_of(device, DType::F32) != Path::Burn
}

fn path_of(device: &Device, dtype: DType) -> Path {
    if !enabled() || dtype != DType::F32 || *device != Device::flex() {
        Path::Burn
    } else if device.is_autodiff() {
        Path::FlexAutodiff
    } else {
        Path::Flex
    }
}

fn path<const D: usize>(x: &Tensor<D>) -> Path {
    path_of(&x.device(), x.dtype())
}

/// The values of a flex tensor as one contiguous f32 slice.
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
        ),
    }
}

fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

fn to_flex<const D: usize>(x: Tensor<D>) -> FlexTensor {
    x.try_into_primitive::<Flex>()
        .expect("tensor checked to live on the flex device")
}

fn to_ad<const D: usize>(x: Tensor<D>) -> FloatTensor<Ad> {
    x.try_into_primitive::<Ad>()
        .expect("tensor checked to live on the flex autodiff device")
}

/// Records `op` on the autodiff graph for an output `y` computed from the inputs behind
/// `nodes`: with its backward state when an input needs a gradient, as a constant
/// otherwise.
fn record<O: Backward<Flex, N>, const N: usize>(
    op: O,
    nodes: [NodeGuard; N],
    state: O::State,
    y: FlexTensor,
) -> FloatTensor<Ad> {
    match op
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

// ------------------------------------------------------------------ convolution

/// 2-D convolution with bias, symmetric zero padding and no dilation or groups:
/// `x` `[n, c_in, h, w]`, `weight` `[c_out, c_in, kh, kw]`, `bias` `[c_out]`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    let geom = ConvGeom::new(x.dims(), weight.dims(), stride, padding);
    match (path(&x), geom) {
        (Path::Flex, Some(g)) => {
            let (xf, wf, bf) = (to_flex(x), to_flex(weight), to_flex(bias));
            let y = conv::forward(&g, &values(&xf), &values(&wf), Some(&values(&bf)));
            Tensor::from_primitive::<Flex>(flex(y, &g.out_shape()))
        }
        (Path::FlexAutodiff, Some(g)) => {
            Tensor::from_primitive::<Ad>(conv_autodiff(x, weight, bias, g))
        }
        _ => burn::tensor::module::conv2d(
            x,
            weight,
            Some(bias),
            ConvOptions::new(stride, padding, [1, 1], 1),
        ),
    }
}

use conv::ConvGeom;

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (FlexTensor, FlexTensor, ConvGeom);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, g) = ops.state;
        let dy = values(&dy);
        if let Some(node) = node_x {
            let dx = conv::backward_input(&g, &values(&w), &dy);
            grads.register::<Flex>(node.id, flex(dx, &[g.n, g.c_in, g.h, g.w]));
        }
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = conv::backward_weight(&g, &values(&x), &dy);
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, flex(dw, &[g.c_out, g.c_in, g.kh, g.kw]));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, flex(db, &[g.c_out]));
            }
        }
    }
}

fn conv_autodiff(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, g: ConvGeom) -> FloatTensor<Ad> {
    let (x, w, b) = (to_ad(x), to_ad(weight), to_ad(bias));
    let nodes = [x.node(), w.node(), b.node()];
    let (xp, wp, bp) = (x.into_primitive(), w.into_primitive(), b.into_primitive());
    let y = conv::forward(&g, &values(&xp), &values(&wp), Some(&values(&bp)));
    let y = flex(y, &g.out_shape());
    record(ConvBackward, nodes, (xp, wp, g), y)
}

// ------------------------------------------------------------------ batch norm

use norm::NormGeom;

fn norm_geom(dims: &[usize]) -> Option<NormGeom> {
    match dims {
        [n, c] => Some(NormGeom { n: *n, c: *c, s: 1 }),
        [n, c, rest @ ..] => Some(NormGeom {
            n: *n,
            c: *c,
            s: rest.iter().product(),
        }),
        _ => None,
    }
    .filter(|g| g.n * g.s > 1)
}

/// `bn` applied to `x` (`[n, c, ...]`), followed by ReLU when `relu` is set.
///
/// In training mode on an autodiff device it normalises with the batch statistics and
/// updates the running statistics (momentum as configured; the running variance is
/// the unbiased batch variance, as in PyTorch). Otherwise it uses the running
/// statistics.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>, relu_after: bool) -> Tensor<D> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    let dims = x.dims();
    let geom = norm_geom(&dims);
    if !training {
        let channels = dims.get(1).copied().unwrap_or(1);
        let var = bn.running_var.value().to_device(&x.device());
        let mean = bn.running_mean.value().to_device(&x.device());
        let scale = bn.gamma.val() / (var + bn.epsilon).sqrt();
        let shift = bn.beta.val() - mean * scale.clone();
        let mut shape = [1usize; D];
        shape[1] = channels;
        let y = x * scale.reshape(shape) + shift.reshape(shape);
        return if relu_after { relu(y) } else { y };
    }
    let (y, mean, var, g) = match (path(&x), geom) {
        (Path::FlexAutodiff, Some(g)) => {
            let (y, mean, var) =
                norm_autodiff(x, bn.gamma.val(), bn.beta.val(), bn.epsilon, relu_after, g);
            (Tensor::from_primitive::<Ad>(y), mean, var, g)
        }
        _ => {
            let out = burn::tensor::module::batch_norm_train(
                x,
                bn.gamma.val(),
                bn.beta.val(),
                bn.epsilon,
            );
            let y = if relu_after {
                relu(out.output)
            } else {
                out.output
            };
            let g = geom.unwrap_or(NormGeom { n: 2, c: 1, s: 1 });
            (y, out.mean.detach(), out.variance.detach(), g)
        }
    };
    update_running(bn, mean, var, g, &y.device());
    y
}

/// Moves `bn`'s running statistics towards a batch's mean and (biased) variance, the
/// latter made unbiased as PyTorch does.
fn update_running(bn: &BatchNorm, mean: Tensor<1>, var: Tensor<1>, g: NormGeom, device: &Device) {
    let count = (g.n * g.s) as f64;
    let unbiased = var * (count / (count - 1.0));
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(device) * (1.0 - m) + mean * m;
    let running_var = bn.running_var.value_sync().to_device(device) * (1.0 - m) + unbiased * m;
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}

/// `max_pool2d(relu(bn(x)), k)` for `x` `[n, c, h, w]`: the first block of a
/// convolutional network in one operation.
///
/// In training mode on the flex autodiff device this is one fused kernel that never
/// writes the normalised activations (a quarter of the memory traffic of the three
/// operations for the digits net's first block); elsewhere it is [`batch_norm`] and
/// [`max_pool2d`]. Running statistics are updated as by [`batch_norm`].
pub fn batch_norm_relu_pool(bn: &BatchNorm, x: Tensor<4>, k: usize) -> Tensor<4> {
    let dims = x.dims();
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    let [n, c, h, w] = dims;
    let fused = training && path(&x) == Path::FlexAutodiff && pool_geom(dims, k).is_some();
    if !fused || n * h * w < 2 {
        return max_pool2d(batch_norm(bn, x, true), k);
    }
    let g = NormGeom { n, c, s: h * w };
    let device = x.device();
    let (gamma, beta) = (to_ad(bn.gamma.val()), to_ad(bn.beta.val()));
    let x = to_ad(x);
    let nodes = [x.node(), gamma.node(), beta.node()];
    let (xp, gp, bp) = (
        x.into_primitive(),
        gamma.into_primitive(),
        beta.into_primitive(),
    );
    let out = norm::forward_relu_pool(
        &g,
        h,
        w,
        k,
        &values(&xp),
        &values(&gp),
        &values(&bp),
        bn.epsilon,
    );
    let mean = Tensor::<1>::from_data(TensorData::new(out.mean.clone(), [c]), &device);
    let var = Tensor::<1>::from_data(TensorData::new(out.var.clone(), [c]), &device);
    let y = flex(out.y, &[n, c, h / k, w / k]);
    let state = NormPoolState {
        x: xp,
        gamma: gp,
        beta: bp,
        mean: Arc::new(out.mean),
        var: Arc::new(out.var),
        arg: Arc::new(out.arg),
        eps: bn.epsilon,
        dims,
        k,
    };
    let y = record(NormPoolBackward, nodes, state, y);
    update_running(bn, mean, var, g, &device);
    Tensor::from_primitive::<Ad>(y)
}

#[derive(Clone, Debug)]
struct NormPoolState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: Arc<Vec<f32>>,
    var: Arc<Vec<f32>>,
    arg: Arc<Vec<u8>>,
    eps: f64,
    dims: [usize; 4],
    k: usize,
}

#[derive(Debug)]
struct NormPoolBackward;

impl Backward<Flex, 3> for NormPoolBackward {
    type State = NormPoolState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let st = ops.state;
        let [n, c, h, w] = st.dims;
        let out = norm::backward_relu_pool(
            &NormGeom { n, c, s: h * w },
            h,
            w,
            st.k,
            &values(&st.x),
            &values(&st.gamma),
            &values(&st.beta),
            &st.mean,
            &st.var,
            st.eps,
            &st.arg,
            &values(&dy),
        );
        let ids = [node_x, node_g, node_b].map(|n| n.map(|n| n.id));
        register_norm_grads(grads, ids, out, &st.dims);
    }
}

#[derive(Clone, Debug)]
struct NormState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: Arc<Vec<f32>>,
    var: Arc<Vec<f32>>,
    eps: f64,
    relu: bool,
    geom: NormGeom,
    shape: Vec<usize>,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let out = norm::backward(
            &s.geom,
            &values(&s.x),
            &values(&s.gamma),
            &values(&s.beta),
            &s.mean,
            &s.var,
            s.eps,
            s.relu,
            &values(&dy),
        );
        let ids = [node_x, node_g, node_b].map(|n| n.map(|n| n.id));
        register_norm_grads(grads, ids, out, &s.shape);
    }
}

/// Hands a batch norm's input, gamma and beta gradients to the parents that want them.
fn register_norm_grads(
    grads: &mut Gradients,
    [x, gamma, beta]: [Option<NodeId>; 3],
    out: norm::NormBackward,
    x_shape: &[usize],
) {
    let c = out.dgamma.len();
    for (id, values, shape) in [
        (x, out.dx, x_shape),
        (gamma, out.dgamma, &[c][..]),
        (beta, out.dbeta, &[c][..]),
    ] {
        if let Some(id) = id {
            grads.register::<Flex>(id, flex(values, shape));
        }
    }
}

/// Training-mode batch norm (and ReLU) on the flex autodiff device: the output and the
/// batch mean and biased variance (plain flex tensors on the same device, no gradient).
fn norm_autodiff<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
    relu: bool,
    geom: NormGeom,
) -> (FloatTensor<Ad>, Tensor<1>, Tensor<1>) {
    let shape = x.dims().to_vec();
    let device = x.device();
    let (x, gamma, beta) = (to_ad(x), to_ad(gamma), to_ad(beta));
    let nodes = [x.node(), gamma.node(), beta.node()];
    let (xp, gp, bp) = (
        x.into_primitive(),
        gamma.into_primitive(),
        beta.into_primitive(),
    );
    let out = norm::forward(&geom, &values(&xp), &values(&gp), &values(&bp), eps, relu);
    let mean = Tensor::<1>::from_data(TensorData::new(out.mean.clone(), [geom.c]), &device);
    let var = Tensor::<1>::from_data(TensorData::new(out.var.clone(), [geom.c]), &device);
    let y = flex(out.y, &shape);
    let state = NormState {
        x: xp,
        gamma: gp,
        beta: bp,
        mean: Arc::new(out.mean),
        var: Arc::new(out.var),
        eps,
        relu,
        geom,
        shape,
    };
    let y = record(NormBackward, nodes, state, y);
    (y, mean, var)
}

// ------------------------------------------------------------------ dropout

thread_local! {
    static DROPOUT_RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// Seeds the dropout masks drawn by [`dropout`] on this thread.
pub fn seed_dropout(seed: u64) {
    DROPOUT_RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// Inverted dropout: in training mode on an autodiff device, zeroes each value with
/// probability `p` and scales the rest by `1 / (1 - p)`; otherwise returns `x`.
///
/// On the flex device the mask comes from a ChaCha8 generator on the calling thread
/// (seeded by [`seed_dropout`]), 32 bits per value, which is several times faster than
/// burn's per-element sampler; elsewhere it is burn's `Dropout`.
pub fn dropout<const D: usize>(layer: &burn::nn::Dropout, x: Tensor<D>) -> Tensor<D> {
    let p = layer.prob;
    if !layer.training.is_enabled() || !x.device().is_autodiff() || p <= 0.0 {
        return x;
    }
    if path(&x) == Path::Burn || p >= 1.0 {
        return layer.forward(x);
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let keep = 1.0 - p;
    // a value survives when its 32 random bits fall below keep * 2^32
    let threshold = (keep * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let scale = (1.0 / keep) as f32;
    let mut bits = vec![0u32; n];
    DROPOUT_RNG.with(|r| {
        let mut rng = r.borrow_mut();
        for b in bits.iter_mut() {
            *b = rng.next_u32();
        }
    });
    let mask: Vec<f32> = bits
        .iter()
        .map(|b| if *b < threshold { scale } else { 0.0 })
        .collect();
    let mask = Tensor::<D>::from_data(TensorData::new(mask, dims.to_vec()), &x.device());
    x * mask
}

// ------------------------------------------------------------------ max pooling

use pool::PoolGeom;

fn pool_geom(dims: [usize; 4], k: usize) -> Option<PoolGeom> {
    let [n, c, h, w] = dims;
    ((1..=15).contains(&k) && h >= k && w >= k).then_some(PoolGeom {
        planes: n * c,
        h,
        w,
        k,
    })
}

/// Max pooling over non-overlapping `k` x `k` windows (stride `k`, no padding, floor).
pub fn max_pool2d(x: Tensor<4>, k: usize) -> Tensor<4> {
    let dims = x.dims();
    match (path(&x), pool_geom(dims, k)) {
        (Path::Flex, Some(g)) => {
            let xf = to_flex(x);
            let (y, _) = pool::forward(&g, &values(&xf));
            Tensor::from_primitive::<Flex>(flex(y, &[dims[0], dims[1], g.oh(), g.ow()]))
        }
        (Path::FlexAutodiff, Some(g)) => {
            let x = to_ad(x);
            let nodes = [x.node()];
            let xp = x.into_primitive();
            let (y, arg) = pool::forward(&g, &values(&xp));
            let y = flex(y, &[dims[0], dims[1], g.oh(), g.ow()]);
            let y = record(PoolBackward, nodes, (Arc::new(arg), g, dims), y);
            Tensor::from_primitive::<Ad>(y)
        }
        _ => burn::tensor::module::max_pool2d(x, MaxPoolOptions::new([k, k])),
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Arc<Vec<u8>>, PoolGeom, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (arg, g, dims) = ops.state;
        if let Some(node) = node_x {
            let dx = pool::backward(&g, &arg, &values(&dy));
            grads.register::<Flex>(node.id, flex(dx, &dims));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;

    fn ad() -> Device {
        Device::flex().autodiff()
    }

    fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, tol: f32, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}[{i}]: {x} vs {y} (scale {scale})"
            );
        }
    }

    fn rand<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
    }

    #[test]
    fn the_flex_device_takes_the_kernel_path() {
        assert!(accelerates(&Device::flex()));
        assert!(accelerates(&ad()));
        assert_eq!(path_of(&ad(), DType::F32), Path::FlexAutodiff);
        assert_eq!(path_of(&Device::flex(), DType::F64), Path::Burn);
    }

    #[test]
    fn conv2d_values_and_gradients_match_burn() {
        let d = ad();
        d.seed(7);
        let cases = [
            ([3, 1, 28, 28], [32, 1, 5, 5], [1, 1], [0, 0]),
            ([4, 5, 12, 11], [7, 5, 5, 5], [1, 1], [0, 0]),
            ([2, 3, 9, 10], [4, 3, 3, 3], [2, 1], [1, 1]),
            ([5, 2, 7, 7], [3, 2, 1, 1], [1, 1], [0, 0]),
            ([1, 4, 6, 13], [2, 4, 3, 5], [2, 3], [2, 1]),
            ([2, 3, 1, 50], [4, 3, 1, 9], [1, 2], [0, 0]), // EnvNet's 1-D convolutions
            ([2, 16, 30, 40], [3, 16, 8, 8], [1, 1], [0, 0]), // bands of output rows
        ];
        for (xs, ws, stride, pad) in cases {
            let x = rand(xs, &d).require_grad();
            let w = rand(ws, &d).require_grad();
            let b = rand([ws[0]], &d).require_grad();
            let ours = conv2d(x.clone(), w.clone(), b.clone(), stride, pad);
            let theirs = burn::tensor::module::conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                ConvOptions::new(stride, pad, [1, 1], 1),
            );
            let what = format!("conv {xs:?} * {ws:?} stride {stride:?} pad {pad:?}");
            close(ours.clone(), theirs.clone(), 1e-5, &what);
            let r = rand(ours.dims(), &d);
            let g1 = (ours * r.clone()).sum().backward();
            let g2 = (theirs * r).sum().backward();
            close(
                x.grad(&g1).unwrap(),
                x.grad(&g2).unwrap(),
                1e-4,
                &format!("{what}: dx"),
            );
            close(
                w.grad(&g1).unwrap(),
                w.grad(&g2).unwrap(),
                1e-4,
                &format!("{what}: dw"),
            );
            close(
                b.grad(&g1).unwrap(),
                b.grad(&g2).unwrap(),
                1e-4,
                &format!("{what}: db"),
            );
        }
    }

    #[test]
    fn conv2d_without_gradient_tracking_matches_burn() {
        let d = Device::flex();
        d.seed(3);
        let (x, w, b) = (
            rand([3, 2, 10, 9], &d),
            rand([4, 2, 3, 3], &d),
            rand([4], &d),
        );
        let ours = conv2d(x.clone(), w.clone(), b.clone(), [1, 2], [1, 0]);
        let theirs = burn::tensor::module::conv2d(
            x,
            w,
            Some(b),
            ConvOptions::new([1, 2], [1, 0], [1, 1], 1),
        );
        close(ours, theirs, 1e-5, "plain conv");
    }

    #[test]
    fn batch_norm_matches_burn_in_training_and_updates_running_statistics() {
        let d = ad();
        d.seed(11);
        for (shape, relu_after) in [
            ([6, 3, 5, 7], false),
            ([4, 5, 3, 3], true),
            ([9, 4, 1, 1], true),
        ] {
            let bn = BatchNormConfig::new(shape[1]).init(&d);
            let reference = BatchNormConfig::new(shape[1]).init(&d);
            let x = (rand(shape, &d) * 2.0 + 0.5).require_grad();
            let ours = batch_norm(&bn, x.clone(), relu_after);
            let theirs = reference.forward(x.clone());
            let theirs = if relu_after { relu(theirs) } else { theirs };
            let what = format!("bn {shape:?} relu {relu_after}");
            close(ours.clone(), theirs.clone(), 1e-4, &what);
            same_gradients(&x, ours, theirs, (&bn, &reference), &what);
            // running variance: unbiased here, biased in burn's module
            let count = (shape[0] * shape[2] * shape[3]) as f32;
            let theirs_unbiased =
                (reference.running_var.value_sync() - 0.9) * (count / (count - 1.0)) + 0.9;
            close(
                bn.running_var.value_sync(),
                theirs_unbiased,
                1e-4,
                &format!("{what}: running var"),
            );
        }
    }

    #[test]
    fn fused_batch_norm_relu_pool_matches_the_three_operations() {
        let d = ad();
        d.seed(17);
        for (shape, k) in [([4, 3, 8, 8], 2), ([3, 2, 9, 7], 2), ([2, 3, 9, 9], 3)] {
            let fused_bn = BatchNormConfig::new(shape[1]).init(&d);
            let plain_bn = BatchNormConfig::new(shape[1]).init(&d);
            let x = (rand(shape, &d) * 1.5 + 0.3).require_grad();
            let ours = batch_norm_relu_pool(&fused_bn, x.clone(), k);
            let theirs = burn::tensor::module::max_pool2d(
                relu(plain_bn.forward(x.clone())),
                MaxPoolOptions::new([k, k]),
            );
            let what = format!("bn+relu+pool {shape:?} k {k}");
            close(ours.clone(), theirs.clone(), 1e-4, &what);
            same_gradients(&x, ours, theirs, (&fused_bn, &plain_bn), &what);
        }
    }

    /// Backpropagates the same random projection of `ours` and `theirs` and compares the
    /// gradients of `x` and of the two batch norms' parameters, and their running means
    /// (0.9 * 0 + 0.1 * batch mean, as burn's module does).
    fn same_gradients(
        x: &Tensor<4>,
        ours: Tensor<4>,
        theirs: Tensor<4>,
        (a, b): (&BatchNorm, &BatchNorm),
        what: &str,
    ) {
        let r = rand(ours.dims(), &x.device());
        let g1 = (ours * r.clone()).sum().backward();
        let g2 = (theirs * r).sum().backward();
        let grad = |t: Tensor<1>, g| t.grad(g).expect("a gradient");
        close(
            x.grad(&g1).unwrap(),
            x.grad(&g2).unwrap(),
            1e-3,
            &format!("{what}: dx"),
        );
        close(
            grad(a.gamma.val(), &g1),
            grad(b.gamma.val(), &g2),
            1e-3,
            &format!("{what}: dgamma"),
        );
        close(
            grad(a.beta.val(), &g1),
            grad(b.beta.val(), &g2),
            1e-4,
            &format!("{what}: dbeta"),
        );
        close(
            a.running_mean.value_sync(),
            b.running_mean.value_sync(),
            1e-4,
            &format!("{what}: running mean"),
        );
    }

    #[test]
    fn batch_norm_two_dimensional_and_inference() {
        let d = ad();
        d.seed(5);
        let bn = BatchNormConfig::new(4).init(&d);
        let reference = BatchNormConfig::new(4).init(&d);
        let x = rand([16, 4], &d).require_grad();
        let ours = batch_norm(&bn, x.clone(), false);
        let theirs = reference.forward(x.clone());
        close(ours, theirs, 1e-4, "bn [16, 4]");
        // inference on the plain device uses the running statistics
        let valid = bn.valid();
        let xi = rand([3, 4], &Device::flex());
        let ours = batch_norm(&valid, xi.clone(), true);
        let theirs = relu(reference.valid().forward(xi));
        // reference's running variance is biased; compare only where the two agree closely
        assert_eq!(ours.dims(), theirs.dims());
        let (a, b) = (
            ours.into_data().try_to_vec::<f32>().unwrap(),
            theirs.into_data().try_to_vec::<f32>().unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.05, "{x} vs {y}");
        }
    }

    #[test]
    fn dropout_keeps_the_expected_share_scales_and_passes_gradients_through_the_mask() {
        let d = ad();
        let layer = burn::nn::DropoutConfig::new(0.5).init();
        seed_dropout(42);
        let x = Tensor::<2>::ones([200, 100], &d).require_grad();
        let y = dropout(&layer, x.clone());
        let v = y.clone().into_data().try_to_vec::<f32>().unwrap();
        let kept = v.iter().filter(|a| **a != 0.0).count();
        assert!(
            v.iter().all(|a| *a == 0.0 || *a == 2.0),
            "values are 0 or 1/(1-p)"
        );
        assert!(
            (9_500..10_500).contains(&kept),
            "kept {kept} of 20000 at p = 0.5"
        );
        let grads = y.clone().sum().backward();
        let gx = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(gx, v, "the gradient of sum(dropout(1)) is the mask itself");
        // same seed, same mask; another seed, another mask
        seed_dropout(42);
        let again = dropout(&layer, x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(again, v);
        seed_dropout(43);
        let other = dropout(&layer, x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_ne!(other, v);
        // no dropout without autodiff or in eval mode
        let plain = Tensor::<2>::ones([4, 4], &Device::flex());
        assert_eq!(
            dropout(&layer, plain)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
            vec![1.0; 16]
        );
    }

    #[test]
    fn max_pool_values_and_gradients_match_burn() {
        let d = ad();
        d.seed(13);
        for (shape, k) in [([2, 3, 24, 24], 2), ([3, 2, 9, 7], 2), ([1, 4, 9, 9], 3)] {
            let x = rand(shape, &d).require_grad();
            let ours = max_pool2d(x.clone(), k);
            let theirs = burn::tensor::module::max_pool2d(x.clone(), MaxPoolOptions::new([k, k]));
            let what = format!("pool {shape:?} k {k}");
            close(ours.clone(), theirs.clone(), 0.0, &what);
            let r = rand(ours.dims(), &d);
            let g1 = (ours * r.clone()).sum().backward();
            let g2 = (theirs * r).sum().backward();
            close(
                x.grad(&g1).unwrap(),
                x.grad(&g2).unwrap(),
                0.0,
                &format!("{what}: dx"),
            );
        }
        let plain = rand([2, 2, 6, 6], &Device::flex());
        close(
            max_pool2d(plain.clone(), 2),
            burn::tensor::module::max_pool2d(plain, MaxPoolOptions::new([2, 2])),
            0.0,
            "plain pool",
        );
    }
}
