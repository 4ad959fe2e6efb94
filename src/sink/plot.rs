//! Learning-curve plot (SVG, plotters): training loss and the accuracy on every
//! evaluation set, epoch by epoch.

use crate::item::EpochMetrics;
use plotters::prelude::*;

/// Renders the learning curve of `history` as an SVG document.
pub fn learning_curve_svg(title: &str, history: &[EpochMetrics]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(450);
        let last = history.last().map(|m| m.epoch).unwrap_or(1).max(2);
        let first = history.first().map(|m| m.epoch).unwrap_or(1).min(last - 1);

        let max_loss = history
            .iter()
            .map(|m| m.train_loss)
            .fold(0.0f64, f64::max)
            .max(1e-6)
            * 1.05;
        let mut chart = ChartBuilder::on(&left)
            .caption(format!("{title}: training loss"), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(first as f64..last as f64, 0.0..max_loss)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                history.iter().map(|m| (m.epoch as f64, m.train_loss)),
                &RED,
            ))
            .map_err(plot_err)?;

        let mut chart = ChartBuilder::on(&right)
            .caption("accuracy (%)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(first as f64..last as f64, 0.0..100.0)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .draw()
            .map_err(plot_err)?;
        let colours = [BLUE, GREEN, MAGENTA, CYAN, BLACK];
        chart
            .draw_series(LineSeries::new(
                history
                    .iter()
                    .map(|m| (m.epoch as f64, 100.0 * m.train_acc)),
                &RED,
            ))
            .map_err(plot_err)?
            .label("train")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED));
        let names: Vec<String> = history
            .iter()
            .find(|m| !m.eval.is_empty())
            .map(|m| m.eval.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            let c = colours[i % colours.len()];
            chart
                .draw_series(LineSeries::new(
                    history
                        .iter()
                        .filter_map(|m| m.eval.get(i).map(|(_, a)| (m.epoch as f64, 100.0 * a))),
                    &c,
                ))
                .map_err(plot_err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], c));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Mean learning curves of several cross-validated pipelines side by side (see
/// [`crate::results::cv_curves`]): training loss on the left, held-out error on the right,
/// one colour per row, labelled with its epochs and folds (and seeds, where several), in a
/// legend placed in the corner of the error panel that its curves leave free.
pub fn cv_curves_svg(curves: &[crate::results::CvCurve]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(500);
        let last = curves
            .iter()
            .flat_map(|c| c.loss.iter().chain(&c.error).map(|p| p.0))
            .max()
            .unwrap_or(1)
            .max(2) as f64;
        let max_loss = curves
            .iter()
            .flat_map(|c| c.loss.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1e-6)
            * 1.05;
        let max_err = curves
            .iter()
            .flat_map(|c| c.error.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .clamp(1.0, 100.0);
        let colours = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        let labels: Vec<String> = curves
            .iter()
            .map(|c| {
                if c.seeds > 1 {
                    format!(
                        "{} ({} epochs, {} folds x {} seeds)",
                        c.name, c.epochs, c.folds, c.seeds
                    )
                } else {
                    format!("{} ({} epochs, {} folds)", c.name, c.epochs, c.folds)
                }
            })
            .collect();
        let mut loss = ChartBuilder::on(&left)
            .caption("training loss (mean over runs)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(1.0..last, 0.0..max_loss)
            .map_err(plot_err)?;
        loss.configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(plot_err)?;
        let mut err = ChartBuilder::on(&right)
            .caption("held-out error % (mean over runs)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(1.0..last, 0.0..max_err * 1.05)
            .map_err(plot_err)?;
        err.configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(plot_err)?;
        for (i, (curve, label)) in curves.iter().zip(&labels).enumerate() {
            let (l, e) = (&curve.loss, &curve.error);
            let c = colours[i % colours.len()];
            loss.draw_series(LineSeries::new(l.iter().map(|p| (p.0 as f64, p.1)), &c))
                .map_err(plot_err)?;
            err.draw_series(LineSeries::new(e.iter().map(|p| (p.0 as f64, p.1)), &c))
                .map_err(plot_err)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], c));
            err.draw_series(
                e.iter()
                    .map(|p| Circle::new((p.0 as f64, p.1), 3, c.filled())),
            )
            .map_err(plot_err)?;
        }
        // the legend's share of the plotting area (about 7 px a character, 18 px a line,
        // in a plotting area of about 435 x 370 px)
        let longest = labels.iter().map(String::len).max().unwrap_or(0);
        let share = (
            ((longest * 7 + 40) as f64 / 435.0).min(1.0),
            ((labels.len() * 18 + 10) as f64 / 370.0).min(1.0),
        );
        let points: Vec<(f64, f64)> = curves
            .iter()
            .flat_map(|c| c.error.iter().map(|p| (p.0 as f64, p.1)))
            .collect();
        let corner = emptiest_corner(&points, (1.0, last), (0.0, max_err * 1.05), share);
        err.configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The corner of a plot with `x` and `y` ranges where a legend taking `share` of its
/// width and height covers the fewest of the lines through `points` (consecutive points
/// of one curve follow each other; the lines are sampled between them). Ties go to the
/// upper right, then upper left, lower right, lower left.
fn emptiest_corner(
    points: &[(f64, f64)],
    x: (f64, f64),
    y: (f64, f64),
    share: (f64, f64),
) -> SeriesLabelPosition {
    let (w, h) = ((x.1 - x.0) * share.0, (y.1 - y.0) * share.1);
    let mut samples = Vec::new();
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if x1 < x0 {
            continue; // the next curve starts
        }
        for i in 0..10 {
            let t = f64::from(i) / 10.0;
            samples.push((x0 + t * (x1 - x0), y0 + t * (y1 - y0)));
        }
    }
    samples.extend_from_slice(points);
    let corners = [
        (SeriesLabelPosition::UpperRight, x.1 - w, y.1 - h),
        (SeriesLabelPosition::UpperLeft, x.0, y.1 - h),
        (SeriesLabelPosition::LowerRight, x.1 - w, y.0),
        (SeriesLabelPosition::LowerLeft, x.0, y.0),
    ];
    let covered = |(x0, y0): (f64, f64)| {
        samples
            .iter()
            .filter(|(sx, sy)| (x0..=x0 + w).contains(sx) && (y0..=y0 + h).contains(sy))
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, cx, cy)| covered((cx, cy)))
        .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the learning curve: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_where_the_curves_are_not() {
        let corner =
            |points: &[(f64, f64)]| emptiest_corner(points, (1.0, 100.0), (0.0, 100.0), (0.4, 0.3));
        // falling error curves leave the upper right free
        let falling = [(1.0, 90.0), (50.0, 30.0), (100.0, 20.0)];
        assert!(matches!(corner(&falling), SeriesLabelPosition::UpperRight));
        // a curve ending high on the right, the one between its points included
        let rising = [(1.0, 10.0), (100.0, 90.0)];
        assert!(matches!(corner(&rising), SeriesLabelPosition::UpperLeft));
        // high all along, and a second curve (starting again at epoch 1) low on the left
        let two = [(1.0, 90.0), (100.0, 90.0), (1.0, 10.0), (50.0, 10.0)];
        assert!(matches!(corner(&two), SeriesLabelPosition::LowerRight));
    }

    #[test]
    fn svg_has_a_line_per_series() {
        let h: Vec<EpochMetrics> = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_acc: 0.5,
                discrepancy: None,
                eval: vec![("a".into(), 0.6), ("b".into(), 0.4)],
                open_set: Vec::new(),
                iterations: 2,
                phase_s: Vec::new(),
                train_s: 0.1,
                eval_s: 0.1,
                elapsed_s: e as f64,
            })
            .collect();
        let svg = learning_curve_svg("t", &h).unwrap();
        assert!(svg.starts_with("<svg"));
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        for label in ["train", "a", "b", "t: training loss"] {
            assert!(texts.contains(&label), "{label} missing");
        }
    }

    #[test]
    fn cv_curves_draw_a_labelled_line_per_pipeline() {
        let curve = |name: &str, loss: Vec<(usize, f64)>, error: Vec<(usize, f64)>| {
            crate::results::CvCurve {
                name: name.into(),
                folds: 6,
                seeds: if name == "bc" { 3 } else { 1 },
                epochs: 2,
                loss,
                error,
            }
        };
        let c = vec![
            curve("std", vec![(1, 2.0), (2, 1.0)], vec![(2, 40.0)]),
            curve(
                "bc",
                vec![(1, 2.5), (2, 1.5), (3, 1.0)],
                vec![(2, 50.0), (3, 45.0)],
            ),
        ];
        let svg = cv_curves_svg(&c).unwrap();
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        for label in [
            "std (2 epochs, 6 folds)",
            "bc (2 epochs, 6 folds x 3 seeds)",
            "held-out error % (mean over runs)",
        ] {
            assert!(texts.contains(&label), "{label} missing");
        }
        // one marker per evaluated epoch
        assert_eq!(svg.matches("<circle").count(), 3);
    }

    #[test]
    fn embedding_draws_every_point_with_its_domain() {
        let points: Vec<EmbeddedPoint> = (0..30)
            .map(|i| EmbeddedPoint {
                xy: [i as f64, (i * i) as f64],
                target: i % 3 == 0,
                unknown: false,
            })
            .collect();
        let two = embedding_panels_svg(&[
            ("before".to_string(), points.clone()),
            ("after".to_string(), points[..10].to_vec()),
        ])
        .unwrap();
        // 30 + 10 points plus two legend markers per panel, both titles
        assert_eq!(two.matches("<circle").count(), 44);
        let lines: Vec<&str> = two.lines().map(str::trim).collect();
        assert!(
            lines.contains(&"before") && lines.contains(&"after"),
            "{two}"
        );
        assert!(two.contains("width=\"1280\""));
        let svg = embedding_svg("e", &points).unwrap();
        // 30 points plus two legend markers
        assert_eq!(svg.matches("<circle").count(), 32);
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"source") && texts.contains(&"target"));

        // open set: target examples of unknown classes are a third series
        let open: Vec<EmbeddedPoint> = points
            .iter()
            .enumerate()
            .map(|(i, p)| EmbeddedPoint {
                unknown: p.target && i % 2 == 0,
                ..*p
            })
            .collect();
        let svg = embedding_svg("open", &open).unwrap();
        assert_eq!(svg.matches("<circle").count(), 33);
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(
            texts.contains(&"target, unknown") && texts.contains(&"target, known classes"),
            "{svg}"
        );
        assert!(svg.contains("#787878"), "grey unknown points");
    }
}

