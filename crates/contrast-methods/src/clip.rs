use core::marker::PhantomData;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use burn::module::AutodiffModule;
use contrast_core::{
    AutodiffEncoder, CrossModal, Encoder, EncoderConfig, Error, Views, to_vec_f32,
};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_eval::zero_shot_top1;
use contrast_losses::{ClipLoss, ClipLossConfig};

use crate::method::join_in_batch;
use crate::{Method, MethodInfo, Monitor, Paradigm, StepOutput};
use contrast_parallel::{Peer, Reduce, gathered};

/// The two-tower network of CLIP: an image tower and a text tower, each a backbone and a linear
/// projection into one embedding space, and the loss's learnable logit scale.
///
/// As an [`Encoder`] it is its image tower's backbone (so the kNN monitor and the linear probe
/// evaluate the image representation).
#[derive(Module, Debug)]
pub struct ClipNet<B: Backend, I, T> {
    /// The image tower.
    pub image: ProjectedEncoder<B, I>,
    /// The text tower.
    pub text: ProjectedEncoder<B, T>,
    /// The symmetric cross-entropy with its learnable logit scale.
    pub loss: ClipLoss<B>,
}

impl<B: Backend, I: Encoder<B>, T: Encoder<B>> ClipNet<B, I, T> {
    /// Image embeddings in the shared space, `[batch, embed]` (before normalisation).
    pub fn embed_images(&self, images: I::Input) -> Tensor<B, 2> {
        self.image.projection(images)
    }

    /// Text embeddings in the shared space, `[batch, embed]` (before normalisation).
    pub fn embed_texts(&self, texts: T::Input) -> Tensor<B, 2> {
        self.text.projection(texts)
    }
}

impl<B: Backend, I: Encoder<B>, T: Encoder<B>> Encoder<B> for ClipNet<B, I, T> {
    type Input = I::Input;

    fn embed(&self, input: I::Input) -> Tensor<B, 2> {
        self.image.embed(input)
    }

    fn output_dim(&self) -> usize {
        self.image.output_dim()
    }
}

/// The [`ClipNet`] that two backbone configs build.
pub type ClipNetOf<B, IC, TC> =
    ClipNet<B, <IC as EncoderConfig>::Encoder<B>, <TC as EncoderConfig>::Encoder<B>>;

/// Configuration of [`Clip`] and its [`ClipNet`].
///
/// Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
/// ICML 2021, <https://arxiv.org/abs/2103.00020>: both towers project linearly into one space,
/// the logit scale starts at `1 / 0.07` and is clamped at 100. Locking a tower (Zhai et al.,
/// "LiT: Zero-Shot Transfer with Locked-image text Tuning", CVPR 2022) freezes its backbone;
/// its projection and the logit scale still train. A locked text tower is best fed as
/// [`contrast_encoders::Precomputed`] features computed once (no forward pass per step, no
/// dropout); a locked image tower still runs its batch norm in training mode, so its running
/// statistics adapt while its weights stay.
#[derive(Config, Debug)]
pub struct ClipConfig {
    /// The image projection (CLIP: one linear layer).
    pub image_head: ProjectionHeadConfig,
    /// The text projection (CLIP: one linear layer).
    pub text_head: ProjectionHeadConfig,
    /// The loss and its logit scale.
    pub loss: ClipLossConfig,
    /// Freeze the image backbone.
    #[config(default = false)]
    pub lock_image: bool,
    /// Freeze the text backbone.
    #[config(default = false)]
    pub lock_text: bool,
    /// On several peers with gathered negatives: each peer computes the loss of its own rows
    /// against every column (open_clip's `local_loss`: `N x n` products per peer instead of
    /// `N x N`), with the exact gradient of the global loss
    /// ([`ClipLoss::forward_local`](contrast_losses::ClipLoss::forward_local)). Without it every
    /// peer computes the whole loss. No effect on one device.
    #[config(default = false)]
    pub local_loss: bool,
}

impl ClipConfig {
    /// Linear projections from towers of widths `image_dim` and `text_dim` into an `embed`-wide
    /// space, CLIP's loss defaults.
    pub fn for_towers(image_dim: usize, text_dim: usize, embed: usize) -> Self {
        let linear = |input: usize| {
            ProjectionHeadConfig::new(input, input, embed)
                .with_layers(1)
                .with_batch_norm(false)
        };
        ClipConfig::new(linear(image_dim), linear(text_dim), ClipLossConfig::new())
    }

