//! SimCLR's augmentations: random resized crop, horizontal flip, colour jitter, random
//! grayscale and Gaussian blur, seeded per image so that every view is reproducible.

use burn::config::Config;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;

use contrast_core::{Error as CoreError, ensure_in_range, ensure_positive, mix_seed};

use crate::{ImageDataset, ImageShape};

/// Parameters of SimCLR's augmentation pipeline (Chen et al. 2020, appendix A).
///
/// Defaults are the paper's ImageNet recipe: crop scale 0.08 to 1, ratio 3/4 to 4/3, flip 0.5,
/// colour jitter with strength 1 applied with probability 0.8 (brightness, contrast and
/// saturation 0.8 s, hue 0.2 s, in random order), grayscale 0.2, Gaussian blur 0.5 with sigma
/// 0.1 to 2 and a kernel 10% of the image side. [`cifar`](Self::cifar) drops the blur and uses
/// strength 0.5, as the paper does for CIFAR-10. On one-channel images saturation, hue and
/// grayscale have no effect and are skipped.
#[derive(Config, Debug)]
pub struct SimClrAugmentConfig {
    /// Per-channel mean subtracted after augmentation (on the `[0, 1]` scale).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after augmentation.
    pub std: Vec<f32>,
    /// Smallest crop area, as a fraction of the image.
    #[config(default = 0.08)]
    pub crop_min_scale: f32,
    /// Largest crop area, as a fraction of the image.
    #[config(default = 1.0)]
    pub crop_max_scale: f32,
    /// Smallest crop aspect ratio (width / height).
    #[config(default = 0.75)]
    pub crop_min_ratio: f32,
    /// Largest crop aspect ratio.
    #[config(default = 1.333_333_3)]
    pub crop_max_ratio: f32,
    /// Probability of a horizontal flip.
    #[config(default = 0.5)]
    pub flip_prob: f32,
    /// Probability of applying colour jitter.
    #[config(default = 0.8)]
    pub jitter_prob: f32,
    /// Colour-jitter strength `s`.
    #[config(default = 1.0)]
    pub jitter_strength: f32,
    /// Probability of converting to grayscale (colour images only).
    #[config(default = 0.2)]
    pub gray_prob: f32,
    /// Probability of a Gaussian blur.
    #[config(default = 0.5)]
    pub blur_prob: f32,
    /// Smallest blur sigma, in pixels.
    #[config(default = 0.1)]
    pub blur_sigma_min: f32,
    /// Largest blur sigma, in pixels.
    #[config(default = 2.0)]
    pub blur_sigma_max: f32,
    /// Blur kernel side as a fraction of the image side (rounded to an odd size, at least 3).
    #[config(default = 0.1)]
    pub blur_kernel_fraction: f32,
}

impl SimClrAugmentConfig {
    /// The paper's CIFAR-10 recipe: no blur, colour strength 0.5.
    pub fn cifar(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self::new(mean, std)
            .with_blur_prob(0.0)
            .with_jitter_strength(0.5)
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// `InvalidConfig` naming the first field out of range.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(CoreError::invalid_config(
                "mean/std",
                format!("{} / {} values", self.mean.len(), self.std.len()),
                "need one mean and one std per channel",
            ));
        }
        for &s in &self.std {
            ensure_positive("std", s as f64)?;
        }
        ensure_in_range("crop_min_scale", self.crop_min_scale as f64, 1e-4, 1.0)?;
        ensure_in_range(
            "crop_max_scale",
            self.crop_max_scale as f64,
            self.crop_min_scale as f64,
            1.0,
        )?;
        ensure_in_range("crop_min_ratio", self.crop_min_ratio as f64, 1e-2, 100.0)?;
        ensure_in_range(
            "crop_max_ratio",
            self.crop_max_ratio as f64,
            self.crop_min_ratio as f64,
            100.0,
        )?;
        for (name, p) in [
            ("flip_prob", self.flip_prob),
            ("jitter_prob", self.jitter_prob),
            ("gray_prob", self.gray_prob),
            ("blur_prob", self.blur_prob),
        ] {
            ensure_in_range(name, p as f64, 0.0, 1.0)?;
        }
        ensure_in_range("jitter_strength", self.jitter_strength as f64, 0.0, 2.5)?;
        ensure_positive("blur_sigma_min", self.blur_sigma_min as f64)?;
        ensure_in_range(
            "blur_sigma_max",
            self.blur_sigma_max as f64,
            self.blur_sigma_min as f64,
            1e3,
        )?;
        ensure_in_range(
            "blur_kernel_fraction",
            self.blur_kernel_fraction as f64,
            0.0,
            1.0,
        )?;
        Ok(())
    }

    /// Builds the pipeline.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails (entry points call it first).
    pub fn init(&self, seed: u64) -> SimClrAugment {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        SimClrAugment {
            config: self.clone(),
            seed,
        }
    }
}