/// One point of an embedding plot.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmbeddedPoint {
    /// Position in the plane.
    pub xy: [f64; 2],
    /// Whether it is a source (`false`) or target (`true`) example.
    pub target: bool,
    /// Open-set runs: a target example of a class the source never had.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// Renders a 2-D embedding as an SVG scatter plot: source examples in blue, target
/// examples in red, and for open-set runs target examples of unknown classes in grey.
pub fn embedding_svg(title: &str, points: &[EmbeddedPoint]) -> anyhow::Result<String> {
    embedding_panels_svg(&[(title.to_string(), points.to_vec())])
}

/// Several embeddings side by side (e.g. before and after adaptation), one panel each
/// with its own title and axes.
pub fn embedding_panels_svg(panels: &[(String, Vec<EmbeddedPoint>)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let side = 640u32;
        let root = SVGBackend::with_string(&mut svg, (side * panels.len().max(1) as u32, side))
            .into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for ((title, points), area) in panels.iter().zip(&areas) {
            embedding_panel(area, title, points)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn embedding_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    points: &[EmbeddedPoint],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let span = |f: fn(&EmbeddedPoint) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo.is_finite() && hi > lo {
            let pad = (hi - lo) * 0.05;
            (lo - pad)..(hi + pad)
        } else {
            -1.0..1.0
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .build_cartesian_2d(span(|p| p.xy[0]), span(|p| p.xy[1]))
        .map_err(plot_err)?;
    let source = RGBColor(31, 90, 200);
    let target = RGBColor(210, 40, 40);
    let unknown = RGBColor(120, 120, 120);
    let open = points.iter().any(|p| p.unknown);
    let series = [
        (false, false, source, "source"),
        (
            true,
            false,
            target,
            if open {
                "target, known classes"
            } else {
                "target"
            },
        ),
        (true, true, unknown, "target, unknown"),
    ];
    for (is_target, is_unknown, colour, name) in series {
        if is_unknown && !open {
            continue;
        }
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.target == is_target && p.unknown == is_unknown)
                    .map(|p| Circle::new((p.xy[0], p.xy[1]), 3, colour.mix(0.7).filled())),
            )
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 7, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}
