//! Evaluation across two modalities (CLIP's): zero-shot classification from class prompts and
//! image-text retrieval recall, on embeddings read back to the host.

use contrast_core::Error;

use crate::matmul::{Layout, matmul};

/// Rows of `data` (width `dim`) scaled to unit length (zero rows stay zero).
fn normalized(data: &[f32], dim: usize) -> Vec<f32> {
    let mut out = data.to_vec();
    for row in out.chunks_mut(dim) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|x| *x /= n);
        }
    }
    out
}

/// Cosine similarities `[a rows, b rows]`.
fn cosines(a: &[f32], b: &[f32], dim: usize) -> Vec<f32> {
    let (m, n) = (a.len() / dim, b.len() / dim);
    let mut c = vec![0f32; m * n];
    matmul(
        m,
        n,
        dim,
        &normalized(a, dim),
        Layout::Normal,
        &normalized(b, dim),
        Layout::Transposed,
        &mut c,
    );
    c
}

fn check_rows(what: &'static str, data: &[f32], dim: usize) -> Result<usize, Error> {
    if dim == 0 || data.is_empty() || !data.len().is_multiple_of(dim) {
        return Err(Error::invalid_config(
            what,
            data.len(),
            format!("must be a non-empty multiple of the width {dim}"),
        ));
    }
    Ok(data.len() / dim)
}

/// Zero-shot classification accuracy, in percent: each class is the normalised mean of its
/// prompts' normalised embeddings (CLIP's prompt ensemble), each image is assigned the class of
/// highest cosine similarity.
///
/// `images` and `prompts` are row-major `[n, dim]` and `[p, dim]`; `prompt_class[j]` is the
/// class of prompt `j`, `labels[i]` the class of image `i`.
///
/// # Errors
/// `InvalidConfig` for widths that do not divide the data, a prompt or label outside
/// `0..classes`, or a class without prompts.
pub fn zero_shot_top1(
    images: &[f32],
    prompts: &[f32],
    dim: usize,
    prompt_class: &[usize],
    labels: &[u32],
    classes: usize,
) -> Result<f64, Error> {
    let n = check_rows("images", images, dim)?;
    let p = check_rows("prompts", prompts, dim)?;
    if prompt_class.len() != p || labels.len() != n {
        return Err(Error::invalid_config(
            "prompt_class",
            prompt_class.len(),
            format!("{p} prompts and {n} images need as many classes and labels"),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::invalid_config(
            "labels",
            l,
            format!("not below {classes}"),
        ));
    }
    let mut class_emb = vec![0f32; classes * dim];
    let mut count = vec![0usize; classes];
    for (row, &c) in normalized(prompts, dim).chunks(dim).zip(prompt_class) {
        if c >= classes {
            return Err(Error::invalid_config(
                "prompt_class",
                c,
                format!("not below {classes}"),
            ));
        }
        count[c] += 1;
        class_emb[c * dim..(c + 1) * dim]
            .iter_mut()
            .zip(row)
            .for_each(|(a, b)| *a += b);
    }
    if let Some(c) = count.iter().position(|&k| k == 0) {
        return Err(Error::invalid_config(
            "prompt_class",
            c,
            "this class has no prompt",
        ));
    }
    let sims = cosines(images, &class_emb, dim);
    let correct = sims
        .chunks(classes)
        .zip(labels)
        .filter(|(row, l)| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            best == Some(**l as usize)
        })
        .count();
    Ok(100.0 * correct as f64 / n as f64)
}

/// Retrieval recall at several `k`, in percent, both ways.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetrievalRecall {
    /// `(k, recall)`: the share of images with one of their texts among the `k` most similar
    /// texts.
    pub image_to_text: Vec<(usize, f64)>,
    /// `(k, recall)`: the share of texts with one of their images among the `k` most similar
    /// images.
    pub text_to_image: Vec<(usize, f64)>,
}