/// The seeded two-view pipeline built by [`SimClrAugmentConfig::init`].
///
/// View `v` of image `i` in epoch `e` uses its own random stream, derived from
/// `(seed, e, i, v)`: the result does not depend on batch composition, thread count or on
/// whether the run was resumed.
#[derive(Debug, Clone)]
pub struct SimClrAugment {
    config: SimClrAugmentConfig,
    seed: u64,
}

/// Two augmented views of a batch, normalised, `[batch, c, h, w]` each, on the host.
#[derive(Debug, Clone)]
pub struct HostViews {
    /// First views.
    pub first: Vec<f32>,
    /// Second views.
    pub second: Vec<f32>,
    /// Images in the batch.
    pub batch: usize,
    /// Shape of each image.
    pub shape: ImageShape,
}

impl SimClrAugment {
    /// The configuration.
    pub fn config(&self) -> &SimClrAugmentConfig {
        &self.config
    }

    /// The random stream of view `view` of image `index` in `epoch`.
    pub fn rng(&self, epoch: usize, index: usize, view: usize) -> Pcg64Mcg {
        let stream = ((index as u64) << 3) | view as u64;
        Pcg64Mcg::seed_from_u64(mix_seed(mix_seed(self.seed, epoch as u64), stream))
    }

    /// Augments one image into `out` (`shape.len()` floats, normalised).
    ///
    /// # Panics
    /// If `src` or `out` do not hold one image of `shape`, or the config's mean has another
    /// channel count.
    pub fn view(&self, src: &[u8], shape: ImageShape, rng: &mut Pcg64Mcg, out: &mut [f32]) {
        assert_eq!(
            src.len(),
            shape.len(),
            "view: source is not one image of {shape:?}"
        );
        assert_eq!(
            out.len(),
            shape.len(),
            "view: output is not one image of {shape:?}"
        );
        assert_eq!(
            self.config.mean.len(),
            shape.channels,
            "view: normalisation has {} channels, images have {}",
            self.config.mean.len(),
            shape.channels
        );
        let c = &self.config;
        crop_resize(src, shape, c, rng, out);
        let colour = shape.channels == 3;
        if rng.random::<f32>() < c.jitter_prob {
            jitter(out, shape, c.jitter_strength, colour, rng);
        }
        if colour && rng.random::<f32>() < c.gray_prob {
            grayscale(out, shape);
        }
        if rng.random::<f32>() < c.blur_prob {
            let side = shape.height.min(shape.width) as f32;
            let k = ((c.blur_kernel_fraction * side).round() as usize) | 1;
            let sigma = rng.random_range(c.blur_sigma_min..=c.blur_sigma_max);
            blur(out, shape, k.max(3), sigma);
        }
        normalize(out, shape, &c.mean, &c.std);
    }

