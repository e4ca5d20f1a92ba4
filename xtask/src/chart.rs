//! The bar chart of `docs/benchmarks.png`: every measured row as a bar of its median relative
//! to the fastest backend at the same operation and size (log scale).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::bench::Row;

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn font() -> bool {
    let env = std::env::var("CONTRAST_FONT").ok();
    for p in env.iter().map(String::as_str).chain(FONTS) {
        if let Ok(bytes) = std::fs::read(p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// `groups`: rows per (operation, size), each group's rows sorted fastest first.
pub fn write(path: &Path, groups: &[(String, Vec<Row>)]) -> Result<()> {
    let text = font();
    let rows: usize = groups.iter().map(|(_, g)| g.len() + 1).sum();
    let (w, row_h, label_w) = (1200i32, 20i32, 560i32);
    let h = 50 + rows as i32 * row_h;
    let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
    root.fill(&WHITE).map_err(e)?;
    let style = ("sans-serif", 14).into_font();
    let bold = ("sans-serif", 15).into_font().style(FontStyle::Bold);
    if text {
        root.draw(&Text::new(
            "median / fastest backend at the same size (log scale; 1 = fastest)",
            (10, 12),
            ("sans-serif", 17).into_font(),
        ))
        .map_err(e)?;
    }
    // x axis: log10(ratio) in [0, 3] (1x to 1000x).
    let x0 = label_w + 10;
    let span = (w - x0 - 120) as f64;
    let x_of = |ratio: f64| x0 + ((ratio.max(1.0).log10() / 3.0).min(1.0) * span) as i32;
    let mut y = 40;
    for (title, list) in groups {
        if text {
            root.draw(&Text::new(title.clone(), (10, y), bold.clone()))
                .map_err(e)?;
        }
        y += row_h;
        let fastest = list
            .iter()
            .map(|r| r.median_ns)
            .fold(f64::INFINITY, f64::min);
        for r in list {
            let ratio = r.median_ns / fastest;
            let peer = r.backend.starts_with("pytorch");
            let color = if peer {
                RGBColor(230, 126, 34)
            } else {
                RGBColor(52, 101, 164)
            };
            root.draw(&Rectangle::new(
                [(x0, y + 3), (x_of(ratio).max(x0 + 2), y + row_h - 3)],
                color.filled(),
            ))
            .map_err(e)?;
            if text {
                root.draw(&Text::new(
                    format!("    {}", r.backend),
                    (10, y + 3),
                    style.clone(),
                ))
                .map_err(e)?;
                root.draw(&Text::new(
                    format!("{ratio:.2}x"),
                    (x_of(ratio) + 6, y + 3),
                    style.clone(),
                ))
                .map_err(e)?;
            }
            y += row_h;
        }
    }
    for (ratio, label) in [
        (1.0, "1x"),
        (10.0, "10x"),
        (100.0, "100x"),
        (1000.0, "1000x"),
    ] {
        let x = x_of(ratio);
        root.draw(&PathElement::new(vec![(x, 35), (x, h - 5)], BLACK.mix(0.2)))
            .map_err(e)?;
        if text {
            root.draw(&Text::new(label, (x + 2, 28), style.clone()))
                .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}