    /// Checks the projections and the loss.
    ///
    /// # Errors
    /// `InvalidConfig` for a bad head or loss setting, or projections into spaces of different
    /// widths.
    pub fn validate(&self) -> Result<(), Error> {
        self.image_head.validate()?;
        self.text_head.validate()?;
        self.loss.validate()?;
        if self.image_head.output != self.text_head.output {
            return Err(Error::invalid_config(
                "text_head.output",
                self.text_head.output,
                format!(
                    "both towers project into one space: the image head gives {}",
                    self.image_head.output
                ),
            ));
        }
        Ok(())
    }

    /// The network from two backbone configs, initialised in the order image backbone, text
    /// backbone, projections, logit scale.
    ///
    /// # Errors
    /// As [`validate`](Self::validate), and when a projection's input is not its backbone's
    /// width.
    pub fn init_model<B: Backend, IC: EncoderConfig, TC: EncoderConfig>(
        &self,
        image: &IC,
        text: &TC,
        device: &B::Device,
    ) -> Result<ClipNetOf<B, IC, TC>, Error> {
        image.validate()?;
        text.validate()?;
        let image = image.init::<B>(device);
        let text = text.init::<B>(device);
        self.assemble(image, text, device)
    }

    /// The network around two built (for example pretrained) backbones.
    ///
    /// # Errors
    /// As [`init_model`](Self::init_model).
    pub fn assemble<B: Backend, I: Encoder<B>, T: Encoder<B>>(
        &self,
        image: I,
        text: T,
        device: &B::Device,
    ) -> Result<ClipNet<B, I, T>, Error> {
        self.validate()?;
        for (name, head, width) in [
            ("image_head.input", &self.image_head, image.output_dim()),
            ("text_head.input", &self.text_head, text.output_dim()),
        ] {
            if head.input != width {
                return Err(Error::invalid_config(
                    name,
                    head.input,
                    format!("the backbone gives {width} features"),
                ));
            }
        }
        let image = if self.lock_image {
            image.no_grad()
        } else {
            image
        };
        let text = if self.lock_text { text.no_grad() } else { text };
        Ok(ClipNet {
            image: ProjectedEncoder {
                backbone: image,
                head: self.image_head.init(device),
            },
            text: ProjectedEncoder {
                backbone: text,
                head: self.text_head.init(device),
            },
            loss: self.loss.init(device),
        })
    }

    /// The method.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init(&self) -> Result<Clip, Error> {
        self.validate()?;
        Ok(Clip {
            init_temperature: self.loss.init_temperature,
            lock_image: self.lock_image,
            lock_text: self.lock_text,
            local_loss: self.local_loss,
            peer: None,
        })
    }
}

/// CLIP's training objective over [`ClipNet`]: each image's caption is its positive, the
/// batch's other captions its negatives, and the same for each caption; see [`ClipConfig`].
#[derive(Debug, Clone)]
pub struct Clip {
    init_temperature: f64,
    lock_image: bool,
    lock_text: bool,
    local_loss: bool,
    /// The group whose embeddings are gathered as negatives, if any.
    peer: Option<Peer>,
}