    /// Two views of every image of `indices`, computed in parallel.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn two_views(&self, data: &ImageDataset, indices: &[usize], epoch: usize) -> HostViews {
        let shape = data.shape();
        let n = shape.len();
        let mut first = vec![0f32; indices.len() * n];
        let mut second = vec![0f32; indices.len() * n];
        first
            .par_chunks_mut(n)
            .zip(second.par_chunks_mut(n))
            .zip(indices.par_iter())
            .for_each(|((a, b), &i)| {
                let img = data.image(i);
                self.view(img, shape, &mut self.rng(epoch, i, 0), a);
                self.view(img, shape, &mut self.rng(epoch, i, 1), b);
            });
        HostViews {
            first,
            second,
            batch: indices.len(),
            shape,
        }
    }

    /// One view per image (the single augmented copy of InvaSpread, or a MoCo query).
    pub fn one_view(
        &self,
        data: &ImageDataset,
        indices: &[usize],
        epoch: usize,
        view: usize,
    ) -> Vec<f32> {
        let shape = data.shape();
        let mut out = vec![0f32; indices.len() * shape.len()];
        out.par_chunks_mut(shape.len())
            .zip(indices.par_iter())
            .for_each(|(o, &i)| self.view(data.image(i), shape, &mut self.rng(epoch, i, view), o));
        out
    }
}

/// The images at `indices`, scaled to `[0, 1]` and normalised, without augmentation (for
/// evaluation).
///
/// # Panics
/// If an index is out of range or `mean`/`std` do not match the channel count.
pub fn normalized_batch(
    data: &ImageDataset,
    indices: &[usize],
    mean: &[f32],
    std: &[f32],
) -> Vec<f32> {
    let shape = data.shape();
    assert_eq!(
        mean.len(),
        shape.channels,
        "normalized_batch: mean has the wrong channel count"
    );
    let mut out = vec![0f32; indices.len() * shape.len()];
    out.par_chunks_mut(shape.len())
        .zip(indices.par_iter())
        .for_each(|(o, &i)| {
            for (d, &s) in o.iter_mut().zip(data.image(i)) {
                *d = s as f32 / 255.0;
            }
            normalize(o, shape, mean, std);
        });
    out
}

fn normalize(img: &mut [f32], shape: ImageShape, mean: &[f32], std: &[f32]) {
    let plane = shape.height * shape.width;
    for (ch, p) in img.chunks_exact_mut(plane).enumerate() {
        let (m, inv) = (mean[ch], 1.0 / std[ch]);
        for v in p {
            *v = (*v - m) * inv;
        }
    }
}

/// Random resized crop plus optional flip, bilinear, output on the `[0, 1]` scale.
fn crop_resize(
    src: &[u8],
    shape: ImageShape,
    c: &SimClrAugmentConfig,
    rng: &mut Pcg64Mcg,
    out: &mut [f32],
) {
    let (h, w) = (shape.height as f32, shape.width as f32);
    let area = h * w;
    let (log_lo, log_hi) = (c.crop_min_ratio.ln(), c.crop_max_ratio.ln());
    let mut crop = None;
    for _ in 0..10 {
        let target = area * rng.random_range(c.crop_min_scale..=c.crop_max_scale);
        let ratio = rng.random_range(log_lo..=log_hi).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let top = rng.random_range(0..=(h - ch) as usize) as f32;
            let left = rng.random_range(0..=(w - cw) as usize) as f32;
            crop = Some((top, left, ch, cw));
            break;
        }
    }
    // Fallback as in torchvision: a centre crop at the nearest allowed ratio.
    let (top, left, ch, cw) = crop.unwrap_or_else(|| {
        let r = w / h;
        let (cw, ch) = if r < c.crop_min_ratio {
            (w, (w / c.crop_min_ratio).round())
        } else if r > c.crop_max_ratio {
            ((h * c.crop_max_ratio).round(), h)
        } else {
            (w, h)
        };
        (((h - ch) / 2.0).floor(), ((w - cw) / 2.0).floor(), ch, cw)
    });
    let flip = rng.random::<f32>() < c.flip_prob;
    let (hs, ws) = (shape.height, shape.width);
    let plane = hs * ws;
    let (sy, sx) = (ch / h, cw / w);
    for y in 0..hs {
        let fy = (top + (y as f32 + 0.5) * sy - 0.5).clamp(0.0, h - 1.0);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(hs - 1);
        let wy = fy - y0 as f32;
        for x in 0..ws {
            let xo = if flip { ws - 1 - x } else { x };
            let fx = (left + (x as f32 + 0.5) * sx - 0.5).clamp(0.0, w - 1.0);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(ws - 1);
            let wx = fx - x0 as f32;
            for ch_i in 0..shape.channels {
                let p = &src[ch_i * plane..(ch_i + 1) * plane];
                let top_row = p[y0 * ws + x0] as f32 * (1.0 - wx) + p[y0 * ws + x1] as f32 * wx;
                let bottom = p[y1 * ws + x0] as f32 * (1.0 - wx) + p[y1 * ws + x1] as f32 * wx;
                out[ch_i * plane + y * ws + xo] = (top_row * (1.0 - wy) + bottom * wy) / 255.0;
            }
        }
    }
}

