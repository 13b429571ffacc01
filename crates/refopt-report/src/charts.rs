//! Charts drawn to SVG strings with plotters (text is XML-escaped by its SVG backend; no fonts,
//! scripts or external references are emitted, so the report stays self-contained).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::ReportError;

const CURRENT: RGBColor = RGBColor(37, 99, 235);
const PREVIOUS: RGBColor = RGBColor(170, 178, 189);
const ALERT: RGBColor = RGBColor(220, 38, 38);
const GOOD: RGBColor = RGBColor(22, 163, 74);
const GRID: RGBColor = RGBColor(229, 231, 235);
const FONT: &str = "sans-serif";
/// Colors of line series beyond the first (sensitivity sweep).
const PALETTE: [RGBColor; 6] = [
    RGBColor(37, 99, 235),
    RGBColor(220, 38, 38),
    RGBColor(22, 163, 74),
    RGBColor(217, 119, 6),
    RGBColor(124, 58, 237),
    RGBColor(8, 145, 178),
];

/// `n` equal segments (plotters' discrete ranges include their end, so `0..n - 1`).
fn segments(
    n: usize,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize> {
    (0..n.saturating_sub(1)).into_segmented()
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws into a fresh SVG of `width` x `height` pixels and returns its text.
fn svg(
    chart: &str,
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> Result<String, ReportError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        let failed = |e: &dyn std::fmt::Display| ReportError::Chart {
            chart: chart.to_string(),
            message: e.to_string(),
        };
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(out)
}

/// One bar series of a horizontal bar chart.
pub struct BarSeries<'a> {
    pub name: &'a str,
    pub values: Vec<Option<f64>>,
    pub previous: bool,
}

/// Horizontal bars, one group per label (top to bottom), one bar per series; `log` draws the
/// value axis on a log scale (funnel counts span orders of magnitude).
pub fn bars(
    chart: &str,
    width: u32,
    labels: &[String],
    series: &[BarSeries<'_>],
    log: bool,
    format: fn(f64) -> String,
) -> Result<String, ReportError> {
    let n = labels.len().max(1);
    let height = 60 + 28 * n as u32 * series.len().max(1) as u32;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    let label_width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 28) as u32
        * 7
        + 12;
    svg(chart, width, height, |root| {
        let mut builder = ChartBuilder::on(root);
        builder
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(label_width);
        let row = |i: usize| SegmentValue::Exact(n - 1 - i);
        let centre = |i: usize| SegmentValue::CenterOf(n - 1 - i);
        let end = |i: usize| {
            if i == 0 {
                SegmentValue::Last
            } else {
                SegmentValue::Exact(n - i)
            }
        };
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(j) if *j < n => {
                labels.get(n - 1 - j).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        // Each series takes its share of the group's height: first series on top.
        let slot = |i: usize, k: usize| {
            let k_of = series.len().max(1);
            match (k_of, k) {
                (1, _) => (row(i), end(i)),
                (_, 0) => (centre(i), end(i)),
                _ => (row(i), centre(i)),
            }
        };
        if log {
            let x = (1f64..(max * 1.5).max(10.0)).log_scale();
            let mut c = builder.build_cartesian_2d(x, segments(n))?;
            draw_bars(&mut c, 1.0, series, &slot, &label_of, format)
        } else {
            let x = 0f64..(max * 1.15).max(1e-9);
            let mut c = builder.build_cartesian_2d(x, segments(n))?;
            draw_bars(&mut c, 0.0, series, &slot, &label_of, format)
        }
    })
}

/// A horizontal bar chart's drawing area: values across, one segment per label down.
type BarChart<'a, X> = ChartContext<
    'a,
    SVGBackend<'a>,
    Cartesian2d<
        X,
        plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>,
    >,
>;

/// The mesh, the bars (from `base`: 1 on a log axis, 0 on a linear one) and the legend of
/// [`bars`], whatever the value axis.
fn draw_bars<X>(
    c: &mut BarChart<'_, X>,
    base: f64,
    series: &[BarSeries<'_>],
    slot: &dyn Fn(usize, usize) -> (SegmentValue<usize>, SegmentValue<usize>),
    label_of: &dyn Fn(&SegmentValue<usize>) -> String,
    format: fn(f64) -> String,
) -> DrawResult
where
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    c.configure_mesh()
        .disable_y_mesh()
        .light_line_style(GRID)
        .y_label_formatter(label_of)
        .x_label_formatter(&|v| format(*v))
        .label_style((FONT, 12))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let color = if s.previous { PREVIOUS } else { CURRENT };
        c.draw_series(s.values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let (lo, hi) = slot(i, k);
            let mut r = Rectangle::new([(base, lo), (v.max(base), hi)], color.filled());
            r.set_margin(2, 2, 0, 0);
            Some(r)
        }))?
        .label(s.name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    if series.len() > 1 {
        c.configure_series_labels()
            .border_style(GRID)
            .background_style(WHITE)
            .label_font((FONT, 12))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    Ok(())
}

/// A value over time (one point per as-of date), e.g. the flag rate across plans.
pub fn trend(
    chart: &str,
    width: u32,
    points: &[(String, f64)],
    format: fn(f64) -> String,
) -> Result<String, ReportError> {
    let n = points.len().max(1);
    let max = points.iter().fold(0.0f64, |m, (_, v)| m.max(*v));
    svg(chart, width, 240, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(segments(n), 0f64..(max * 1.25).max(1e-9))?;
        c.configure_mesh()
            .disable_x_mesh()
            .light_line_style(GRID)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => {
                    points.get(*i).map(|p| p.0.clone()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .y_label_formatter(&|v| format(*v))
            .label_style((FONT, 12))
            .draw()?;
        let at = |i: usize, v: f64| (SegmentValue::CenterOf(i), v);
        c.draw_series(LineSeries::new(
            points.iter().enumerate().map(|(i, (_, v))| at(i, *v)),
            CURRENT.stroke_width(2),
        ))?;
        c.draw_series(points.iter().enumerate().map(|(i, (_, v))| {
            let last = i + 1 == points.len();
            Circle::new(
                at(i, *v),
                if last { 5 } else { 3 },
                if last {
                    ALERT.filled()
                } else {
                    CURRENT.filled()
                },
            )
        }))?;
        Ok(())
    })
}

/// A partner for the health quadrant.
pub struct PartnerPoint {
    pub revenue: f64,
    pub score: f64,
    pub at_risk: bool,
}

/// Health score against revenue, split into quadrants at the medians: high revenue with low
/// health (bottom right) needs attention first.
pub fn partner_quadrant(
    chart: &str,
    width: u32,
    partners: &[PartnerPoint],
) -> Result<String, ReportError> {
    let max_revenue = partners.iter().fold(0.0f64, |m, p| m.max(p.revenue));
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let mid_revenue = median(partners.iter().map(|p| p.revenue).collect());
    let mid_score = median(partners.iter().map(|p| p.score).collect());
    svg(chart, width, 360, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..(max_revenue * 1.1).max(1.0), 0f64..100f64)?;
        c.configure_mesh()
            .light_line_style(GRID)
            .x_desc("revenue in the window (USD)")
            .y_desc("health score")
            .x_label_formatter(&|v| crate::format::money(*v))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 12))
            .draw()?;
        let line = PREVIOUS.stroke_width(1);
        c.draw_series([
            PathElement::new(vec![(mid_revenue, 0.0), (mid_revenue, 100.0)], line),
            PathElement::new(vec![(0.0, mid_score), (max_revenue * 1.1, mid_score)], line),
        ])?;
        c.draw_series(partners.iter().map(|p| {
            let color = if p.at_risk { ALERT } else { CURRENT };
            Circle::new(
                (p.revenue, p.score.clamp(0.0, 100.0)),
                4,
                color.mix(0.8).filled(),
            )
        }))?;
        Ok(())
    })
}

