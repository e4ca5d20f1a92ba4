//! GIN's neighbourhood sum on the served backends: `y = x + A x`, row `i` of `A x` the sum of
//! `x`'s rows over the edges into node `i`, as one pass over a compressed edge list (CSR) per
//! direction instead of Burn's gather, scatter-add and addition (and their three backward
//! steps).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Int, Tensor};
use rayon::prelude::*;

use crate::backend::{Ad, HostBackend, host_kernels_enabled, is_on, same};
use crate::ops::{float, primitive};

/// Edges grouped by one endpoint: the other endpoints of node `i`'s edges are
/// `others[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, PartialEq)]
struct Csr {
    offsets: Vec<usize>,
    others: Vec<u32>,
}

impl Csr {
    /// Edges `(from[e], to[e])` grouped by `to` (counting sort: `from` keeps the edge order
    /// within a group).
    fn grouped_by(to: &[usize], from: &[usize], nodes: usize) -> Csr {
        let mut offsets = vec![0usize; nodes + 1];
        for &t in to {
            offsets[t + 1] += 1;
        }
        for i in 0..nodes {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut others = vec![0u32; to.len()];
        for (&t, &f) in to.iter().zip(from) {
            others[next[t]] = f as u32;
            next[t] += 1;
        }
        Csr { offsets, others }
    }

    /// `x + A x` where row `i` of `A x` sums the rows of `x` this CSR lists for `i`.
    fn add_sums(&self, x: &[f32], dim: usize) -> Vec<f32> {
        let mut y = x.to_vec();
        y.par_chunks_mut(dim.max(1))
            .enumerate()
            .for_each(|(i, row)| {
                for &j in &self.others[self.offsets[i]..self.offsets[i + 1]] {
                    let j = j as usize;
                    for (o, v) in row.iter_mut().zip(&x[j * dim..(j + 1) * dim]) {
                        *o += v;
                    }
                }
            });
        y
    }
}

/// Host copies of index tensors (a few hundred kilobytes for a batch of graphs).
fn indices<B: Backend>(t: &Tensor<B, 1, Int>) -> Vec<usize> {
    t.to_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .expect("integer indices")
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

/// `x + sum_{(j, i) in edges} x_j` for every node `i` of `x` (`[nodes, dim]`), the edges given
/// as `src -> dst` node rows, on the host kernel with its own backward step under `Autodiff`
/// (`dx = dy + A^T dy`). `None` (for Burn's `select` and `select_assign`) unless `B` is a
/// served backend ([`crate::host_kernel_serves`]) and `x` is float32.
///
/// # Panics
/// If `src` and `dst` differ in length or name a row outside `x`.
pub fn try_add_neighbours<B: Backend>(
    x: &Tensor<B, 2>,
    src: &Tensor<B, 1, Int>,
    dst: &Tensor<B, 1, Int>,
) -> Option<Tensor<B, 2>> {
    if !host_kernels_enabled() || x.dtype() != DType::F32 {
        return None;
    }
    #[cfg(feature = "flex")]
    if let Some(y) = add_on::<burn::backend::Flex, B>(x, src, dst) {
        return Some(y);
    }
    #[cfg(feature = "ndarray")]
    if let Some(y) = add_on::<burn::backend::NdArray, B>(x, src, dst) {
        return Some(y);
    }
    None
}

/// The edges as (targets, sources), checked against the batch's `nodes`.
fn endpoints<B: Backend>(
    src: &Tensor<B, 1, Int>,
    dst: &Tensor<B, 1, Int>,
    nodes: usize,
) -> (Vec<usize>, Vec<usize>) {
    let (s, d) = (indices(src), indices(dst));
    assert_eq!(
        s.len(),
        d.len(),
        "try_add_neighbours: {} sources for {} targets",
        s.len(),
        d.len()
    );
    if let Some(bad) = s.iter().chain(&d).find(|&&v| v >= nodes) {
        panic!("try_add_neighbours: edge endpoint {bad} in a batch of {nodes} nodes");
    }
    (d, s)
}

fn add_on<HB: HostBackend, B: Backend>(
    x: &Tensor<B, 2>,
    src: &Tensor<B, 1, Int>,
    dst: &Tensor<B, 1, Int>,
) -> Option<Tensor<B, 2>> {
    let training = is_on::<HB, B>()?;
    let shape = x.dims();
    let (targets, sources) = endpoints(src, dst, shape[0]);
    let incoming = Csr::grouped_by(&targets, &sources, shape[0]);
    let forward = |x: &FloatTensor<HB>| {
        HB::from_host(HB::with_host(x, |x| incoming.add_sums(x, shape[1])), &shape)
    };
    if !training {
        let x: Tensor<HB, 2> = same(x.clone());
        return Some(same(float::<HB, 2>(forward(&primitive(x)))));
    }
    let x: Tensor<Ad<HB>, 2> = same(x.clone());
    let x = primitive(x);
    let y = forward(&x.primitive);
    let out = match HostAddNeighbours
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let outgoing = Csr::grouped_by(&sources, &targets, shape[0]);
            prep.finish((Arc::new(outgoing), shape), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(same(float::<Ad<HB>, 2>(out)))
}

/// Backward step: `dx = dy + A^T dy`, the edges grouped by source.
#[derive(Debug)]
struct HostAddNeighbours;

impl<HB: HostBackend> Backward<HB, 1> for HostAddNeighbours {
    type State = (Arc<Csr>, [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<HB>(&ops.node);
        let (outgoing, shape) = ops.state;
        if let Some(node) = &ops.parents[0] {
            let dx = HB::with_host(&dy, |dy| outgoing.add_sums(dy, shape[1]));
            grads.register::<HB>(node.id, HB::from_host(dx, &shape));
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{IndexingUpdateOp, TensorData};

    type A = Autodiff<Flex>;

    /// Burn's gather and scatter-add, the path the kernel replaces.
    fn reference<B: Backend>(
        x: Tensor<B, 2>,
        src: Tensor<B, 1, Int>,
        dst: Tensor<B, 1, Int>,
    ) -> Tensor<B, 2> {
        let messages = x.clone().select(0, src);
        x.select_assign(0, dst, messages, IndexingUpdateOp::Add)
    }

    fn vals<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().into_vec::<f32>().unwrap()
    }

    #[test]
    fn matches_gather_scatter_forward_and_backward() {
        let device = Default::default();
        // A directed graph of 5 nodes with a repeated edge, a self-loop and an isolated node.
        let edges: [(i64, i64); 7] = [(0, 1), (1, 0), (1, 2), (2, 1), (3, 1), (3, 1), (2, 2)];
        let ints = |v: Vec<i64>| {
            Tensor::<A, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), &device)
        };
        let src = ints(edges.iter().map(|e| e.0).collect());
        let dst = ints(edges.iter().map(|e| e.1).collect());
        let values: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::<A, 2>::from_data(TensorData::new(values, [5, 3]), &device).require_grad();
        let w = Tensor::<A, 2>::from_data(
            TensorData::new((0..15).map(|i| i as f32 - 7.0).collect(), [5, 3]),
            &device,
        );
        let ours = try_add_neighbours(&x, &src, &dst).expect("flex is served");
        let theirs = reference(x.clone(), src.clone(), dst.clone());
        let (a, b) = (vals(ours.clone().inner()), vals(theirs.clone().inner()));
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        let (a, b) = (vals(x.grad(&g1).unwrap()), vals(x.grad(&g2).unwrap()));
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5, "{a:?} vs {b:?}");
        }
        // Inference mode too.
        let plain = try_add_neighbours(&x.clone().inner(), &src.inner(), &dst.inner()).unwrap();
        assert_eq!(
            vals(plain),
            vals(reference(
                x.inner(),
                ints(edges.iter().map(|e| e.0).collect()).inner(),
                ints(edges.iter().map(|e| e.1).collect()).inner(),
            ))
        );
    }

    #[test]
    #[should_panic(expected = "edge endpoint 9")]
    fn an_edge_outside_the_batch_panics() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::zeros([3, 2], &device);
        let i = |v: Vec<i64>| Tensor::<Flex, 1, Int>::from_data(TensorData::new(v, [1]), &device);
        let _ = try_add_neighbours(&x, &i(vec![9]), &i(vec![0]));
    }
}
