//! Draws a [`Run`] as an SVG: a header (title, machine, legend) and two panels of grouped
//! bars, median req/s on top and median p99 latency below. One group per workload, one bar
//! per server, both in file order.

use crate::model::{Cell, Error, Run};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of the SVG, about the width of a README on a forge.
pub(crate) const WIDTH: u32 = 900;
const FONT: &str = "sans-serif";
/// plotters' SVG backend writes `font-size = size / 1.24`; sizes below are plotters sizes.
const SVG_FONT_SCALE: f64 = 1.24;
/// A generous average glyph width of a sans-serif font, as a fraction of the font size
/// (plotters cannot measure text without a font file, so layout decisions use this).
const GLYPH_WIDTH: f64 = 0.56;

const HEADER_ROW: u32 = 26;
const RPS_PANEL_HEIGHT: u32 = 410;
const P99_PANEL_HEIGHT: u32 = 330;

/// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(60, 60, 60),
];

/// The x axis: workload `g` occupies `g..g + 1`, its one tick (the workload's name) sits
/// at `g + 0.5`. Plain `f64` coordinates, so bars can sit anywhere inside a group.
struct GroupAxis {
    groups: usize,
}

impl Ranged for GroupAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * value / self.groups as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.groups).map(|g| g as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.groups as f64
    }
}

fn color(server: usize) -> RGBColor {
    PALETTE[server % PALETTE.len()]
}

fn draw_err<E: std::fmt::Display>(e: E) -> Error {
    Error(format!("drawing the chart: {e}"))
}

/// Estimated width in pixels of `text` at plotters font size `size`.
fn text_px(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * GLYPH_WIDTH * size / SVG_FONT_SCALE
}

/// Renders the whole chart as SVG text.
pub(crate) fn render_svg(run: &Run) -> Result<String, Error> {
    let legend_rows = legend_layout(run, f64::from(WIDTH) - 40.0).len() as u32;
    let header_height = 2 * HEADER_ROW + 10 + legend_rows * HEADER_ROW;
    let height = header_height + RPS_PANEL_HEIGHT + P99_PANEL_HEIGHT;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (header, rest) = root.split_vertically(header_height);
        let (top, bottom) = rest.split_vertically(RPS_PANEL_HEIGHT);
        draw_header(&header, run)?;

        let (lo, hi) = run.runs_range();
        let of_runs = match (lo, hi) {
            (1, 1) => "1 run".to_owned(),
            (l, h) if l == h => format!("{l} runs"),
            (l, h) => format!("{l}–{h} runs"),
        };
        draw_panel(
            &top,
            run,
            &Panel {
                caption: "Throughput (higher is better)",
                y_desc: format!("requests/s (median of {of_runs})"),
                value: |c| c.rps_median,
                whisker: |c| {
                    (c.runs > 1 && c.rps_max > c.rps_min).then_some((c.rps_min, c.rps_max))
                },
                tick: |v| {
                    if v < 1000.0 {
                        trim(v)
                    } else {
                        format!("{}k", trim(v / 1000.0))
                    }
                },
                label: fmt_rps,
            },
        )?;
        draw_panel(
            &bottom,
            run,
            &Panel {
                caption: "p99 latency (lower is better)",
                y_desc: format!("p99 latency, ms (median of {of_runs})"),
                value: |c| c.p99_ms,
                whisker: |_| None,
                tick: trim,
                label: fmt_ms,
            },
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// `2026-11-27T00:06:38Z` → `2026-11-27 00:06 UTC`; anything else is shown as it is.
fn fmt_date(date: &str) -> String {
    let b = date.as_bytes();
    if b.len() >= 16 && b[10] == b'T' && date.is_char_boundary(16) {
        format!("{} {} UTC", &date[..10], &date[11..16])
    } else {
        date.to_owned()
    }
}

fn draw_header(area: &DrawingArea<SVGBackend<'_>, Shift>, run: &Run) -> Result<(), Error> {
    let center = (WIDTH / 2) as i32;
    let title = format!(
        "Session benchmark, run of {}",
        run.date_utc
            .as_deref()
            .map_or_else(|| "unknown date".to_owned(), fmt_date)
    );
    let cpus = run.cpus.map_or_else(
        || "? CPUs".to_owned(),
        |n| format!("{n} CPU{}", if n == 1 { "" } else { "s" }),
    );
    let mut machine = format!(
        "{cpus} ({}), {}",
        run.cpu_model.as_deref().unwrap_or("unknown CPU"),
        run.redis.as_deref().unwrap_or("unknown Redis version")
    );
    let (_, hi) = run.runs_range();
    if hi > 1 {
        machine.push_str(" · whiskers: min–max of the runs");
    }
    let top = Pos::new(HPos::Center, VPos::Top);
    area.draw(&Text::new(
        title,
        (center, 8),
        (FONT, 24)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK)
            .pos(top),
    ))
    .map_err(draw_err)?;
    area.draw(&Text::new(
        machine,
        (center, 8 + HEADER_ROW as i32),
        (FONT, 17).into_font().color(&RGBColor(70, 70, 70)).pos(top),
    ))
    .map_err(draw_err)?;

    // Legend: one centred row per line of `legend_layout`.
    let y0 = 2 * HEADER_ROW as i32 + 14;
    let swatch = 14;
    let style = (FONT, 17)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (row, items) in legend_layout(run, f64::from(WIDTH) - 40.0)
        .iter()
        .enumerate()
    {
        let row_width: f64 = items.iter().map(|(_, w)| w).sum();
        let mut x = (f64::from(WIDTH) - row_width) / 2.0;
        let y = y0 + row as i32 * HEADER_ROW as i32;
        for &(server, w) in items {
            let x0 = x.round() as i32;
            area.draw(&Rectangle::new(
                [(x0, y - swatch / 2), (x0 + swatch, y + swatch / 2)],
                color(server).filled(),
            ))
            .map_err(draw_err)?;
            area.draw(&Text::new(
                run.servers[server].clone(),
                (x0 + swatch + 6, y),
                style.clone(),
            ))
            .map_err(draw_err)?;
            x += w;
        }
    }
    Ok(())
}

/// Splits the legend into rows that fit `max_width`: per row, (server index, item width).
fn legend_layout(run: &Run, max_width: f64) -> Vec<Vec<(usize, f64)>> {
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new()];
    let mut used = 0.0;
    for (i, name) in run.servers.iter().enumerate() {
        // swatch + gap + text + space before the next item
        let w = 14.0 + 6.0 + text_px(name, 17.0) + 28.0;
        if used + w > max_width && used > 0.0 {
            rows.push(Vec::new());
            used = 0.0;
        }
        used += w;
        if let Some(row) = rows.last_mut() {
            row.push((i, w));
        }
    }
    rows
}