/// One row of a forest plot: an estimate with its confidence interval.
pub struct ForestRow {
    pub label: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub significant: bool,
}

/// Estimates with confidence intervals against a zero line (experiment lifts).
pub fn forest(
    chart: &str,
    width: u32,
    rows: &[ForestRow],
    format: fn(f64) -> String,
) -> Result<String, ReportError> {
    let n = rows.len().max(1);
    let (lo, hi) = rows.iter().fold((0.0f64, 0.0f64), |(lo, hi), r| {
        (
            lo.min(r.low).min(r.estimate),
            hi.max(r.high).max(r.estimate),
        )
    });
    let pad = ((hi - lo) * 0.1).max(1e-6);
    let label_width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 36) as u32
        * 7
        + 12;
    svg(chart, width, 50 + 30 * n as u32, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(label_width)
            .build_cartesian_2d((lo - pad)..(hi + pad), segments(n))?;
        c.configure_mesh()
            .disable_y_mesh()
            .light_line_style(GRID)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(j) if *j < n => rows
                    .get(n - 1 - j)
                    .map(|r| r.label.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| format(*v))
            .label_style((FONT, 12))
            .draw()?;
        c.draw_series([PathElement::new(
            vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Last)],
            BLACK.stroke_width(1),
        )])?;
        for (i, r) in rows.iter().enumerate() {
            let y = SegmentValue::CenterOf(n - 1 - i);
            let color = if !r.significant {
                PREVIOUS
            } else if r.estimate >= 0.0 {
                GOOD
            } else {
                ALERT
            };
            c.draw_series([PathElement::new(
                vec![(r.low, y.clone()), (r.high, y.clone())],
                color.stroke_width(3),
            )])?;
            c.draw_series([Circle::new((r.estimate, y), 5, color.filled())])?;
        }
        Ok(())
    })
}

/// Lines of referrals flagged against the threshold factor, one per rule.
pub fn sweep(
    chart: &str,
    width: u32,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<String, ReportError> {
    let max = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let (fmin, fmax) = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .fold((1.0f64, 1.0f64), |(a, b), f| (a.min(f), b.max(f)));
    svg(chart, width, 300, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((fmin - 0.05)..(fmax + 0.05), 0f64..(max * 1.15).max(1.0))?;
        c.configure_mesh()
            .light_line_style(GRID)
            .x_desc("threshold factor")
            .y_desc("referrals flagged")
            .x_label_formatter(&|v| format!("{v:.2}x"))
            .y_label_formatter(&|v| crate::format::count(*v))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 12))
            .draw()?;
        for (k, (name, pts)) in lines.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                });
            c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .border_style(GRID)
            .background_style(WHITE)
            .label_font((FONT, 11))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_data_are_escaped_in_the_svg() {
        let svg = bars(
            "t",
            720,
            &["<script>alert(1)</script>".to_string(), "b & c".to_string()],
            &[BarSeries {
                name: "now",
                values: vec![Some(3.0), Some(5.0)],
                previous: false,
            }],
            false,
            crate::format::number,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("b &amp; c"));
        assert!(!svg.contains("http://") || svg.matches("http://").all(|_| svg.contains("xmlns")));
    }

    #[test]
    fn empty_inputs_still_draw() {
        assert!(trend("t", 720, &[], crate::format::pct).is_ok());
        assert!(forest("f", 720, &[], crate::format::signed_pct).is_ok());
        assert!(partner_quadrant("p", 720, &[]).is_ok());
        assert!(sweep("s", 720, &[]).is_ok());
    }
}
