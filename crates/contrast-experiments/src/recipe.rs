//! Image data and the training recipe per dataset.

use contrast_encoders::{ResNetConfig, Stem};
use contrast_vision::{
    FASHION_MNIST_CLASSES, ImageDataset, ImageShape, SimClrAugmentConfig, Splits, load_cifar10,
    load_fashion_mnist, load_image_folder, load_mnist_format, load_stl10,
};

use contrast_methods::OptimizerKind;

use crate::Error;
use crate::options::{DatasetKind, MethodKind, ReproduceOptions};

/// Loads the dataset `opts` names.
pub(crate) fn load(opts: &ReproduceOptions) -> Result<Splits, Error> {
    let need = |what: &str| {
        Error::Vision(contrast_vision::Error::NotFound {
            what: what.into(),
            hint: "pass --data DIR".into(),
        })
    };
    Ok(match opts.dataset {
        DatasetKind::FashionMnist => match &opts.data {
            Some(d) => load_mnist_format(d, &FASHION_MNIST_CLASSES)?,
            None => load_fashion_mnist(None, &opts.cache)?,
        },
        DatasetKind::Cifar10 => {
            load_cifar10(opts.data.as_deref().ok_or_else(|| need("CIFAR-10"))?)?
        }
        DatasetKind::Stl10 => load_stl10(opts.data.as_deref().ok_or_else(|| need("STL-10"))?)?,
        DatasetKind::Folder => {
            let dir = opts
                .data
                .as_deref()
                .ok_or_else(|| need("the image folder"))?;
            let all = load_image_folder(
                dir,
                ImageShape {
                    channels: 3,
                    height: 96,
                    width: 96,
                },
            )?;
            let (train, test) = all.split(0.2, opts.seed)?;
            Splits { train, test }
        }
    })
}

/// The recipe per dataset: backbone, augmentations, batch, epochs, learning rate, temperature.
pub(crate) struct Recipe {
    pub(crate) backbone: ResNetConfig,
    /// The backbone's name, `{widths}` standing for its widths ([`Recipe::backbone_name`]).
    backbone_label: &'static str,
    /// Whether [`Recipe::set_widths`] changed the backbone's widths.
    widths_changed: bool,
    pub(crate) augment: SimClrAugmentConfig,
    pub(crate) batch_size: usize,
    /// Epochs of a single method's job.
    pub(crate) epochs: usize,
    /// Epochs per method of the paradigms comparison (seven methods share one budget).
    pub(crate) comparison_epochs: usize,
    /// The backbone widths of the paradigms comparison when they differ from a single job's.
    pub(crate) comparison_widths: Option<Vec<usize>>,
    pub(crate) learning_rate: f64,
    pub(crate) optimizer: OptimizerKind,
    pub(crate) weight_decay: f64,
    /// SimCLR's and DCL's temperature in this recipe (the other methods keep their papers').
    pub(crate) in_batch_temperature: f64,
}

impl Recipe {
    /// Replaces the backbone's channels per stage (the stem takes the first).
    ///
    /// # Errors
    /// `InvalidConfig` when `widths` does not give one width per stage of the recipe's backbone,
    /// or gives a zero width.
    pub(crate) fn set_widths(&mut self, widths: &[usize]) -> Result<(), Error> {
        let stages = self.backbone.layers.len();
        if widths.len() != stages {
            return Err(contrast_core::Error::invalid_config(
                "widths",
                format!("{widths:?}"),
                format!("this recipe's backbone has {stages} stages: give one width per stage"),
            )
            .into());
        }
        let backbone = ResNetConfig {
            widths: widths.to_vec(),
            stem_width: widths[0],
            ..self.backbone.clone()
        };
        backbone.validate()?;
        // The recipe's own widths given again leave its name (and checkpoint identity) as is.
        self.widths_changed |= backbone.widths != self.backbone.widths
            || backbone.stem_width != self.backbone.stem_width;
        self.backbone = backbone;
        Ok(())
    }

    /// The backbone's name as reports and checkpoints record it: the recipe's, with the widths
    /// in place of `{widths}`, or after it when they were changed and it names none.
    pub(crate) fn backbone_name(&self) -> String {
        let w: Vec<String> = self.backbone.widths.iter().map(|w| w.to_string()).collect();
        let w = w.join("/");
        if self.backbone_label.contains("{widths}") {
            self.backbone_label.replace("{widths}", &w)
        } else if self.widths_changed {
            format!("{}, widths {w}", self.backbone_label)
        } else {
            self.backbone_label.to_string()
        }
    }