struct Panel<V, W, T, L>
where
    V: Fn(&Cell) -> f64,
    W: Fn(&Cell) -> Option<(f64, f64)>,
    T: Fn(f64) -> String,
    L: Fn(f64) -> String,
{
    caption: &'static str,
    y_desc: String,
    /// Bar height.
    value: V,
    /// Whisker from..to, if any.
    whisker: W,
    /// Y axis tick label.
    tick: T,
    /// Value printed above a bar.
    label: L,
}

fn draw_panel<V, W, T, L>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    run: &Run,
    p: &Panel<V, W, T, L>,
) -> Result<(), Error>
where
    V: Fn(&Cell) -> f64,
    W: Fn(&Cell) -> Option<(f64, f64)>,
    T: Fn(f64) -> String,
    L: Fn(f64) -> String,
{
    let groups = run.workloads.len();
    let bars = run.servers.len();
    let top = run
        .cells
        .iter()
        .flatten()
        .flatten()
        .map(|c| {
            (p.whisker)(c)
                .map_or((p.value)(c), |(_, hi)| hi)
                .max((p.value)(c))
        })
        .fold(0.0, f64::max);
    // Head room for the value labels above the tallest bar.
    let y_max = if top > 0.0 { top * 1.14 } else { 1.0 };

    let mut chart = ChartBuilder::on(area)
        .caption(p.caption, (FONT, 19).into_font().style(FontStyle::Bold))
        .margin_left(10)
        .margin_right(20)
        .margin_top(6)
        .margin_bottom(6)
        .x_label_area_size(34)
        .y_label_area_size(78)
        .build_cartesian_2d(GroupAxis { groups }, 0.0..y_max)
        .map_err(draw_err)?;

    let workloads = &run.workloads;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x: &f64| {
            let i = x.floor().max(0.0) as usize;
            workloads.get(i).cloned().unwrap_or_default()
        })
        .x_label_style((FONT, 18))
        .y_label_style((FONT, 15))
        .y_labels(6)
        .y_label_formatter(&|y: &f64| (p.tick)(*y))
        .y_desc(p.y_desc.as_str())
        .axis_desc_style((FONT, 17))
        .bold_line_style(RGBColor(0, 0, 0).mix(0.12))
        .light_line_style(RGBColor(0, 0, 0).mix(0.0))
        .draw()
        .map_err(draw_err)?;

    // Bar geometry in x units: a group spans 0.8 of its slot, bars touch but leave a thin gap.
    let group_width = 0.8;
    let slot = group_width / bars as f64;
    let bar_pad = slot * 0.08;
    let plot_px = f64::from(chart.plotting_area().dim_in_pixel().0);
    let slot_px = plot_px / groups as f64 * slot;
    let label_size = 14.0;
    let black = RGBColor(40, 40, 40);
    // Label the bars only if every label fits its bar's slot (all or none, so a panel
    // does not show some values and hide others).
    let labels_fit = run
        .cells
        .iter()
        .flatten()
        .flatten()
        .all(|c| text_px(&(p.label)((p.value)(c)), label_size) + 2.0 <= slot_px);

    for (g, row) in run.cells.iter().enumerate() {
        for (s, cell) in row.iter().enumerate() {
            let x0 = g as f64 + (1.0 - group_width) / 2.0 + s as f64 * slot;
            let (left, right, mid) = (x0 + bar_pad, x0 + slot - bar_pad, x0 + slot / 2.0);
            let Some(cell) = cell else {
                // No measurement for this pair: say so instead of a silent hole.
                if text_px("n/a", label_size) <= slot_px {
                    chart
                        .draw_series(std::iter::once(
                            EmptyElement::at((mid, 0.0))
                                + Text::new(
                                    "n/a",
                                    (0, -4),
                                    (FONT, label_size)
                                        .into_font()
                                        .color(&RGBColor(120, 120, 120))
                                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                                ),
                        ))
                        .map_err(draw_err)?;
                }
                continue;
            };
            let v = (p.value)(cell);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (right, v)],
                    color(s).filled(),
                )))
                .map_err(draw_err)?;
            let mut label_at = v;
            if let Some((lo, hi)) = (p.whisker)(cell) {
                let cap = slot * 0.18;
                let line = black.stroke_width(1);
                chart
                    .draw_series([
                        PathElement::new(vec![(mid, lo), (mid, hi)], line),
                        PathElement::new(vec![(mid - cap, lo), (mid + cap, lo)], line),
                        PathElement::new(vec![(mid - cap, hi), (mid + cap, hi)], line),
                    ])
                    .map_err(draw_err)?;
                label_at = label_at.max(hi);
            }
            let text = (p.label)(v);
            if labels_fit {
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((mid, label_at))
                            + Text::new(
                                text,
                                (0, -3),
                                (FONT, label_size)
                                    .into_font()
                                    .color(&black)
                                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
                            ),
                    ))
                    .map_err(draw_err)?;
            }
        }
    }
    Ok(())
}

