use burn::tensor::backend::Backend;

/// Which two views of each instance a method trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewMode {
    /// Two independently augmented views (SimCLR, MoCo; InstDisc and DIM use the first).
    #[default]
    TwoAugmented,
    /// The instance itself (not augmented) and one augmented view (InvaSpread).
    PlainAndAugmented,
}

/// The class labels of a split, where it has them (image classes, graph classes); sentence
/// corpora have none.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// One label per instance, each below `classes`.
    pub values: &'a [u32],
    /// Number of classes.
    pub classes: usize,
}

/// The data side of a modality, for one split: turns batches of instance indices into the
/// two training views of each instance and into plain (not augmented) inputs for evaluation.
///
/// The training loop calls [`host_views`](Views::host_views) on its prefetch thread while the
/// device computes the previous batch, then [`to_device`](Views::to_device) on the main
/// thread. Implementations must make each view a function of (seed, epoch, instance, view)
/// only, so that batches repeat exactly whatever the thread count and after a resume.
pub trait Views: Sync {
    /// A batch's views on the host (sent from the prefetch thread).
    type Host: Send;
    /// A batch's views on a device: the training input of a method.
    type Batch<B: Backend>;
    /// Plain inputs on a device: what an encoder embeds for evaluation.
    type Input<B: Backend>;

    /// Number of instances in the split.
    fn len(&self) -> usize;

    /// True for a split without instances.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The two views `mode` names of the instances `indices`, for epoch `epoch`, on the host.
    fn host_views(&self, mode: ViewMode, indices: &[usize], epoch: usize) -> Self::Host;

    /// Moves host views to `device`.
    fn to_device<B: Backend>(&self, host: Self::Host, device: &B::Device) -> Self::Batch<B>;

    /// The instances `indices` as they are (normalised, not augmented), on `device`.
    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Self::Input<B>;

    /// The split's class labels, if it has any.
    fn labels(&self) -> Option<Labels<'_>> {
        None
    }
}
