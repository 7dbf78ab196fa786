//! The bench's plot (PNG, plotters' bitmap backend): MiB/s of the plug-in and of the best peer
//! of each row, against image size (left) and against parallel streams (right). Text needs a
//! TrueType font: the first of the usual system ones found is used; without one there is no
//! plot (said, not failed).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::report::{Axis, RowResult};

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// A line: its name and points (x, MiB/s).
type Series = (String, Vec<(f64, f64)>);

/// The plug-in's and the best peer's line of each plot series on `axis`.
fn series(rows: &[RowResult], axis: Axis) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let mut add = |name: String, x: f64, y: f64| match out.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push((x, y)),
        None => out.push((name, vec![(x, y)])),
    };
    for r in rows {
        let Some(p) = r.plot.as_ref().filter(|p| p.axis == axis) else { continue };
        if let Some((_, s)) = r.subject() {
            add(format!("vast-ost {}", p.series), p.x, s.mibs);
        }
        if let Some((_, s)) = r.best_peer() {
            add(format!("best peer {}", p.series), p.x, s.mibs);
        }
    }
    for (_, v) in &mut out {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Draw `rows` into `png`: `Ok(false)` when there is nothing to draw or no font.
pub fn draw(rows: &[RowResult], png: &Path) -> Result<bool> {
    let Some(font) = FONTS.iter().find_map(|f| std::fs::read(f).ok()) else {
        println!("no plot: none of {} found", FONTS.join(", "));
        return Ok(false);
    };
    // plotters keeps the font for the process.
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| anyhow!("the font could not be read"))?;
    let panels = [(Axis::Size, "image size (GiB)"), (Axis::Streams, "parallel streams")];
    let data: Vec<(Vec<Series>, &str)> = panels.iter().map(|(a, t)| (series(rows, *a), *t)).collect();
    if data.iter().all(|(s, _)| s.is_empty()) {
        return Ok(false);
    }
    let root = BitMapBackend::new(png, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let halves = root.split_evenly((1, 2));
    for ((lines, xlabel), area) in data.iter().zip(halves.iter()) {
        if lines.is_empty() {
            continue;
        }
        let pts = lines.iter().flat_map(|(_, v)| v.iter());
        let xmax = pts.clone().map(|p| p.0).fold(0.0, f64::max) * 1.1 + 0.1;
        let ymax = pts.map(|p| p.1).fold(0.0, f64::max) * 1.15 + 1.0;
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)?;
        chart.configure_mesh().x_desc(*xlabel).y_desc("MiB/s").draw()?;
        for (i, (name, v)) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(v.iter().copied(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(v.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    }
    root.present()?;
    Ok(true)
}
