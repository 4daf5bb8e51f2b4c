//! Bar charts as inline SVG, drawn on the server: a value axis with round steps, time
//! labels, stacked series coloured by CSS classes (so the stylesheet picks light or dark
//! colours and the CSP needs no inline style), a `<title>` and `<desc>` for screen
//! readers, and every text escaped here, since the markup is inserted as it is.

use std::fmt::Write as _;

/// What a chart's numbers count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Plain counts (requests, tokens).
    Count,
    /// Millionths of a US dollar.
    UsdMicros,
}

/// One stacked series of a chart.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Its name in the legend and the bars' tooltips.
    pub(crate) name: String,
    /// The CSS class its bars take (its colour).
    pub(crate) class: &'static str,
    /// One value per bar.
    pub(crate) values: Vec<u64>,
}

/// A bar chart: one bar per label, each series stacked on the one before.
#[derive(Debug, Clone)]
pub(crate) struct BarChart {
    /// Prefix of the chart's element ids (unique in the page).
    pub(crate) id: String,
    /// What the chart shows; its accessible name.
    pub(crate) title: String,
    /// The chart in words: what a reader who cannot see it needs.
    pub(crate) desc: String,
    /// One per bar: the bar's time, shown under it when `shown`.
    pub(crate) labels: Vec<Label>,
    /// The series, bottom first.
    pub(crate) series: Vec<Series>,
    /// What the values count.
    pub(crate) unit: Unit,
}

/// A bar's label.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    /// The text (a time).
    pub(crate) text: String,
    /// Whether it is written under the bar (every few bars are, so labels do not overlap).
    pub(crate) shown: bool,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 88.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 28.0;
/// Gridlines above the zero line.
const STEPS: u128 = 4;

