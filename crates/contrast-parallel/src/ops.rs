//! What data-parallel training communicates: embeddings gathered for the loss, gradients
//! before the optimiser step, parameters at the start.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use contrast_core::InstanceRows;

use crate::{Peer, PeerError, Reduce};

/// Every peer's rows of `local` stacked in rank order, `[k * global batch, d]`, with this
/// peer's own rows still carrying their graph: the in-batch negatives of the whole group.
///
/// `local` holds `k` rows per instance of this peer's share of the batch (`k` = 1 for one
/// view's embeddings); the shares come from [`Peer::set_split`]. The other peers' rows are
/// constants here. A loss computed on the gathered rows is the loss of the global batch, the
/// same value on every peer; back-propagated on each peer it reaches that peer's rows only,
/// so the gradients of the group's peers *summed* ([`Reduce::Sum`] in
/// [`sync_gradients`]) are the global batch's gradient. This is the all-gather that
/// burn-collective lacks, as an all-reduce of a zero matrix holding each peer's rows in its own
/// slot (open_clip's gathering without `gather_with_grad`, whose full loss makes the summed
/// gradient exact).
///
/// With one peer, `local` comes back unchanged.
///
/// # Errors
/// As [`Peer::all_reduce`].
///
/// # Panics
/// If `local`'s rows are not a multiple of this peer's share.
pub fn gather_rows<B: AutodiffBackend>(
    peer: &Peer,
    local: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, PeerError> {
    gather_rows_as(peer, local, "gathering embeddings")
}

/// [`gather_rows`], its collective operation named `what` in errors.
fn gather_rows_as<B: AutodiffBackend>(
    peer: &Peer,
    local: Tensor<B, 2>,
    what: &str,
) -> Result<Tensor<B, 2>, PeerError> {
    if peer.world() == 1 {
        return Ok(local);
    }
    let [rows, dim] = local.dims();
    let (offset, total) = slot(peer, rows);
    let device = local.device();
    let slot = Tensor::<B::InnerBackend, 2>::zeros([total, dim], &device)
        .slice_assign([offset..offset + rows, 0..dim], local.clone().inner());
    let all = Tensor::<B, 2>::from_inner(peer.all_reduce(what, slot, Reduce::Sum)?);
    let mut parts = Vec::with_capacity(3);
    if offset > 0 {
        parts.push(all.clone().slice(0..offset));
    }
    parts.push(local);
    if offset + rows < total {
        parts.push(all.slice(offset + rows..total));
    }
    Ok(Tensor::cat(parts, 0))
}

/// [`gather_rows`] inside a method's step, which cannot return an error: without a peer (one
/// device, or negatives kept local) `local` itself; with one, the gathered rows, or, when the
/// gathering fails, `local` in its slot of zeros (the shape the step expects, so that it runs
/// to its end) with the error recorded for the loop ([`Peer::take_error`]), which stops before
/// using the loss.
pub fn gathered<B: AutodiffBackend>(peer: Option<&Peer>, local: Tensor<B, 2>) -> Tensor<B, 2> {
    match peer {
        None => local,
        Some(peer) => gathered_as(peer, local, "gathering embeddings"),
    }
}

/// [`gathered`] with a peer, its collective operation named `what` in errors.
fn gathered_as<B: AutodiffBackend>(peer: &Peer, local: Tensor<B, 2>, what: &str) -> Tensor<B, 2> {
    match gather_rows_as(peer, local.clone(), what) {
        Ok(all) => all,
        Err(e) => {
            peer.record_error(e);
            let [rows, dim] = local.dims();
            let (offset, total) = slot(peer, rows);
            Tensor::<B, 2>::zeros([total, dim], &local.device())
                .slice_assign([offset..offset + rows, 0..dim], local)
        }
    }
}

/// Every peer's instances of `local` (this peer's share, [`Peer::set_split`]) in rank order,
/// as constants: inputs that another peer must process, such as MoCo's key views in its
/// cross-device shuffle. One all-reduce of the instances' rows ([`InstanceRows`]); for ragged
/// rows (sentences, graphs) one more before it, of every instance's row width, so that every
/// peer pads to the widest. A failure is recorded for the loop ([`gathered`]) and the result
/// is then this peer's own instances repeated to the global batch's size (valid inputs of the
/// expected size, so the step runs to its end). `None` where the batch type cannot be written
/// as rows ([`InstanceRows::AS_ROWS`]).
pub fn gathered_instances<B: AutodiffBackend, I: InstanceRows<B>>(
    peer: &Peer,
    local: &I,
) -> Option<I> {
    let rows = local.to_rows()?.detach();
    let gather = || -> Result<I, PeerError> {
        let [n, width] = rows.dims();
        let device = rows.device();
        let mut rows = rows.clone();
        if I::RAGGED {
            let widths = Tensor::<B, 2>::full([n, 1], width as f32, &device);
            let widest = gather_rows_as(peer, widths, "gathering input widths")?
                .max()
                .into_scalar()
                .elem::<f32>() as usize;
            if widest > width {
                let pad = Tensor::<B, 2>::zeros([n, widest - width], &device);
                rows = Tensor::cat(vec![rows, pad], 1);
            }
        }
        let all = gather_rows_as(peer, rows, "gathering inputs")?;
        Ok(I::from_rows(all, local).expect("a type that writes rows reads them"))
    };
    Some(gather().unwrap_or_else(|e| {
        peer.record_error(e);
        let (n, total) = (local.instances(), peer.split().iter().sum::<usize>());
        local.select_instances(&(0..total).map(|i| i % n.max(1)).collect::<Vec<_>>())
    }))
}

/// The lead peer's permutation `perm` of a global batch on every peer (each peer passes its
/// own; the others' are not read), for a shuffle that must agree across the group (MoCo's key
/// shuffle): every peer's generator should have drawn the same, and whatever a peer drew, the
/// lead's is used. On failure the error is recorded for the loop ([`gathered`]) and `perm`
/// comes back unchanged.
pub fn shared_permutation<B: AutodiffBackend>(
    peer: &Peer,
    perm: Vec<usize>,
    device: &B::Device,
) -> Vec<usize> {
    let lead = peer.is_lead().then_some(perm.as_slice());
    let shared = share_indices_as::<B::InnerBackend>(
        peer,
        lead,
        perm.len(),
        device,
        "sharing the key shuffle",
    );
    match shared {
        Ok(Some(p)) if p.len() == perm.len() => p,
        Ok(_) => perm,
        Err(e) => {
            peer.record_error(e);
            perm
        }
    }
}

/// Where this peer's `rows` sit among every peer's, `(offset, total)`: `rows` is `k` rows per
/// instance of its share ([`Peer::set_split`]), every peer holding `k` per instance too.
///
/// # Panics
/// If `rows` is not a multiple of this peer's share.
fn slot(peer: &Peer, rows: usize) -> (usize, usize) {
    let split = peer.split();
    let mine = split[peer.rank()];
    assert!(
        mine > 0 && rows.is_multiple_of(mine),
        "gather_rows: {rows} rows for a share of {mine} instances"
    );
    let k = rows / mine;
    (
        k * split[..peer.rank()].iter().sum::<usize>(),
        k * split.iter().sum::<usize>(),
    )
}

/// Instance indices travel between peers as `f32` (the all-reduce's only type), exact below
/// this: 2^24.
pub const EXACT_INDICES: usize = 1 << 24;

/// The lead peer's batch of instance indices on every peer (`lead` is read on the lead only):
/// one all-reduce of `max + 1` values, the lead's length and indices, zeros from the others.
/// `None` when the lead had no batch (the epoch ended). Indices travel as `f32`, exact below
/// 2^24.
///
/// # Errors
/// As [`Peer::all_reduce`].
///
/// # Panics
/// If the lead's batch is longer than `max` or holds an index of 2^24 or more.
pub fn share_indices<I: burn::tensor::backend::Backend>(
    peer: &Peer,
    lead: Option<&[usize]>,
    max: usize,
    device: &I::Device,
) -> Result<Option<Vec<usize>>, PeerError> {
    share_indices_as::<I>(peer, lead, max, device, "sharing the batch")
}

/// [`share_indices`], its collective operation named `what` in errors.
pub(crate) fn share_indices_as<I: burn::tensor::backend::Backend>(
    peer: &Peer,
    lead: Option<&[usize]>,
    max: usize,
    device: &I::Device,
    what: &str,
) -> Result<Option<Vec<usize>>, PeerError> {
    let mut values = vec![0.0f32; max + 1];
    if peer.is_lead()
        && let Some(idx) = lead
    {
        assert!(
            idx.len() <= max,
            "share_indices: {} indices, at most {max}",
            idx.len()
        );
        values[0] = (idx.len() + 1) as f32;
        for (v, &i) in values[1..].iter_mut().zip(idx) {
            assert!(
                i < EXACT_INDICES,
                "share_indices: index {i} is not exact in f32"
            );
            *v = i as f32;
        }
    }
    let t = Tensor::<I, 1>::from_floats(values.as_slice(), device);
    let all = contrast_core::to_vec_f32(peer.all_reduce(what, t, Reduce::Sum)?);
    let len = all[0].round() as usize;
    Ok((len > 0).then(|| all[1..len].iter().map(|v| v.round() as usize).collect()))
}

/// The gradients of `model`'s parameters combined over the group with `op`, in one
/// all-reduce of every gradient flattened in the module's visiting order (not by parameter
/// id, which differs between processes), with `extra` values (the step's loss) reduced
/// alongside and returned.
///
/// Parameters without a gradient (frozen towers) stay without one; every peer trains the
/// same graph, so they are the same on every peer.
///
/// # Errors
/// As [`Peer::all_reduce`].
pub fn sync_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: &Peer,
    mut grads: GradientsParams,
    model: &M,
    op: Reduce,
    extra: &[f32],
) -> Result<(GradientsParams, Vec<f32>), PeerError> {
    if peer.world() == 1 {
        return Ok((grads, extra.to_vec()));
    }
    let mut take = Take::<B> {
        grads: &mut grads,
        flat: Vec::new(),
        ids: Vec::new(),
    };
    model.visit(&mut take);
    let Take { mut flat, ids, .. } = take;
    let device = flat
        .first()
        .map(|t| t.device())
        .unwrap_or_else(|| model.devices().first().cloned().unwrap_or_default());
    flat.push(Tensor::from_floats(extra, &device));
    let all = peer.all_reduce("the gradient all-reduce", Tensor::cat(flat, 0), op)?;
    let len = all.dims()[0];
    let extra_out = contrast_core::to_vec_f32(all.clone().slice(len - extra.len()..len));
    let mut put = Put::<B> {
        grads: &mut grads,
        all,
        ids,
        offset: 0,
        done: Vec::new(),
    };
    model.visit(&mut put);
    Ok((grads, extra_out))
}