fn luminance(img: &[f32], plane: usize, i: usize) -> f32 {
    0.299 * img[i] + 0.587 * img[plane + i] + 0.114 * img[2 * plane + i]
}

fn grayscale(img: &mut [f32], shape: ImageShape) {
    let plane = shape.height * shape.width;
    for i in 0..plane {
        let l = luminance(img, plane, i);
        img[i] = l;
        img[plane + i] = l;
        img[2 * plane + i] = l;
    }
}

fn factor(rng: &mut Pcg64Mcg, amount: f32) -> f32 {
    rng.random_range((1.0 - amount).max(0.0)..=1.0 + amount)
}

/// Colour jitter: brightness, contrast, saturation and hue in a random order (torchvision's
/// `ColorJitter` semantics), clamped to `[0, 1]`.
fn jitter(img: &mut [f32], shape: ImageShape, s: f32, colour: bool, rng: &mut Pcg64Mcg) {
    let plane = shape.height * shape.width;
    let mut order = [0usize, 1, 2, 3];
    rand::seq::SliceRandom::shuffle(&mut order[..], rng);
    for op in order {
        match op {
            0 => {
                let f = factor(rng, 0.8 * s);
                img.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0));
            }
            1 => {
                let f = factor(rng, 0.8 * s);
                let mean = if colour {
                    (0..plane).map(|i| luminance(img, plane, i)).sum::<f32>() / plane as f32
                } else {
                    img.iter().sum::<f32>() / plane as f32
                };
                img.iter_mut()
                    .for_each(|v| *v = (f * *v + (1.0 - f) * mean).clamp(0.0, 1.0));
            }
            2 if colour => {
                let f = factor(rng, 0.8 * s);
                for i in 0..plane {
                    let l = luminance(img, plane, i);
                    for c in 0..3 {
                        let v = &mut img[c * plane + i];
                        *v = (f * *v + (1.0 - f) * l).clamp(0.0, 1.0);
                    }
                }
            }
            3 if colour => {
                let amount = (0.2 * s).min(0.5);
                let shift = rng.random_range(-amount..=amount);
                for i in 0..plane {
                    let (r, g, b) = (img[i], img[plane + i], img[2 * plane + i]);
                    let (hh, ss, vv) = rgb_to_hsv(r, g, b);
                    let (r, g, b) = hsv_to_rgb((hh + shift).rem_euclid(1.0), ss, vv);
                    img[i] = r;
                    img[plane + i] = g;
                    img[2 * plane + i] = b;
                }
            }
            _ => {}
        }
    }
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max <= 0.0 { 0.0 } else { d / max };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Separable Gaussian blur with reflected borders.
fn blur(img: &mut [f32], shape: ImageShape, k: usize, sigma: f32) {
    let r = (k / 2) as isize;
    let weights: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let (h, w) = (shape.height as isize, shape.width as isize);
    let reflect = |i: isize, n: isize| -> usize {
        let period = 2 * (n - 1).max(1);
        let m = i.rem_euclid(period);
        (if m >= n { period - m } else { m }) as usize
    };
    let plane = (h * w) as usize;
    let mut tmp = vec![0f32; plane];
    for p in img.chunks_exact_mut(plane) {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (j, wt) in weights.iter().enumerate() {
                    acc += wt * p[(y * w) as usize + reflect(x + j as isize - r, w)];
                }
                tmp[(y * w + x) as usize] = acc;
            }
        }
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (j, wt) in weights.iter().enumerate() {
                    acc += wt * tmp[reflect(y + j as isize - r, h) * w as usize + x as usize];
                }
                p[(y * w + x) as usize] = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(channels: usize) -> ImageDataset {
        let shape = ImageShape {
            channels,
            height: 12,
            width: 10,
        };
        let pixels: Vec<u8> = (0..3 * shape.len()).map(|i| (i * 37 % 256) as u8).collect();
        ImageDataset::new(pixels, vec![0, 1, 0], shape, vec!["a".into(), "b".into()]).unwrap()
    }

    fn plain(channels: usize) -> SimClrAugment {
        SimClrAugmentConfig::new(vec![0.0; channels], vec![1.0; channels])
            .with_crop_min_scale(1.0)
            .with_crop_min_ratio(10.0 / 12.0)
            .with_crop_max_ratio(10.0 / 12.0)
            .with_flip_prob(0.0)
            .with_jitter_prob(0.0)
            .with_gray_prob(0.0)
            .with_blur_prob(0.0)
            .init(1)
    }

    #[test]
    fn identity_settings_reproduce_the_image() {
        for channels in [1, 3] {
            let ds = dataset(channels);
            let v = plain(channels).two_views(&ds, &[2, 0], 0);
            let want = normalized_batch(&ds, &[2, 0], &vec![0.0; channels], &vec![1.0; channels]);
            for (a, b) in v.first.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn flip_mirrors_columns() {
        let ds = dataset(1);
        let aug = SimClrAugmentConfig::new(vec![0.0], vec![1.0])
            .with_crop_min_scale(1.0)
            .with_crop_min_ratio(10.0 / 12.0)
            .with_crop_max_ratio(10.0 / 12.0)
            .with_flip_prob(1.0)
            .with_jitter_prob(0.0)
            .with_blur_prob(0.0)
            .init(3);
        let v = aug.one_view(&ds, &[1], 0, 0);
        let src = ds.image(1);
        assert!((v[3] - src[10 - 1 - 3] as f32 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn views_are_seeded_and_independent_of_batching() {
        let ds = dataset(3);
        let cfg = SimClrAugmentConfig::new(vec![0.5; 3], vec![0.25; 3]);
        let aug = cfg.init(7);
        let a = aug.two_views(&ds, &[0, 1, 2], 4);
        let b = aug.two_views(&ds, &[2], 4);
        let n = ds.shape().len();
        assert_eq!(&a.first[2 * n..], &b.first[..]);
        assert_ne!(a.first, a.second, "the two views must differ");
        assert_ne!(
            a.first,
            aug.two_views(&ds, &[0, 1, 2], 5).first,
            "epochs must differ"
        );
        assert_ne!(a.first, cfg.init(8).two_views(&ds, &[0, 1, 2], 4).first);
        assert!(
            a.first
                .iter()
                .all(|v| v.is_finite() && (-2.01..=2.01).contains(v))
        );
    }

    #[test]
    fn grayscale_and_blur_behave() {
        let shape = ImageShape {
            channels: 3,
            height: 5,
            width: 5,
        };
        let mut img: Vec<f32> = (0..shape.len()).map(|i| (i % 7) as f32 / 7.0).collect();
        grayscale(&mut img, shape);
        assert_eq!(img[..25], img[25..50]);
        let mut flat = vec![0.3f32; shape.len()];
        blur(&mut flat, shape, 3, 1.0);
        assert!(
            flat.iter().all(|v| (v - 0.3).abs() < 1e-6),
            "blur must keep a constant image"
        );
        let (h, s, v) = rgb_to_hsv(0.2, 0.6, 0.4);
        let (r, g, b) = hsv_to_rgb(h, s, v);
        assert!((r - 0.2).abs() < 1e-6 && (g - 0.6).abs() < 1e-6 && (b - 0.4).abs() < 1e-6);
    }

    #[test]
    fn validate_names_field() {
        let msg = SimClrAugmentConfig::new(vec![0.0], vec![1.0])
            .with_flip_prob(1.5)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("flip_prob"), "{msg}");
        let msg = SimClrAugmentConfig::new(vec![0.0], vec![])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("mean/std"), "{msg}");
    }
}