/// Image-to-text and text-to-image recall at each of `ks` (open_clip's retrieval metric,
/// generalised to several correct items: an image hits when any of its texts is in the top
/// `k`, a text when any of its images is), from cosine similarities of the embeddings.
///
/// `texts_of[i]` lists the texts (rows of `texts`) that belong to image `i`; every text should
/// belong to at least one image (a text of none never hits).
///
/// # Errors
/// `InvalidConfig` for widths that do not divide the data, `texts_of` not one list per image,
/// a text index out of range, or a `k` of 0.
pub fn retrieval_recall(
    images: &[f32],
    texts: &[f32],
    dim: usize,
    texts_of: &[Vec<usize>],
    ks: &[usize],
) -> Result<RetrievalRecall, Error> {
    let n = check_rows("images", images, dim)?;
    let t = check_rows("texts", texts, dim)?;
    if texts_of.len() != n {
        return Err(Error::invalid_config(
            "texts_of",
            texts_of.len(),
            format!("needs one list per image ({n})"),
        ));
    }
    if let Some(&j) = texts_of.iter().flatten().find(|&&j| j >= t) {
        return Err(Error::invalid_config(
            "texts_of",
            j,
            format!("not below {t} texts"),
        ));
    }
    if ks.contains(&0) {
        return Err(Error::invalid_config("k", 0, "must be at least 1"));
    }
    let sims = cosines(images, texts, dim);
    // The rank of the best correct item in a row of scores: how many wrong items score as high
    // or higher (ties count against the query, so a collapsed embedding scores 0, not 100).
    let rank = |scores: &dyn Fn(usize) -> f32, len: usize, correct: &[bool]| {
        let best = (0..len)
            .filter(|&j| correct[j])
            .map(scores)
            .max_by(f32::total_cmp)?;
        Some(
            (0..len)
                .filter(|&j| !correct[j] && scores(j) >= best)
                .count(),
        )
    };
    let mut mask = vec![false; t.max(n)];
    let image_ranks: Vec<Option<usize>> = (0..n)
        .map(|i| {
            texts_of[i].iter().for_each(|&j| mask[j] = true);
            let r = rank(&|j| sims[i * t + j], t, &mask[..t]);
            texts_of[i].iter().for_each(|&j| mask[j] = false);
            r
        })
        .collect();
    let mut images_of: Vec<Vec<usize>> = vec![Vec::new(); t];
    for (i, ts) in texts_of.iter().enumerate() {
        for &j in ts {
            images_of[j].push(i);
        }
    }
    let text_ranks: Vec<Option<usize>> = (0..t)
        .map(|j| {
            images_of[j].iter().for_each(|&i| mask[i] = true);
            let r = rank(&|i| sims[i * t + j], n, &mask[..n]);
            images_of[j].iter().for_each(|&i| mask[i] = false);
            r
        })
        .collect();
    let recall = |ranks: &[Option<usize>]| -> Vec<(usize, f64)> {
        ks.iter()
            .map(|&k| {
                let hits = ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count();
                (k, 100.0 * hits as f64 / ranks.len() as f64)
            })
            .collect()
    };
    Ok(RetrievalRecall {
        image_to_text: recall(&image_ranks),
        text_to_image: recall(&text_ranks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_averaged_per_class() {
        // Two classes along the axes; class 1's prompts point at (0, 1) on average.
        let prompts = [1.0, 0.1, 1.0, -0.1, 0.2, 1.0, -0.2, 1.0];
        let images = [2.0, 0.5, 0.1, 3.0, 0.9, 1.0];
        let acc = zero_shot_top1(&images, &prompts, 2, &[0, 0, 1, 1], &[0, 1, 0], 2).unwrap();
        assert!((acc - 100.0 * 2.0 / 3.0).abs() < 1e-9, "{acc}");
        let e = zero_shot_top1(&images, &prompts, 2, &[0, 0, 0, 0], &[0, 1, 1], 2).unwrap_err();
        assert!(e.to_string().contains("no prompt"), "{e}");
    }

    #[test]
    fn recall_counts_any_correct_item_within_k() {
        // Image 0 is closest to text 1 (its own), image 1 to text 0 (not its own: text 2).
        let images = [0.0, 1.0, 1.0, 0.0];
        let texts = [1.0, 0.0, 0.1, 1.0, 0.8, 0.6];
        let r = retrieval_recall(&images, &texts, 2, &[vec![1], vec![2]], &[1, 2]).unwrap();
        assert_eq!(r.image_to_text, vec![(1, 50.0), (2, 100.0)]);
        // Identical embeddings (a collapsed tower) retrieve nothing at rank 1.
        let same = [1.0, 0.0, 1.0, 0.0];
        let c = retrieval_recall(&same, &same, 2, &[vec![0], vec![1]], &[1]).unwrap();
        assert_eq!((c.image_to_text[0].1, c.text_to_image[0].1), (0.0, 0.0));
        // Text 0 belongs to no image: it never hits.
        assert_eq!(r.text_to_image[0].1, 200.0 / 3.0);
        let e = retrieval_recall(&images, &texts, 2, &[vec![5], vec![]], &[1]).unwrap_err();
        assert!(e.to_string().contains("not below 3"), "{e}");
    }
}