struct Take<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    flat: Vec<Tensor<B::InnerBackend, 1>>,
    ids: Vec<ParamId>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Take<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.flat.push(g.flatten(0, D - 1));
            self.ids.push(param.id);
        }
    }
}

struct Put<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    all: Tensor<B::InnerBackend, 1>,
    ids: Vec<ParamId>,
    offset: usize,
    /// Parameters already put back: a parameter visited twice (tied weights) gave one
    /// gradient to `Take`.
    done: Vec<ParamId>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Put<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.ids.contains(&param.id) || self.done.contains(&param.id) {
            return;
        }
        self.done.push(param.id);
        let shape = param.lazy_shape();
        let n = shape.num_elements();
        let g = self
            .all
            .clone()
            .slice(self.offset..self.offset + n)
            .reshape(shape);
        self.offset += n;
        self.grads.register::<B::InnerBackend, D>(param.id, g);
    }
}

/// `module` with every float parameter replaced by the lead peer's (rank 0), so that every
/// peer starts from the same weights whatever its own initialisation drew: one all-reduce of
/// every parameter flattened in visiting order (the lead's values, zeros from the others).
///
/// Nothing is communicated while a parameter is borrowed: peers of one process may share
/// state (Burn's batch-norm running statistics are shared between clones of a module, and
/// locked while visited).
///
/// # Errors
/// As [`Peer::all_reduce`].
pub fn broadcast_module<B: AutodiffBackend, M: Module<B>>(
    peer: &Peer,
    module: M,
) -> Result<M, PeerError> {
    if peer.world() == 1 {
        return Ok(module);
    }
    // Batch norm keeps its latest running statistics per thread until they are folded into the
    // stored value, which visiting reads and mapping writes: fold them first (a record does;
    // clones share the statistics), or the lead would send stale ones and a peer's own latest
    // would later overwrite what it received.
    let _ = module.clone().into_record();
    let mut values = Values::<B> {
        flat: Vec::new(),
        lead: peer.is_lead(),
    };
    module.visit(&mut values);
    if values.flat.is_empty() {
        return Ok(module);
    }
    let all = peer.all_reduce(
        "sharing the lead peer's weights",
        Tensor::cat(values.flat, 0),
        Reduce::Sum,
    )?;
    Ok(module.map(&mut Replace::<B> { all, offset: 0 }))
}