impl<B, I, T> Method<B, ClipNet<B, I, T>> for Clip
where
    B: AutodiffBackend,
    I: AutodiffEncoder<B>,
    T: AutodiffEncoder<B>,
{
    type Batch = CrossModal<I::Input, T::Input>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        let locked = match (self.lock_image, self.lock_text) {
            (false, false) => "",
            (true, false) => ", image backbone locked",
            (false, true) => ", text backbone locked",
            (true, true) => ", both backbones locked",
        };
        MethodInfo {
            name: "clip".into(),
            paradigm: Paradigm::InBatch,
            negatives_per_anchor: batch_size.saturating_sub(1),
            staleness: None,
            description: format!(
                "CLIP symmetric cross-entropy, learnable logit scale from temperature {}{locked}",
                self.init_temperature
            ),
        }
    }

    fn step(
        &mut self,
        model: &ClipNet<B, I, T>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let images = model.embed_images(batch.first);
        let texts = model.embed_texts(batch.second);
        let loss = match &self.peer {
            None => model.loss.forward(images.clone(), texts.clone()),
            Some(p) if self.local_loss => {
                // The peer's rows against every column, the other rows' gradient through
                // the gathered row normalisers.
                let q = Some(p);
                let (i, t) = (images.clone(), texts.clone());
                let (all_i, all_t) = (gathered(q, i.clone()), gathered(q, t.clone()));
                let (li, lt) =
                    model
                        .loss
                        .row_normalizers(i.clone(), t.clone(), all_i.clone(), all_t.clone());
                let (all_li, all_lt) = (gathered(q, li), gathered(q, lt));
                let offset = p.split()[..p.rank()].iter().sum();
                let share = model
                    .loss
                    .forward_local(i, t, all_i, all_t, offset, all_li, all_lt);
                // The loop reads a summed loss as every peer's copy of the global one: the
                // value is the share times the peers, the gradient the share's.
                let others = (p.world() - 1) as f64;
                share.clone() + share.detach() * others
            }
            Some(p) => {
                // Every peer computes the global loss; the logit scale enters it directly, so
                // only the lead peer's copy may pass it a gradient (the peers' gradients are
                // summed).
                let loss = if p.is_lead() {
                    model.loss.clone()
                } else {
                    model.loss.clone().map(&mut ValueOnly)
                };
                let (p, i, t) = (Some(p), images.clone(), texts.clone());
                loss.forward(gathered(p, i), gathered(p, t))
            }
        };
        StepOutput::new(loss, vec![images, texts])
    }

    fn join(&mut self, peer: &Peer, gather_negatives: bool) -> Result<Reduce, Error> {
        Ok(join_in_batch(&mut self.peer, peer, gather_negatives))
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _: PhantomData<B>, _: ()) {}
}

/// Maps every parameter `p` to `0 p + detach(p)`: the same value, a zero gradient (a
/// gradient that exists, so that every peer sends the same set of gradients).
struct ValueOnly;

impl<B: Backend> burn::module::ModuleMapper<B> for ValueOnly {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<B, D>>,
    ) -> burn::module::Param<Tensor<B, D>> {
        let (id, t, mapper) = param.consume();
        let v = t.clone().mul_scalar(0.0).add(t.detach());
        burn::module::Param::from_mapped_value(id, v, mapper)
    }
}

/// The name under which [`ZeroShotMonitor`] records its accuracy.
pub const ZERO_SHOT_TOP1: &str = "zero_shot_top1";

/// Embeddings of `images` (instances `image_indices`) and `texts` (`text_indices`) in the
/// shared space of `net`, as host rows, in batches of `batch_size`; returns both and the width.
#[allow(clippy::too_many_arguments)]
pub fn clip_embeddings<B, I, T, VI, VT>(
    net: &ClipNet<B, I, T>,
    images: &VI,
    image_indices: &[usize],
    texts: &VT,
    text_indices: &[usize],
    batch_size: usize,
    device: &B::Device,
) -> (Vec<f32>, Vec<f32>, usize)
where
    B: Backend,
    I: Encoder<B>,
    T: Encoder<B>,
    VI: Views<Input<B> = I::Input>,
    VT: Views<Input<B> = T::Input>,
{
    let mut image_rows = Vec::new();
    let mut text_rows = Vec::new();
    let mut dim = 0;
    for chunk in image_indices.chunks(batch_size.max(1)) {
        let z = net.embed_images(images.plain::<B>(chunk, device));
        dim = z.dims()[1];
        image_rows.extend(to_vec_f32(z));
    }
    for chunk in text_indices.chunks(batch_size.max(1)) {
        let z = net.embed_texts(texts.plain::<B>(chunk, device));
        dim = z.dims()[1];
        text_rows.extend(to_vec_f32(z));
    }
    (image_rows, text_rows, dim)
}

/// Zero-shot classification accuracy of a [`ClipNet`] during training: class prompts through
/// the text tower (averaged per class, [`contrast_eval::zero_shot_top1`]) against labelled
/// images through the image tower.
#[derive(Debug, Clone)]
pub struct ZeroShotMonitor<'a, VI, VT> {
    images: &'a VI,
    prompts: &'a VT,
    prompt_class: Vec<usize>,
    indices: Vec<usize>,
    batch_size: usize,
}

