use crate::matmul::{Layout, matmul};

/// Projects rows onto their first two principal components, for a 2-D picture of an embedding.
///
/// Power iteration with deflation on the `d x d` covariance; deterministic. Returns `[n, 2]`
/// row-major. Rows of zero variance give zeros.
///
/// # Panics
/// If `data.len()` is not a multiple of `dim`.
pub fn pca_2d(data: &[f32], dim: usize) -> Vec<f32> {
    assert!(
        dim > 0 && data.len().is_multiple_of(dim),
        "pca_2d: data is not rows of width {dim}"
    );
    let n = data.len() / dim;
    if n == 0 {
        return Vec::new();
    }
    let mut mean = vec![0f32; dim];
    for row in data.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f32;
        }
    }
    let centred: Vec<f32> = data
        .chunks(dim)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| v - m))
        .collect();
    let mut cov = vec![0f32; dim * dim];
    matmul(
        dim,
        dim,
        n,
        &centred,
        Layout::Transposed,
        &centred,
        Layout::Normal,
        &mut cov,
    );
    let mut components: Vec<Vec<f32>> = Vec::new();
    for c in 0..2 {
        let mut v: Vec<f32> = (0..dim)
            .map(|i| 1.0 + ((i * 31 + c * 17) % 7) as f32 * 0.1)
            .collect();
        for _ in 0..200 {
            let mut next = vec![0f32; dim];
            for (i, out) in next.iter_mut().enumerate() {
                *out = cov[i * dim..(i + 1) * dim]
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| a * b)
                    .sum();
            }
            for prev in &components {
                let dot: f32 = next.iter().zip(prev).map(|(a, b)| a * b).sum();
                next.iter_mut().zip(prev).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = next.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm <= f32::MIN_POSITIVE {
                v = vec![0.0; dim];
                break;
            }
            v = next.iter().map(|x| x / norm).collect();
        }
        components.push(v);
    }
    centred
        .chunks(dim)
        .flat_map(|row| {
            components
                .iter()
                .map(|c| row.iter().zip(c).map(|(a, b)| a * b).sum::<f32>())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_dominant_directions() {
        // Points spread along (1, 1, 0) strongly and (1, -1, 0) weakly.
        let mut data = Vec::new();
        for i in 0..50 {
            let a = (i as f32 - 25.0) * 0.4;
            let b = ((i * 7 % 11) as f32 - 5.0) * 0.1;
            data.extend([a + b, a - b, 0.3]);
        }
        let p = pca_2d(&data, 3);
        let var = |k: usize| p.chunks(2).map(|r| r[k] * r[k]).sum::<f32>();
        assert!(var(0) > 10.0 * var(1));
        // The first coordinate is +-(x + y) / sqrt(2) of the centred point.
        let ratio = p[0]
            / ((data[0] + data[1]
                - (data.iter().step_by(3).sum::<f32>()
                    + data.iter().skip(1).step_by(3).sum::<f32>())
                    / 50.0)
                / 2f32.sqrt());
        assert!((ratio.abs() - 1.0).abs() < 1e-3, "{ratio}");
    }
}