struct Values<B: AutodiffBackend> {
    flat: Vec<Tensor<B::InnerBackend, 1>>,
    lead: bool,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Values<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let v = param.val().inner().flatten(0, D - 1);
        self.flat.push(if self.lead { v } else { v.zeros_like() });
    }
}

struct Replace<B: AutodiffBackend> {
    all: Tensor<B::InnerBackend, 1>,
    offset: usize,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Replace<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let v = self
            .all
            .clone()
            .slice(self.offset..self.offset + n)
            .reshape(shape);
        self.offset += n;
        let v = Tensor::<B, D>::from_inner(v);
        let v = if tensor.is_require_grad() {
            v.require_grad()
        } else {
            v
        };
        Param::from_mapped_value(id, v, mapper)
    }
}

/// Checks that every peer holds the same trained parameters: each tensor's sum, compared with
/// the group's mean of it (meant for debug builds, after each optimiser step). Tensors without
/// gradient (batch norm's running statistics, which follow each peer's own share unless batch
/// norm is synchronised; frozen towers) are compared too where `all_tensors`.
///
/// # Errors
/// [`PeerError::Diverged`] naming the first differing tensor, or as [`Peer::all_reduce`].
pub fn check_same_parameters<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: &Peer,
    module: &M,
    step: usize,
    all_tensors: bool,
) -> Result<(), PeerError> {
    if peer.world() == 1 {
        return Ok(());
    }
    let mut sums = Sums::<B> {
        values: Vec::new(),
        all: all_tensors,
        _b: core::marker::PhantomData,
    };
    module.visit(&mut sums);
    let mine = sums.values;
    let device = module.devices().first().cloned().unwrap_or_default();
    let mean = peer.all_reduce(
        "the parameter check",
        Tensor::<B::InnerBackend, 1>::from_floats(mine.as_slice(), &device),
        Reduce::Mean,
    )?;
    let mean = contrast_core::to_vec_f32(mean);
    for (i, (a, m)) in mine.iter().zip(&mean).enumerate() {
        if (a - m).abs() > 1e-5 * (1.0 + a.abs()) {
            return Err(PeerError::Diverged {
                me: peer.describe(),
                step,
                detail: format!("tensor {i}: sum {a} here, {m} on average"),
            });
        }
    }
    Ok(())
}

struct Sums<B> {
    values: Vec<f32>,
    /// Tensors without gradient too.
    all: bool,
    _b: core::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Sums<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        if self.all || t.is_require_grad() {
            let s = t.inner().sum().into_scalar();
            self.values.push(burn::tensor::ElementConversion::elem(s));
        }
    }
}