impl<'a, VI: Views, VT: Views> ZeroShotMonitor<'a, VI, VT> {
    /// The monitor over `subset` images of `images` (0 = all, drawn once from `seed`) and the
    /// prompts `prompts`, prompt `j` naming class `prompt_class[j]`.
    ///
    /// # Errors
    /// `InvalidConfig` when the images have no labels, `prompt_class` is not one class per
    /// prompt, or the batch size is zero.
    pub fn new(
        images: &'a VI,
        prompts: &'a VT,
        prompt_class: Vec<usize>,
        subset: usize,
        seed: u64,
        batch_size: usize,
    ) -> Result<Self, crate::Error> {
        if images.labels().is_none() {
            return Err(Error::invalid_config(
                "monitor",
                "zero-shot",
                "the images have no class labels",
            )
            .into());
        }
        if prompt_class.len() != prompts.len() {
            return Err(Error::invalid_config(
                "prompt_class",
                prompt_class.len(),
                format!("one class per prompt ({})", prompts.len()),
            )
            .into());
        }
        contrast_core::ensure_positive("eval_batch_size", batch_size as f64)?;
        Ok(ZeroShotMonitor {
            images,
            prompts,
            prompt_class,
            indices: crate::subset_indices(images.len(), subset, seed ^ 0x7a73),
            batch_size,
        })
    }
}