/// A tick value with at most two decimals, without trailing zeros: `20`, `2.5`, `0.25`.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Value above a req/s bar: `950`, `36.6k`, `166k`.
fn fmt_rps(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// Value above a latency bar, in ms: `0.85`, `6.2`, `33.0`, `120`.
fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::fixture;

    #[test]
    fn renders_names_title_and_values() {
        let run = Run::from_value(&fixture()).unwrap();
        let svg = render_svg(&run).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("Session benchmark, run of 2026-11-27 00:06 UTC"));
        assert!(svg.contains("2 CPUs (AMD EPYC), redis 7.0.15"));
        assert!(svg.contains("requests/s (median of 3 runs)"));
        // plotters writes each text on a line of its own.
        let texts: Vec<&str> = svg.lines().collect();
        for text in ["a", "b", "read", "write", "200", "2.5", "n/a"] {
            assert!(texts.contains(&text), "no text {text:?} in the SVG");
        }
        // Legend and groups in file order: server b before a, workload write before read.
        let at = |t: &str| texts.iter().position(|l| *l == t).unwrap();
        assert!(at("b") < at("a"));
        assert!(at("write") < at("read"));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_date("2026-11-27T00:06:38Z"), "2026-11-27 00:06 UTC");
        assert_eq!(fmt_date("yesterday"), "yesterday");
        assert_eq!(fmt_rps(36645.7), "36.6k");
        assert_eq!(fmt_rps(165451.0), "165k");
        assert_eq!(fmt_rps(950.4), "950");
        assert_eq!(fmt_ms(33.007), "33.0");
        assert_eq!(fmt_ms(0.851), "0.85");
        assert_eq!(trim(20.0), "20");
        assert_eq!(trim(2.5), "2.5");
        assert_eq!(trim(0.25), "0.25");
        assert_eq!(trim(0.0), "0");
    }
}