/// `text` safe inside SVG text and attribute values: markup characters as entities,
/// control characters (which XML forbids) as U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A cost as dollars with every micro shown: `$0.000123`, `$12.500000`.
pub(crate) fn usd(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A count as an axis label: `950`, `1.5k`, `12M`, up to `18E` for `u64::MAX`.
fn compact(value: u128) -> String {
    const UNITS: [(u128, &str); 6] = [
        (1_000_000_000_000_000_000, "E"),
        (1_000_000_000_000_000, "P"),
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    for (size, suffix) in UNITS {
        if value >= size {
            let tenths = value * 10 / size;
            return if tenths.is_multiple_of(10) || tenths >= 100 {
                format!("{}{suffix}", tenths / 10)
            } else {
                format!("{}.{}{suffix}", tenths / 10, tenths % 10)
            };
        }
    }
    value.to_string()
}

/// An axis value in `unit`.
fn axis_label(value: u128, unit: Unit) -> String {
    match unit {
        Unit::Count => compact(value),
        Unit::UsdMicros if value == 0 => "$0".to_string(),
        Unit::UsdMicros if value >= 1_000_000 => format!("${}", compact(value / 1_000_000)),
        Unit::UsdMicros => {
            let text = format!("{:.6}", value as f64 / 1e6);
            format!("${}", text.trim_end_matches('0'))
        }
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `value` (1 for 0).
fn round_step(value: u128) -> u128 {
    let mut power = 1u128;
    loop {
        for m in [1, 2, 5] {
            if m * power >= value {
                return m * power;
            }
        }
        power *= 10;
    }
}

/// The chart as an `<svg>` element.
pub(crate) fn render(chart: &BarChart) -> String {
    let bars = chart.labels.len();
    let stack = |i: usize| -> u128 {
        chart
            .series
            .iter()
            .map(|s| u128::from(s.values.get(i).copied().unwrap_or(0)))
            .sum()
    };
    let max = (0..bars).map(stack).max().unwrap_or(0);
    let step = round_step(max.div_ceil(STEPS));
    let top = step * STEPS;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let id = escape(&chart.id);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         aria-labelledby=\"{id}-title {id}-desc\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(&chart.title),
        escape(&chart.desc)
    );
    for k in 0..=STEPS {
        let y = base - plot_h * (k as f64) / (STEPS as f64);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&axis_label(step * k, chart.unit))
        );
    }
    if bars > 0 {
        let slot = plot_w / bars as f64;
        let bar_w = (slot * 0.8).max(1.0);
        for i in 0..bars {
            let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
            let mut below = 0u128;
            for series in &chart.series {
                let value = u128::from(series.values.get(i).copied().unwrap_or(0));
                if value == 0 {
                    continue;
                }
                let y0 = base - plot_h * (below as f64 / top as f64);
                below += value;
                let y1 = base - plot_h * (below as f64 / top as f64);
                // A value too small to see still shows as a sliver.
                let h = (y0 - y1).max(1.0);
                let label = &chart.labels[i].text;
                let shown = match chart.unit {
                    Unit::Count => value.to_string(),
                    Unit::UsdMicros => usd(u64::try_from(value).unwrap_or(u64::MAX)),
                };
                let _ = write!(
                    svg,
                    "<rect class=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" \
                     height=\"{h:.1}\"><title>{}: {} {}</title></rect>",
                    series.class,
                    y0 - h,
                    escape(label),
                    shown,
                    escape(&series.name)
                );
            }
            let label = &chart.labels[i];
            if label.shown {
                let _ = write!(
                    svg,
                    "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    x + bar_w / 2.0,
                    HEIGHT - 8.0,
                    escape(&label.text)
                );
            }
        }
    }
    if chart.series.len() > 1 {
        let mut x = LEFT;
        for series in &chart.series {
            let _ = write!(
                svg,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"6\" width=\"10\" height=\"10\"/>\
                 <text class=\"legend\" x=\"{:.1}\" y=\"15\">{}</text>",
                series.class,
                x + 14.0,
                escape(&series.name)
            );
            x += 14.0 + 8.0 * series.name.chars().count() as f64 + 20.0;
        }
    }
    if max == 0 {
        let _ = write!(
            svg,
            "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">None in this window</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(title: &str, values: Vec<u64>, unit: Unit) -> BarChart {
        BarChart {
            id: "c".to_string(),
            title: title.to_string(),
            desc: format!("{title}, per minute"),
            labels: (0..values.len())
                .map(|i| Label {
                    text: format!("10:{i:02}"),
                    shown: i % 10 == 0,
                })
                .collect(),
            series: vec![Series {
                name: "requests".to_string(),
                class: "bar-a",
                values,
            }],
            unit,
        }
    }

    #[test]
    fn the_chart_is_an_accessible_image_with_axis_labels() {
        let svg = render(&chart("Requests", vec![0, 3, 7], Unit::Count));
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"c-title c-desc\""));
        assert!(svg.contains("<title id=\"c-title\">Requests</title>"));
        assert!(svg.contains("<desc id=\"c-desc\">Requests, per minute</desc>"));
        assert!(svg.contains(">10:00</text>"), "the first label is shown");
        assert!(!svg.contains(">10:01</text>"), "not every label is");
        assert_eq!(
            svg.matches("<rect class=\"bar-a\"").count(),
            2,
            "no bar for 0"
        );
        assert!(svg.contains("<title>10:02: 7 requests</title>"));
        // Steps of 2 up to 8: 0 2 4 6 8.
        for v in ["0", "2", "4", "6", "8"] {
            assert!(
                svg.contains(&format!("text-anchor=\"end\">{v}</text>")),
                "{v}: {svg}"
            );
        }
        assert!(!svg.contains("style"), "colours come from classes (CSP)");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let hostile = "<script>alert(1)</script>\"'&\u{0}\u{202E}";
        let mut c = chart(hostile, vec![1], Unit::Count);
        c.id = "x\"onload=\"alert(1)".to_string();
        c.labels[0].text = hostile.to_string();
        c.series[0].name = hostile.to_string();
        c.series.push(Series {
            name: hostile.to_string(),
            class: "bar-b",
            values: vec![1],
        });
        let svg = render(&c);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("\"onload"), "{svg}");
        assert!(!svg.contains('\u{0}'));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;\u{FFFD}"));
    }

    #[test]
    fn zero_data_draws_axes_and_says_so() {
        let svg = render(&chart("Cost", vec![0; 60], Unit::UsdMicros));
        assert!(!svg.contains("<rect"));
        assert!(svg.contains("None in this window"));
        assert!(svg.contains(">$0</text>"));
        let empty = render(&chart("Nothing", Vec::new(), Unit::Count));
        assert!(empty.contains("None in this window") && empty.ends_with("</svg>"));
    }

    #[test]
    fn huge_numbers_neither_overflow_nor_escape_the_plot() {
        let mut c = chart("Tokens", vec![u64::MAX, u64::MAX / 2], Unit::Count);
        c.series.push(Series {
            name: "output".to_string(),
            class: "bar-b",
            values: vec![u64::MAX, 1],
        });
        let svg = render(&c);
        assert!(svg.contains("E</text>"), "exa-scale axis: {svg}");
        for y in svg.split(" y=\"").skip(1) {
            let y: f64 = y.split('"').next().unwrap_or("").parse().unwrap_or(-1.0);
            assert!((0.0..=HEIGHT).contains(&y), "y {y} inside the chart");
        }
        let cost = render(&chart("Cost", vec![u64::MAX], Unit::UsdMicros));
        assert!(
            cost.contains("$18446744073709.551615"),
            "the exact cost in the tooltip"
        );
    }

    #[test]
    fn costs_read_as_dollars() {
        assert_eq!(usd(0), "$0.000000");
        assert_eq!(usd(1_234_567), "$1.234567");
        assert_eq!(axis_label(0, Unit::UsdMicros), "$0");
        assert_eq!(axis_label(50, Unit::UsdMicros), "$0.00005");
        assert_eq!(axis_label(2_000_000, Unit::UsdMicros), "$2");
        assert_eq!(axis_label(2_500_000_000, Unit::UsdMicros), "$2.5k");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1_500), "1.5k");
        assert_eq!(compact(12_000_000), "12M");
        assert_eq!(round_step(0), 1);
        assert_eq!(round_step(3), 5);
        assert_eq!(round_step(11), 20);
    }
}
