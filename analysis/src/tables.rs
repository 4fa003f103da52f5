//! Table 1 and the shots table as Markdown, CSV and LaTeX; recall.csv and per_class_recall.csv.
//! Markdown and LaTeX are for people (rounded, `mean ± std`); CSV is for programs (one number a
//! column, full precision, empty for missing).

use std::collections::BTreeSet;

use crate::rows::Tidy;
use crate::stats::PairedDifference;
use crate::summary::{self, ClassKey, Metric, PlanRow};

/// One table in its three renderings.
pub(crate) struct TableText {
    pub(crate) markdown: String,
    pub(crate) csv: String,
    pub(crate) latex: String,
}

/// An accuracy table: Table 1 (All / Head / Tail) or the shots table (Many / Medium / Few).
pub(crate) struct AccuracyTable<'a> {
    pub(crate) caption: &'a str,
    pub(crate) metrics: [Metric; 3],
    pub(crate) rows: &'a [PlanRow],
    /// The other grid axes' names.
    pub(crate) axis_names: &'a [String],
    /// Whether the base loss and the sampler get columns (Markdown and LaTeX: where they vary
    /// or are not the defaults; the CSV always has them).
    pub(crate) show_base: bool,
    pub(crate) show_sampler: bool,
    /// Whether the image policy and mixing get a column (in every format, as the stage-2
    /// method's).
    pub(crate) show_augment: bool,
    /// Whether the stage-2 method gets a column (in every format: a sweep without stage 2
    /// keeps its CSV's columns).
    pub(crate) show_stage2: bool,
    /// Whether the differences to CE alone are shown: only when the sweep has a CE-only plan.
    pub(crate) with_differences: bool,
}

/// What a difference cell shows, before it is written in one format or another.
enum DifferenceCell {
    /// The CE-only row compares with itself.
    Baseline,
    /// No value: the row has no succeeded seed.
    Empty,
    /// The row has values but no seed pairs with a CE-only job.
    Unpaired,
    Paired(PairedDifference),
}

fn difference_cell(row: &PlanRow, metric: Metric) -> DifferenceCell {
    let summary = row.metric(metric);
    if row.is_ce_only() {
        DifferenceCell::Baseline
    } else if summary.n == 0 {
        DifferenceCell::Empty
    } else {
        summary
            .vs_ce
            .map_or(DifferenceCell::Unpaired, DifferenceCell::Paired)
    }
}

/// `48.00 ± 3.61`, `48.00` for a single seed, empty for none.
fn mean_std(row: &PlanRow, metric: Metric, plus_minus: &str) -> String {
    let summary = row.metric(metric);
    match (summary.mean, summary.std) {
        (Some(mean), Some(std)) => format!("{mean:.2}{plus_minus}{std:.2}"),
        (Some(mean), None) => format!("{mean:.2}"),
        (None, _) => String::new(),
    }
}

fn mark(on: bool, symbol: &str) -> String {
    if on { symbol.to_owned() } else { String::new() }
}

/// The four check-mark columns: Comp. on Head, Comp. on Tail, PC on Head, PC on Tail.
fn checks(row: &PlanRow) -> [bool; 4] {
    [
        row.plan.comp.covers_head(),
        row.plan.comp.covers_tail(),
        row.plan.pc.covers_head(),
        row.plan.pc.covers_tail(),
    ]
}