impl<B, I, T, VI, VT> Monitor<B, ClipNet<B, I, T>> for ZeroShotMonitor<'_, VI, VT>
where
    B: AutodiffBackend,
    I: AutodiffEncoder<B>,
    T: AutodiffEncoder<B>,
    VI: Views<Input<B::InnerBackend> = <I::InnerModule as Encoder<B::InnerBackend>>::Input>,
    VT: Views<Input<B::InnerBackend> = <T::InnerModule as Encoder<B::InnerBackend>>::Input>,
{
    fn name(&self) -> &str {
        ZERO_SHOT_TOP1
    }

    fn measure(
        &mut self,
        model: &ClipNet<B, I, T>,
        device: &B::Device,
    ) -> Result<f64, crate::Error> {
        let inner = model.valid();
        let prompts: Vec<usize> = (0..self.prompts.len()).collect();
        let (images, texts, dim) = clip_embeddings(
            &inner,
            self.images,
            &self.indices,
            self.prompts,
            &prompts,
            self.batch_size,
            device,
        );
        let labels = self.images.labels().expect("checked in new");
        let picked: Vec<u32> = self.indices.iter().map(|&i| labels.values[i]).collect();
        Ok(zero_shot_top1(
            &images,
            &texts,
            dim,
            &self.prompt_class,
            &picked,
            labels.classes,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use contrast_core::testing::{assert_close, finite_difference};
    use contrast_core::to_vec_f32;
    use contrast_encoders::{BlockKind, PrecomputedConfig, ResNetConfig, Stem};

    fn rows<Bk: Backend>(v: &[f64], n: usize, d: usize, device: &Bk::Device) -> Tensor<Bk, 2> {
        let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(f, [n, d]), device)
    }

    /// The step's loss as an f64 transcription: linear projections `x W + b` of both feature
    /// sets, unit rows, scaled cosines, symmetric cross-entropy.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f64],
        y: &[f64],
        wi: &[f64],
        wt: &[f64],
        (n, d, e): (usize, usize, usize),
        bi: &[f64],
        bt: &[f64],
        s: f64,
    ) -> f64 {
        let project = |v: &[f64], w: &[f64], b: &[f64]| -> Vec<Vec<f64>> {
            (0..n)
                .map(|r| {
                    let row: Vec<f64> = (0..e)
                        .map(|c| b[c] + (0..d).map(|k| v[r * d + k] * w[k * e + c]).sum::<f64>())
                        .collect();
                    let norm = row.iter().map(|a| a * a).sum::<f64>().sqrt();
                    row.into_iter().map(|a| a / norm).collect()
                })
                .collect()
        };
        let (a, b) = (project(x, wi, bi), project(y, wt, bt));
        let scale = s.exp().min(100.0);
        let logit = |i: usize, j: usize| scale * (0..e).map(|c| a[i][c] * b[j][c]).sum::<f64>();
        let mut total = 0.0;
        for i in 0..n {
            let rows = (0..n).map(|j| logit(i, j).exp()).sum::<f64>().ln() - logit(i, i);
            let cols = (0..n).map(|j| logit(j, i).exp()).sum::<f64>().ln() - logit(i, i);
            total += rows + cols;
        }
        total / (2.0 * n as f64)
    }

    fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        to_vec_f32(t).into_iter().map(f64::from).collect()
    }

    /// The full step on precomputed features of both towers: loss and the gradients of both
    /// projections and of the logit scale against the f64 transcription.
    fn step_matches_reference<Bk: AutodiffBackend>(device: &Bk::Device) {
        let (n, d, e) = (4, 3, 2);
        let cfg = ClipConfig::for_towers(d, d, e);
        let net = cfg
            .init_model::<Bk, _, _>(
                &PrecomputedConfig { dim: d },
                &PrecomputedConfig { dim: d },
                device,
            )
            .unwrap();
        let x: Vec<f64> = (0..n * d)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0)
            .collect();
        let y: Vec<f64> = (0..n * d)
            .map(|i| ((i * 5 % 13) as f64 - 6.0) / 5.0)
            .collect();
        let batch = CrossModal {
            first: rows::<Bk>(&x, n, d, device),
            second: rows::<Bk>(&y, n, d, device),
        };
        let out = Method::<Bk, _>::step(&mut cfg.init().unwrap(), &net, batch, &[0, 1, 2, 3]);
        let grads = out.loss.backward();
        let wi = values(net.image.head.linears()[0].weight.val());
        let bi = values(net.image.head.linears()[0].bias.as_ref().unwrap().val());
        let wt = values(net.text.head.linears()[0].weight.val());
        let bt = values(net.text.head.linears()[0].bias.as_ref().unwrap().val());
        let s = values(net.loss.logit_scale.val())[0];
        let f = |wi: &[f64], wt: &[f64], s: f64| reference(&x, &y, wi, wt, (n, d, e), &bi, &bt, s);
        assert_close(&to_vec_f32(out.loss), &[f(&wi, &wt, s) as f32], 2e-5);
        let as32 = |v: Vec<f64>| v.into_iter().map(|g| g as f32).collect::<Vec<_>>();
        let gwi = net.image.head.linears()[0]
            .weight
            .val()
            .grad(&grads)
            .unwrap();
        assert_close(
            &to_vec_f32(gwi),
            &as32(finite_difference(|w| f(w, &wt, s), &wi, 1e-6)),
            2e-4,
        );
        let gwt = net.text.head.linears()[0]
            .weight
            .val()
            .grad(&grads)
            .unwrap();
        assert_close(
            &to_vec_f32(gwt),
            &as32(finite_difference(|w| f(&wi, w, s), &wt, 1e-6)),
            2e-4,
        );
        let gs = net.loss.logit_scale.val().grad(&grads).unwrap();
        let ds = finite_difference(|v| f(&wi, &wt, v[0]), &[s], 1e-6);
        assert_close(&to_vec_f32(gs), &as32(ds), 2e-4);
    }

    /// A locked image backbone receives no gradient; its projection and the text side do.
    fn locked_tower_gets_no_gradient<Bk: AutodiffBackend>(device: &Bk::Device) {
        let backbone = ResNetConfig::new(1, BlockKind::Basic, vec![1], vec![4], Stem::Cifar, 4);
        let cfg = ClipConfig::for_towers(4, 3, 2).with_lock_image(true);
        let net = cfg
            .init_model::<Bk, _, _>(&backbone, &PrecomputedConfig { dim: 3 }, device)
            .unwrap();
        let batch = CrossModal {
            first: Tensor::<Bk, 4>::random(
                [3, 1, 8, 8],
                burn::tensor::Distribution::Default,
                device,
            ),
            second: rows::<Bk>(
                &[0.1, 0.2, 0.3, -0.3, 0.2, 0.1, 0.5, -0.5, 0.0],
                3,
                3,
                device,
            ),
        };
        let out = Method::<Bk, _>::step(&mut cfg.init().unwrap(), &net, batch, &[0, 1, 2]);
        let grads = out.loss.backward();
        let backbone = crate::testing::with_grads::<Bk, _>(&net.image.backbone, &grads);
        assert_eq!(
            backbone.iter().filter(|&&g| g).count(),
            0,
            "a locked backbone parameter got a gradient"
        );
        assert!(!backbone.is_empty());
        let mut heads = crate::testing::with_grads::<Bk, _>(&net.image.head, &grads);
        heads.extend(crate::testing::with_grads::<Bk, _>(&net.text.head, &grads));
        assert_eq!(
            heads.iter().filter(|&&g| !g).count(),
            0,
            "a projection got no gradient"
        );
    }

    contrast_core::backend_tests!(step_matches_reference, locked_tower_gets_no_gradient);

    #[test]
    fn projections_must_meet_in_one_space() {
        let mut cfg = ClipConfig::for_towers(4, 3, 2);
        cfg.text_head.output = 5;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("text_head.output"), "{e}");
    }
}
