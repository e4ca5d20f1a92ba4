//! PNG plots for reports (plotters, bitmap backend). Text needs a TrueType font: the first of
//! `$CONTRAST_FONT` and the usual DejaVu / Liberation paths that exists is used; without one the
//! plots are drawn without text and the report says so.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::Error;

const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font once; false when none was found (plots then carry no text).
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let env = std::env::var("CONTRAST_FONT").ok();
        for p in env.iter().map(String::as_str).chain(FONT_PATHS) {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Report(e.to_string())
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// A named series of `(x, y)` points.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// Line chart of several series, written to `path` (800x500 PNG).
///
/// # Errors
/// [`Error::Report`] when the file cannot be written.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series<'_>],
) -> Result<(), Error> {
    let text = font_available();
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60);
    if text {
        builder.caption(title, ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(x_desc).y_desc(y_desc);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        if s.points.len() < 40 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        let drawn = chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        if text {
            drawn.label(s.name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// Scatter plot of 2-D points coloured by class, with a legend of class names; `axes` are the
/// axis descriptions, and points are drawn larger when there are few of them.
///
/// # Errors
/// [`Error::Report`] when the file cannot be written.
pub fn scatter_by_class(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    points: &[(f64, f64)],
    labels: &[u32],
    classes: &[String],
) -> Result<(), Error> {
    let text = font_available();
    let root = BitMapBackend::new(path, (800, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let radius = if points.len() < 50 { 7 } else { 2 };
    let (x0, x1) = range(points.iter().map(|p| p.0));
    let (y0, y1) = range(points.iter().map(|p| p.1));
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(15)
        .x_label_area_size(30)
        .y_label_area_size(40);
    if text {
        builder.caption(title, ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(axes.0).y_desc(axes.1);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    for (c, name) in classes.iter().enumerate() {
        let color = Palette99::pick(c).to_rgba();
        let pts: Vec<(f64, f64)> = points
            .iter()
            .zip(labels)
            .filter(|&(_, &l)| l as usize == c)
            .map(|(p, _)| *p)
            .collect();
        let drawn = chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, radius, color.mix(0.7).filled())),
            )
            .map_err(err)?;
        if text {
            drawn
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_as_png() {
        let dir = std::env::temp_dir().join(format!("contrast-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = [Series {
            name: "loss",
            points: (0..50)
                .map(|i| (i as f64, 1.0 / (1.0 + i as f64)))
                .collect(),
        }];
        line_chart(&dir.join("l.png"), "Loss", "step", "loss", &s).unwrap();
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| ((i as f64).sin(), (i as f64).cos()))
            .collect();
        let labels: Vec<u32> = (0..30).map(|i| i % 3).collect();
        let classes = vec!["a".to_string(), "b".into(), "c".into()];
        scatter_by_class(
            &dir.join("s.png"),
            "Embedding",
            ("PC 1", "PC 2"),
            &pts,
            &labels,
            &classes,
        )
        .unwrap();
        for f in ["l.png", "s.png"] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
