use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// The inner (non-autodiff) version of a method's model, used for evaluation.
pub type InnerModel<B, M> = <<M as Method<B>>::Model as AutodiffModule<B>>::InnerModule;

/// A contrastive method on images, as the training loop sees it: a loss over two augmented
/// views of a batch, optional state updated after each optimiser step (a memory bank, a queue,
/// a momentum encoder) and the representation used for evaluation.
///
/// Methods are compositions of `contrast-encoders`, `contrast-losses` and
/// `contrast-negatives` parts; the loop owns data, optimiser, schedule and checkpoints.
pub trait Method<B: AutodiffBackend> {
    /// The network trained by the optimiser.
    type Model: AutodiffModule<B> + Clone + core::fmt::Debug;

    /// Short lowercase name (`simclr`), used in reports and checkpoints.
    fn name(&self) -> &'static str;

    /// The loss of one batch. `first` and `second` are two augmented views
    /// (`[batch, c, h, w]` each) of the dataset instances `indices`.
    fn loss(
        &mut self,
        model: &Self::Model,
        first: Tensor<B, 4>,
        second: Tensor<B, 4>,
        indices: &[usize],
    ) -> Tensor<B, 1>;

    /// Called after every optimiser step with the updated model.
    fn after_step(&mut self, _model: &Self::Model) {}

    /// Asks the method to keep, from each [`loss`](Self::loss) call, the batch's detached
    /// projections for [`take_embeddings`](Self::take_embeddings) (used by samplers that read
    /// embeddings, and by the batch-similarity diagnostic).
    fn keep_embeddings(&mut self, _on: bool) {}

    /// The projections kept from the last batch: row-major `[batch, dim]` on the host, rows in
    /// the order of the batch's indices.
    fn take_embeddings(&mut self) -> Option<(Vec<f32>, usize)> {
        None
    }

    /// The representation of `images` used by the kNN monitor and the linear probe.
    fn represent(
        &self,
        model: &InnerModel<B, Self>,
        images: Tensor<B::InnerBackend, 4>,
    ) -> Tensor<B::InnerBackend, 2>;

    /// State other than the model's weights that a checkpoint must hold.
    ///
    /// # Errors
    /// A message when the state cannot be serialised.
    fn state_bytes(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    /// Restores what [`state_bytes`](Self::state_bytes) saved.
    ///
    /// # Errors
    /// A message when the bytes do not fit this method.
    fn load_state_bytes(&mut self, _bytes: Vec<u8>, _device: &B::Device) -> Result<(), String> {
        Ok(())
    }
}
