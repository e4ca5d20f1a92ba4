use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// A network that maps a batch of inputs to one embedding row per instance.
///
/// Images, token ids and graphs all become `[batch, dim]`; every loss, negative store and
/// sampler in `contrast` works on that shape, whatever the modality.
pub trait Encoder<B: Backend>: Module<B> {
    /// One batch of the modality's input (an image tensor, token ids, a batched graph).
    type Input;

    /// Embeds a batch.
    ///
    /// # Shapes
    /// - output: `[batch, self.output_dim()]`
    fn embed(&self, input: Self::Input) -> Tensor<B, 2>;

    /// The width of the embedding rows.
    fn output_dim(&self) -> usize;
}