    /// The peak learning rate of `method` when none is given: the recipe's, except for
    /// InstDisc, which trains at a quarter of it. Its memory bank refreshes a row once per epoch,
    /// so an encoder that moves at the rate the other methods use drifts away from the rows it
    /// is contrasted with and ends below its random initialisation; at a quarter it learns
    /// (`docs/paradigms.md`, "InstDisc below its random start"). On the CIFAR-10 recipe that
    /// quarter is the reference code's SGD rate of 0.03.
    pub(crate) fn learning_rate_for(&self, method: MethodKind) -> f64 {
        match method {
            MethodKind::InstDisc => self.learning_rate / 4.0,
            _ => self.learning_rate,
        }
    }
}

pub(crate) fn recipe(kind: DatasetKind, train: &ImageDataset) -> Recipe {
    let (mean, std) = train.channel_stats();
    match kind {
        // 28x28 grayscale: the small ResNet with a 256-wide last stage, CIFAR-strength jitter
        // without blur, crops of at least 20% of the image (8% of 28x28 is an 8x8 patch). The
        // 256-wide representation is what lifts the linear probe: at 128 (the library's
        // `small`) it stayed near 86.5 from 14 to 24 epochs (docs/recipes.md). A single job's
        // epochs fill about 15 minutes on two CPU cores (README: measured time and accuracy);
        // the comparison of seven methods keeps 2 per method on the library's 128-wide `small`:
        // at 2 epochs the 256-wide last stage leaves InstDisc below its random start on kNN
        // (docs/paradigms.md).
        DatasetKind::FashionMnist => Recipe {
            backbone: ResNetConfig {
                widths: vec![32, 64, 256],
                ..ResNetConfig::small(1)
            },
            backbone_label: "small ResNet (3x3 stride-2 stem, widths {widths}, one basic block per stage)",
            widths_changed: false,
            augment: SimClrAugmentConfig::cifar(mean, std).with_crop_min_scale(0.2),
            batch_size: 256,
            epochs: 10,
            comparison_epochs: 2,
            comparison_widths: Some(vec![32, 64, 128]),
            learning_rate: 2e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 1e-6,
            in_batch_temperature: 0.5,
        },
        // SimCLR's CIFAR-10 recipe (ResNet-18 with the CIFAR stem, strength 0.5, no blur) with
        // the optimiser of lightly's CIFAR-10 benchmark (SGD, momentum 0.9, lr 0.06 per 256
        // images, weight decay 5e-4, cosine); the long GPU run is documented in the README.
        DatasetKind::Cifar10 => Recipe {
            backbone: ResNetConfig::resnet18(3, Stem::Cifar),
            backbone_label: "ResNet-18, CIFAR stem",
            widths_changed: false,
            augment: SimClrAugmentConfig::cifar(mean, std),
            batch_size: 512,
            epochs: 800,
            comparison_epochs: 800,
            comparison_widths: None,
            learning_rate: 0.12,
            optimizer: OptimizerKind::Sgd,
            weight_decay: 5e-4,
            in_batch_temperature: 0.5,
        },
        DatasetKind::Stl10 | DatasetKind::Folder => Recipe {
            backbone: ResNetConfig::resnet18(3, Stem::ImageNet),
            backbone_label: "ResNet-18, ImageNet stem",
            widths_changed: false,
            augment: SimClrAugmentConfig::new(mean, std),
            batch_size: 256,
            epochs: 100,
            comparison_epochs: 100,
            comparison_widths: None,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 1e-6,
            in_batch_temperature: 0.2,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contrast_vision::ImageShape;

    fn fashion() -> Recipe {
        recipe(DatasetKind::FashionMnist, &fashion_train())
    }

    fn fashion_train() -> ImageDataset {
        let shape = ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let names = vec!["a".to_string(), "b".to_string()];
        ImageDataset::new(vec![0; 32], vec![0, 1], shape, names).unwrap()
    }

    #[test]
    fn widths_replace_the_stages_and_name_the_backbone() {
        let mut r = fashion();
        assert_eq!(
            r.backbone_name(),
            "small ResNet (3x3 stride-2 stem, widths 32/64/256, one basic block per stage)"
        );
        assert_eq!(r.backbone.output_dim(), 256);
        r.set_widths(&[64, 128, 512]).unwrap();
        assert_eq!(r.backbone.widths, [64, 128, 512]);
        assert_eq!(r.backbone.stem_width, 64);
        assert_eq!(r.backbone.output_dim(), 512);
        assert!(r.backbone_name().contains("widths 64/128/512"));
        let mut cifar = recipe(DatasetKind::Cifar10, &fashion_train());
        cifar.set_widths(&[64, 128, 256, 512]).unwrap();
        assert_eq!(cifar.backbone_name(), "ResNet-18, CIFAR stem");
        cifar.set_widths(&[8, 16, 32, 64]).unwrap();
        assert_eq!(
            cifar.backbone_name(),
            "ResNet-18, CIFAR stem, widths 8/16/32/64"
        );
        let e = r.set_widths(&[8, 16]).unwrap_err().to_string();
        assert!(e.contains("has 3 stages"), "{e}");
        assert!(r.set_widths(&[8, 0, 16]).is_err());
    }
}
