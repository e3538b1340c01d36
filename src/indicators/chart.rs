//! A GHT's convergence trajectory as an SVG chart: one line per domain, the mean
//! attainment (0–100, see `ScorecardRow.attainment`) of its indicators at each period
//! up to the scorecard's. The ARS looks rather than reads.

use anyhow::Context;
use plotters::prelude::*;

use super::values::Period;
use crate::proto;

/// Line colours, one per domain (1–5), readable on white and by most colour-blind readers.
const COLOURS: [RGBColor; 5] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 86, 86),
];

/// One domain's line: its number, its label, and (period index, mean attainment) points.
pub type Trajectory = (u32, String, Vec<(usize, f64)>);

/// Mean attainment per domain and period, from a scorecard, with the periods on the
/// x axis.
pub fn trajectories(card: &proto::Scorecard) -> (Vec<String>, Vec<Trajectory>) {
    let shown = Period::parse("period", &card.period).map(|p| p.key()).unwrap_or(i64::MAX);
    let mut periods: Vec<String> =
        card.periods.iter().filter(|p| Period::parse("period", p).is_ok_and(|x| x.key() < shown)).cloned().collect();
    periods.push(card.period.clone());
    let series = card
        .domains
        .iter()
        .map(|d| {
            let rows: Vec<&proto::ScorecardRow> =
                card.rows.iter().filter(|r| r.indicator.as_ref().is_some_and(|i| i.domain == d.number)).collect();
            let points = periods
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let values: Vec<f64> = rows
                        .iter()
                        .filter_map(|r| {
                            if *p == card.period {
                                Some(r.attainment)
                            } else {
                                r.previous.iter().find(|x| x.period == *p).map(|x| x.attainment)
                            }
                        })
                        .filter(|a| *a >= 0.0)
                        .collect();
                    (!values.is_empty()).then(|| (i, values.iter().sum::<f64>() / values.len() as f64))
                })
                .collect();
            (d.number, format!("{} {}", d.number, d.label_fr), points)
        })
        .collect();
    (periods, series)
}

/// The chart as an SVG document.
pub fn render_svg(card: &proto::Scorecard) -> anyhow::Result<String> {
    let (periods, series) = trajectories(card);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
        root.fill(&WHITE).context("drawing the background")?;
        let title = if card.establishment_id.is_empty() {
            format!("GHT {} — trajectoire de convergence par domaine", card.ght_id)
        } else {
            format!("{} — prérequis hôpital numérique par domaine", card.establishment_id)
        };
        let last = periods.len().saturating_sub(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.2f64..last as f64 + 0.2, 0f64..105f64)
            .context("building the chart")?;
        let labels = periods.clone();
        chart
            .configure_mesh()
            .x_labels(periods.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .max_light_lines(1)
            .y_label_formatter(&|y| format!("{y:.0} %"))
            .y_desc("atteinte de la cible")
            .x_desc("période")
            .draw()
            .context("drawing the axes")?;
        for (number, label, points) in series {
            let colour = COLOURS[(number as usize).saturating_sub(1) % COLOURS.len()];
            let xy: Vec<(f64, f64)> = points.iter().map(|(i, a)| (*i as f64, *a)).collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), colour.stroke_width(3)))
                .context("drawing a line")?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
            chart
                .draw_series(xy.into_iter().map(|p| Circle::new(p, 4, colour.filled())))
                .context("drawing the points")?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .context("drawing the legend")?;
        root.present().context("writing the SVG")?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(domain: u32, attainment: f64, previous: &[(&str, f64)]) -> proto::ScorecardRow {
        proto::ScorecardRow {
            indicator: Some(proto::IndicatorDefinition { domain, ..Default::default() }),
            attainment,
            previous: previous
                .iter()
                .map(|(p, a)| proto::PeriodPoint { period: p.to_string(), attainment: *a, ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    fn card() -> proto::Scorecard {
        proto::Scorecard {
            ght_id: "540000213".into(),
            period: "2025".into(),
            periods: vec!["2023".into(), "2024".into(), "2025".into(), "2026".into()],
            rows: vec![
                row(1, 100.0, &[("2023", 0.0), ("2024", 50.0)]),
                row(1, 50.0, &[("2024", 50.0)]),
                row(2, -1.0, &[("2023", 100.0)]),
            ],
            domains: vec![
                proto::DomainSummary { number: 1, label_fr: "Pilotage".into(), ..Default::default() },
                proto::DomainSummary { number: 2, label_fr: "DSI commune".into(), ..Default::default() },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn trajectories_average_per_domain_and_period() {
        let (periods, series) = trajectories(&card());
        // 2026 is after the scorecard's period: not drawn.
        assert_eq!(periods, vec!["2023", "2024", "2025"]);
        assert_eq!(series[0].2, vec![(0, 0.0), (1, 50.0), (2, 75.0)]);
        // Domain 2 has no value in 2025 (-1): the point is left out.
        assert_eq!(series[1].2, vec![(0, 100.0)]);
    }

    #[test]
    fn renders_an_svg_with_the_domains() {
        let svg = render_svg(&card()).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("1 Pilotage") && svg.contains("2 DSI commune") && svg.contains("2024"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