impl AccuracyTable<'_> {
    /// The base-loss and sampler column names shown, and each row's cells for them.
    fn lead_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.show_base {
            names.push("base".to_owned());
        }
        if self.show_sampler {
            names.push("sampler".to_owned());
        }
        if self.show_augment {
            names.push("augment".to_owned());
        }
        if self.show_stage2 {
            names.push("stage 2".to_owned());
        }
        names
    }

    fn lead_cells(&self, row: &PlanRow) -> Vec<String> {
        let mut cells = Vec::new();
        if self.show_base {
            cells.push(row.base.to_string());
        }
        if self.show_sampler {
            cells.push(row.sampler.to_string());
        }
        if self.show_augment {
            cells.push(row.augment.clone());
        }
        if self.show_stage2 {
            cells.push(row.stage2.clone());
        }
        cells
    }

    pub(crate) fn render(&self) -> TableText {
        TableText {
            markdown: self.markdown(),
            csv: self.csv(),
            latex: self.latex(),
        }
    }

    /// Whether `row` has the highest mean of `metric`'s column, as printed (ties are all bold),
    /// as papers mark the best figure of each column rather than one row.
    fn is_column_best(&self, row: &PlanRow, metric: Metric) -> bool {
        let printed = |row: &PlanRow| row.metric(metric).mean.map(|mean| format!("{mean:.2}"));
        let best = self
            .rows
            .iter()
            .filter_map(|row| row.metric(metric).mean)
            .max_by(f64::total_cmp);
        best.is_some_and(|best| printed(row) == Some(format!("{best:.2}")))
    }

    fn markdown(&self) -> String {
        let lead = self.lead_names();
        let mut header = lead.clone();
        header.extend(
            ["Comp. on Head", "Comp. on Tail", "PC on Head", "PC on Tail"].map(String::from),
        );
        header.extend(self.axis_names.iter().cloned());
        header.push("n".to_owned());
        header.extend(self.metrics.map(|m| m.label().to_owned()));
        if self.with_differences {
            header.extend(self.metrics.map(|m| format!("Δ {} vs CE", m.label())));
        }
        header.push("notes".to_owned());
        let mut align = vec![":--"; lead.len()];
        align.extend([":-:"; 4]);
        align.extend(std::iter::repeat_n("--:", header.len() - lead.len() - 5));
        align.push(":--");

        let mut text = format!("{}\n\n", self.caption);
        text.push_str(&markdown_line(&header));
        text.push_str(&markdown_line(&align));
        for row in self.rows {
            let mut cells = self.lead_cells(row);
            cells.extend(checks(row).map(|on| mark(on, "✓")));
            cells.extend(row.axes.iter().map(|axis| axis.value.to_string()));
            cells.push(row.jobs.n_label());
            for metric in self.metrics {
                let cell = mean_std(row, metric, " ± ");
                cells.push(if self.is_column_best(row, metric) {
                    format!("**{cell}**")
                } else {
                    cell
                });
            }
            if self.with_differences {
                for metric in self.metrics {
                    cells.push(match difference_cell(row, metric) {
                        DifferenceCell::Baseline => "—".to_owned(),
                        DifferenceCell::Empty => String::new(),
                        DifferenceCell::Unpaired => "n/a".to_owned(),
                        DifferenceCell::Paired(d) => match d.ci {
                            Some(ci) => format!(
                                "{:+.2} [{:+.2}, {:+.2}]{}",
                                d.mean,
                                ci.low,
                                ci.high,
                                corrected(&d, "p=", "*")
                            ),
                            None => format!("{:+.2} [n/a]", d.mean),
                        },
                    });
                }
            }
            cells.push(row.jobs.missing());
            text.push_str(&markdown_line(&cells));
        }
        text
    }

    fn csv(&self) -> String {
        let mut header: Vec<String> = [
            "row",
            "plan",
            "comp_on",
            "pc_on",
            "base",
            "sampler",
            "comp_head",
            "comp_tail",
            "pc_head",
            "pc_tail",
        ]
        .map(String::from)
        .to_vec();
        if self.show_augment {
            header.push("augment".to_owned());
        }
        if self.show_stage2 {
            header.push("stage2".to_owned());
        }
        header.extend(self.axis_names.iter().cloned());
        header.extend(["jobs", "n", "failed", "pending", "running", "cancelled"].map(String::from));
        for metric in self.metrics {
            let key = metric.key();
            header.extend([
                format!("{key}_mean"),
                format!("{key}_std"),
                format!("{key}_n"),
            ]);
            if self.with_differences {
                header.extend([
                    format!("{key}_diff"),
                    format!("{key}_diff_pairs"),
                    format!("{key}_ci_low"),
                    format!("{key}_ci_high"),
                    format!("{key}_p"),
                    format!("{key}_p_holm"),
                    format!("{key}_holds"),
                ]);
            }
        }
        header.extend(["best", "notes"].map(String::from));

        let mut text = csv_line(&header);
        for (i, row) in self.rows.iter().enumerate() {
            let mut cells = vec![
                (i + 1).to_string(),
                row.plan.to_string(),
                row.plan.comp.to_string(),
                row.plan.pc.to_string(),
                row.base.to_string(),
                row.sampler.to_string(),
            ];
            cells.extend(checks(row).map(|on| u8::from(on).to_string()));
            if self.show_augment {
                cells.push(row.augment.clone());
            }
            if self.show_stage2 {
                cells.push(row.stage2.clone());
            }
            cells.extend(row.axes.iter().map(|axis| axis.value.to_string()));
            let jobs = &row.jobs;
            cells.extend(
                [
                    jobs.total,
                    jobs.succeeded,
                    jobs.failed,
                    jobs.pending,
                    jobs.running,
                    jobs.cancelled,
                ]
                .map(|count| count.to_string()),
            );
            for metric in self.metrics {
                let summary = row.metric(metric);
                cells.extend([
                    number(summary.mean),
                    number(summary.std),
                    summary.n.to_string(),
                ]);
                if self.with_differences {
                    let difference = summary.vs_ce;
                    cells.extend([
                        number(difference.map(|d| d.mean)),
                        difference.map_or(String::new(), |d| d.pairs.to_string()),
                        number(difference.and_then(|d| d.ci).map(|ci| ci.low)),
                        number(difference.and_then(|d| d.ci).map(|ci| ci.high)),
                        number(difference.and_then(|d| d.p)),
                        number(difference.and_then(|d| d.p_holm)),
                        difference
                            .and_then(|d| d.p_holm.map(|_| u8::from(d.holds()).to_string()))
                            .unwrap_or_default(),
                    ]);
                }
            }
            cells.push(u8::from(row.best).to_string());
            cells.push(row.jobs.missing());
            text.push_str(&csv_line(&cells));
        }
        text
    }

    fn latex(&self) -> String {
        let lead = self.lead_names();
        let columns = lead.len()
            + 4
            + self.axis_names.len()
            + 1
            + 3
            + if self.with_differences { 3 } else { 0 }
            + 1;
        let spec = format!(
            "{}cccc{}l",
            "l".repeat(lead.len()),
            "r".repeat(columns - lead.len() - 5)
        );
        let mut text = format!(
            "% {}\n% Needs \\usepackage{{booktabs}} and \\usepackage{{amssymb}} (for \\checkmark).\n",
            self.caption
        );
        text.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));
        let mut first: Vec<String> = lead.iter().map(|name| latex_escape(name)).collect();
        first.extend([
            "\\multicolumn{2}{c}{Comp. Loss}".to_owned(),
            "\\multicolumn{2}{c}{PC Loss}".to_owned(),
        ]);
        first.extend(self.axis_names.iter().map(|name| latex_escape(name)));
        first.push("$n$".to_owned());
        first.extend(self.metrics.map(|m| m.label().to_owned()));
        if self.with_differences {
            first.extend(
                self.metrics
                    .map(|m| format!("$\\Delta$ {} vs CE", m.label())),
            );
        }
        first.push("notes".to_owned());
        text.push_str(&latex_line(&first));
        let at = lead.len();
        text.push_str(&format!(
            "\\cmidrule(lr){{{}-{}}} \\cmidrule(lr){{{}-{}}}\n",
            at + 1,
            at + 2,
            at + 3,
            at + 4
        ));
        let mut second: Vec<String> = vec![String::new(); at];
        second.extend(["Head", "Tail", "Head", "Tail"].map(String::from));
        second.extend(std::iter::repeat_n(String::new(), columns - at - 4));
        text.push_str(&latex_line(&second));
        text.push_str("\\midrule\n");
        for row in self.rows {
            let mut cells: Vec<String> = self
                .lead_cells(row)
                .iter()
                .map(|cell| latex_escape(cell))
                .collect();
            cells.extend(checks(row).map(|on| mark(on, "\\checkmark")));
            cells.extend(row.axes.iter().map(|axis| axis.value.to_string()));
            cells.push(latex_escape(&row.jobs.n_label()));
            for metric in self.metrics {
                let cell = mean_std(row, metric, " $\\pm$ ");
                cells.push(if self.is_column_best(row, metric) {
                    format!("\\textbf{{{cell}}}")
                } else {
                    cell
                });
            }
            if self.with_differences {
                for metric in self.metrics {
                    cells.push(match difference_cell(row, metric) {
                        DifferenceCell::Baseline => "---".to_owned(),
                        DifferenceCell::Empty => String::new(),
                        DifferenceCell::Unpaired => "n/a".to_owned(),
                        DifferenceCell::Paired(d) => match d.ci {
                            Some(ci) => format!(
                                "${:+.2}$ [${:+.2}$, ${:+.2}$]{}",
                                d.mean,
                                ci.low,
                                ci.high,
                                corrected(&d, "$p=", "^{*}$")
                            ),
                            None => format!("${:+.2}$ [n/a]", d.mean),
                        },
                    });
                }
            }
            cells.push(latex_escape(&row.jobs.missing()));
            text.push_str(&latex_line(&cells));
        }
        text.push_str("\\bottomrule\n\\end{tabular}\n");
        text
    }
}

