//! The result table: samples per measured quantity, printed as median, min and max.

use std::fmt::Write;

/// How a row's numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (shown as seconds from 10 s on).
    Ms,
    /// Nanoseconds.
    Ns,
    /// Kibibytes (shown as MiB from 10 MiB on).
    KiB,
    /// A ratio.
    Ratio,
    /// A number of things.
    Count,
}

/// One line of the table.
#[derive(Debug, Clone)]
enum Row {
    /// Measured samples.
    Samples {
        label: String,
        unit: Unit,
        samples: Vec<f64>,
    },
    /// A text in place of numbers: "n/a (why)", a goal verdict.
    Text { label: String, text: String },
}

/// The table, in sections.
#[derive(Debug, Default)]
pub struct Table {
    sections: Vec<(String, Vec<Row>)>,
}

impl Table {
    /// Starts a section titled `title`; rows go into the last section.
    pub fn section(&mut self, title: impl Into<String>) {
        self.sections.push((title.into(), Vec::new()));
    }

    fn rows(&mut self) -> &mut Vec<Row> {
        if self.sections.is_empty() {
            self.section("");
        }
        &mut self.sections.last_mut().expect("a section exists").1
    }

    /// A row of samples. Rows without samples are left out.
    pub fn samples(&mut self, label: impl Into<String>, unit: Unit, samples: &[f64]) {
        if samples.is_empty() {
            return;
        }
        self.rows().push(Row::Samples {
            label: label.into(),
            unit,
            samples: samples.to_vec(),
        });
    }

    /// A row with a text instead of numbers.
    pub fn text(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.rows().push(Row::Text {
            label: label.into(),
            text: text.into(),
        });
    }

    /// The table as text.
    pub fn render(&self) -> String {
        const LABEL: usize = 56;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:LABEL$} {:>4} {:>11} {:>11} {:>11}",
            "", "n", "median", "min", "max"
        );
        for (title, rows) in &self.sections {
            if !title.is_empty() {
                let _ = writeln!(out, "{title}");
            }
            for row in rows {
                match row {
                    Row::Samples {
                        label,
                        unit,
                        samples,
                    } => {
                        let (median, min, max) = summary(samples);
                        let _ = writeln!(
                            out,
                            "{label:LABEL$} {:>4} {:>11} {:>11} {:>11}",
                            samples.len(),
                            format(*unit, median),
                            format(*unit, min),
                            format(*unit, max)
                        );
                    }
                    Row::Text { label, text } => {
                        let _ = writeln!(out, "{label:LABEL$} {text}");
                    }
                }
            }
        }
        out
    }
}

/// Median, minimum and maximum of `samples` (not empty).
pub fn summary(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

/// The `p`-th percentile of `samples` (not empty), `p` in 0..=100: the smallest sample that at
/// least `p` percent of the samples do not exceed (nearest rank).
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `samples`, or `None` when there are none.
pub fn median(samples: &[f64]) -> Option<f64> {
    (!samples.is_empty()).then(|| summary(samples).0)
}

/// A value with its unit.
pub fn format(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Ms if value.abs() >= 10_000.0 => format!("{:.1} s", value / 1000.0),
        Unit::Ms if value.abs() >= 100.0 => format!("{value:.0} ms"),
        Unit::Ms => format!("{value:.1} ms"),
        Unit::Ns => format!("{value:.2} ns"),
        Unit::KiB if value.abs() >= 10.0 * 1024.0 => format!("{:.1} MiB", value / 1024.0),
        Unit::KiB => format!("{value:.0} KiB"),
        Unit::Ratio => format!("{value:.2}x"),
        Unit::Count => format!("{value:.0}"),
    }
}