/// ` p=0.031*`: the Holm-adjusted p-value after `prefix`, then `mark` when the difference holds
/// after the correction (LaTeX closes its math there); empty without a p-value.
fn corrected(difference: &PairedDifference, prefix: &str, mark: &str) -> String {
    match difference.p_holm {
        Some(p) => {
            let (prefix, shown) = if p < 0.001 {
                (prefix.replace('=', ""), "<0.001".to_owned())
            } else {
                (prefix.to_owned(), format!("{p:.3}"))
            };
            let end = if difference.holds() {
                mark
            } else if mark.ends_with('$') {
                "$"
            } else {
                ""
            };
            format!(" {prefix}{shown}{end}")
        }
        None => String::new(),
    }
}

/// A float with all its digits, empty for `None`.
fn number(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

fn markdown_line<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<&str> = cells.iter().map(AsRef::as_ref).collect();
    format!("| {} |\n", cells.join(" | "))
}

fn latex_line(cells: &[String]) -> String {
    format!("{} \\\\\n", cells.join(" & "))
}

fn latex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '~' => escaped.push_str("\\textasciitilde{}"),
            '^' => escaped.push_str("\\textasciicircum{}"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// One CSV record; fields with a comma, quote or line break are quoted (RFC 4180).
pub(crate) fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|field| {
            let field = field.as_ref();
            if field.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                field.to_owned()
            }
        })
        .collect();
    format!("{}\n", fields.join(","))
}

/// recall.csv: one record per plan row and class group (head, tail, many, medium, few).
pub(crate) fn recall_csv(tidy: &Tidy, rows: &[PlanRow]) -> String {
    let mut header: Vec<String> = ["row", "plan", "base", "sampler"]
        .map(String::from)
        .to_vec();
    header.extend(tidy.axis_names.iter().cloned());
    header.extend(
        [
            "group",
            "classes",
            "n",
            "recall_mean",
            "recall_std",
            "precision_mean",
            "precision_std",
        ]
        .map(String::from),
    );
    let mut text = csv_line(&header);
    for (i, row) in rows.iter().enumerate() {
        for group in summary::group_recalls(tidy, row) {
            let mut cells = vec![
                (i + 1).to_string(),
                row.plan.to_string(),
                row.base.to_string(),
                row.sampler.to_string(),
            ];
            cells.extend(row.axes.iter().map(|axis| axis.value.to_string()));
            cells.extend([
                group.group.to_owned(),
                group.classes.to_string(),
                group.n.to_string(),
                number(group.recall_mean),
                number(group.recall_std),
                number(group.precision_mean),
                number(group.precision_std),
            ]);
            text.push_str(&csv_line(&cells));
        }
    }
    text
}

/// per_class_recall.csv: one record per class, one column per plan row (its label) with the
/// mean final recall over seeds.
pub(crate) fn per_class_recall_csv(tidy: &Tidy, rows: &[PlanRow]) -> String {
    let recalls: Vec<_> = rows
        .iter()
        .map(|row| summary::class_recalls(tidy, row, None))
        .collect();
    // A class appears once per (training count, group) it has: the same unless a grid axis
    // changes the data set (an imbalance ratio axis, say), where each version gets its line.
    let classes: BTreeSet<ClassKey> = recalls.iter().flat_map(|r| r.keys().copied()).collect();
    let mut header: Vec<String> = ["class", "train_count", "group", "shot"]
        .map(String::from)
        .to_vec();
    header.extend(rows.iter().map(PlanRow::label));
    let mut text = csv_line(&header);
    for class in classes {
        let mut cells = vec![
            class.class.to_string(),
            class.train_count.to_string(),
            class.group.to_owned(),
            class.shot.to_owned(),
        ];
        cells.extend(recalls.iter().map(|r| number(r.get(&class).copied())));
        text.push_str(&csv_line(&cells));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_and_quotes_are_quoted() {
        assert_eq!(
            csv_line(&["comp=tail,pc=head", "say \"hi\"", "plain"]),
            "\"comp=tail,pc=head\",\"say \"\"hi\"\"\",plain\n"
        );
    }

    #[test]
    fn latex_specials_are_escaped() {
        assert_eq!(
            latex_escape("pc_weight 50% & {x}"),
            "pc\\_weight 50\\% \\& \\{x\\}"
        );
    }
}
