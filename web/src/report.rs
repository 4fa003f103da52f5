//! The results so far: Table 1, the Many/Medium/Few table, the recall table and the figures,
//! made by [`ltsweep_analysis::live_report`] from the coordinator's records and results, as
//! one HTML fragment the page swaps in when a job ends.
//!
//! The fragment is kept per sweep until a job's state changes, so that many open pages cost
//! one report per change.
//!
//! Rows of plans with no result yet are left out (the fragment counts them); rows with some
//! seeds still missing are marked incomplete.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ltsweep_analysis::{Frames, LiveReport, PlanRow, SweepRecords, live_report};
use ltsweep_domain::SweepId;
use ltsweep_domain::status::SweepStatus;
use ltsweep_proto::client::{SweepApi, Which};
use ltsweep_proto::server::Caller;

use crate::AppState;
use crate::html::escape;
use crate::respond::remote_response;

/// The last fragment of each sweep and a fingerprint of the job states it was made from:
/// open pages refetch the report whenever a job ends, and each change is computed once.
#[derive(Default)]
pub(crate) struct ReportCache(Mutex<HashMap<String, (u64, Arc<str>)>>);

/// Sweeps whose fragment is kept; past it the cache starts over.
const CACHED_SWEEPS: usize = 64;

impl ReportCache {
    fn get(&self, sweep: &str, fingerprint: u64) -> Option<Arc<str>> {
        let cache = self.0.lock().ok()?;
        cache
            .get(sweep)
            .filter(|(made_from, _)| *made_from == fingerprint)
            .map(|(_, html)| Arc::clone(html))
    }

    fn put(&self, sweep: String, fingerprint: u64, html: Arc<str>) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= CACHED_SWEEPS && !cache.contains_key(&sweep) {
                cache.clear();
            }
            cache.insert(sweep, (fingerprint, html));
        }
    }
}

/// Every job's id and state: the report changes only when one of them does (a succeeded
/// job's result never changes).
fn fingerprint(status: &SweepStatus) -> u64 {
    let mut hasher = DefaultHasher::new();
    for job in &status.jobs {
        job.id.hash(&mut hasher);
        job.state.hash(&mut hasher);
    }
    hasher.finish()
}

/// The whole sweep, every page of it, with or without the jobs' specs.
async fn sweep_status(
    api: &SweepApi,
    sweep: &SweepId,
    with_specs: bool,
) -> Result<SweepStatus, Response> {
    api.status(Which::Sweep(sweep), with_specs)
        .await
        .map_err(|err| remote_response(&err))
}

pub(crate) async fn report_fragment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sweep): Path<String>,
) -> Response {
    match report_html(&state, caller, SweepId(sweep)).await {
        Ok(html) => Html(html.to_string()).into_response(),
        Err(response) => response,
    }
}

async fn report_html(
    state: &AppState,
    caller: Caller,
    sweep: SweepId,
) -> Result<Arc<str>, Response> {
    let api = state.api(caller);
    let states = sweep_status(&api, &sweep, false).await?;
    if let Some(html) = state.reports.get(sweep.as_str(), fingerprint(&states)) {
        return Ok(html);
    }
    let status = sweep_status(&api, &sweep, true).await?;
    let made_from = fingerprint(&status);
    let results = api
        .results(&sweep)
        .await
        .map_err(|err| remote_response(&err))?;
    // Polars and plotters are CPU work: off the async threads.
    let rendered = tokio::task::spawn_blocking(move || {
        let records = SweepRecords::from_status(status, results)?;
        let frames = Frames::from_records(&records)?;
        live_report(&frames).map(|report| render(&report))
    })
    .await;
    let html: Arc<str> = match rendered {
        Ok(Ok(html)) => html.into(),
        Ok(Err(err)) => {
            return Err((StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response());
        }
        Err(err) => {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the report broke off: {err}"),
            )
                .into_response());
        }
    };
    state.reports.put(sweep.0, made_from, Arc::clone(&html));
    Ok(html)
}

fn render(report: &LiveReport) -> String {
    let mut html = String::new();
    let waiting = report.rows.iter().filter(|r| r.jobs.succeeded == 0).count();
    if !report.notes.is_empty() {
        html.push_str(r#"<ul class="notes">"#);
        for note in &report.notes {
            let _ = write!(html, "<li>{}</li>", escape(note));
        }
        html.push_str("</ul>");
    }
    if waiting > 0 {
        let _ = write!(
            html,
            r#"<p class="waiting">{waiting} of {} rows wait for their first result; <span class="incomplete-key">italic rows</span> miss some seeds.</p>"#,
            report.rows.len()
        );
    }
    html.push_str("<h3>Table 1</h3>");
    html.push_str(&accuracy_table(
        "table1",
        &report.table1_markdown,
        &report.rows,
    ));
    html.push_str("<h3>By training images: Many / Medium / Few</h3>");
    html.push_str(&accuracy_table(
        "shots",
        &report.shots_markdown,
        &report.rows,
    ));
    html.push_str("<h3>Recall and precision by class group</h3>");
    html.push_str(&recall_table(&report.recall_csv, &report.rows));
    let _ = write!(
        html,
        r#"<h3>Accuracy curves</h3><figure id="curves">{}</figure><h3>Figure 1</h3><figure id="figure1">{}</figure>"#,
        svg_body(&report.curves_svg),
        svg_body(&report.figure1_svg)
    );
    html
}

/// The `<svg>` element of an SVG document, without the XML declaration, scalable with the
/// page.
fn svg_body(document: &str) -> &str {
    document
        .find("<svg")
        .map_or(document, |start| &document[start..])
}

fn cells(line: &str) -> Vec<&str> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    line.split('|').map(str::trim).collect()
}

/// `**x**` (the column's best) as bold, everything else as text.
fn cell_html(cell: &str) -> String {
    match cell.strip_prefix("**").and_then(|c| c.strip_suffix("**")) {
        Some(best) => format!("<strong>{}</strong>", escape(best)),
        None => escape(cell),
    }
}

fn row_class(row: &PlanRow) -> &'static str {
    if row.jobs.succeeded < row.jobs.total {
        "incomplete"
    } else {
        "complete"
    }
}

/// A Markdown table from the analysis crate (a caption, a blank line, a header, an alignment
/// line, then one line a row of `rows`) as HTML.
fn accuracy_table(id: &str, markdown: &str, rows: &[PlanRow]) -> String {
    let (caption, table) = markdown.split_once("\n\n").unwrap_or(("", markdown));
    let mut lines = table.lines().filter(|l| l.starts_with('|'));
    let header = lines.next().map(cells).unwrap_or_default();
    lines.next();
    let mut html = format!(
        r#"<div class="scroll"><table id="{id}" class="results"><caption>{}</caption><thead><tr>"#,
        escape(caption.trim())
    );
    for cell in &header {
        let _ = write!(html, "<th>{}</th>", escape(cell));
    }
    html.push_str("</tr></thead><tbody>");
    for (line, row) in lines.zip(rows) {
        if row.jobs.succeeded == 0 {
            continue;
        }
        let _ = write!(
            html,
            r#"<tr class="{}" data-plan="{}">"#,
            row_class(row),
            escape(&row.label())
        );
        for cell in cells(line) {
            let _ = write!(html, "<td>{}</td>", cell_html(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div>");
    html
}

/// One CSV record (RFC 4180 quoting, as the analysis crate writes it).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn percent(mean: &str, std: &str) -> String {
    let value = |text: &str| text.parse::<f64>().ok().map(|v| v * 100.0);
    match (value(mean), value(std)) {
        (Some(mean), Some(std)) => format!("{mean:.2} ± {std:.2}"),
        (Some(mean), None) => format!("{mean:.2}"),
        _ => String::new(),
    }
}

/// `recall.csv` as a table: one line a plan row and class group, recall and precision in
/// percent.
fn recall_table(csv: &str, rows: &[PlanRow]) -> String {
    let mut lines = csv.lines();
    let header = lines.next().map(csv_fields).unwrap_or_default();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(group), Some(classes), Some(n), Some(recall), Some(precision)) = (
        column("group"),
        column("classes"),
        column("n"),
        column("recall_mean"),
        column("precision_mean"),
    ) else {
        return r#"<p class="empty">The recall table has no recognisable columns.</p>"#.to_owned();
    };
    let mut html = String::from(
        r#"<div class="scroll"><table id="recall" class="results"><caption>Final recall and precision [%] by class group, mean ± std over seeds.</caption><thead><tr><th>row</th><th>group</th><th>classes</th><th>n</th><th>recall</th><th>precision</th></tr></thead><tbody>"#,
    );
    for line in lines {
        let fields = csv_fields(line);
        let row = fields
            .first()
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| rows.get(i.checked_sub(1)?));
        let Some(row) = row.filter(|row| row.jobs.succeeded > 0) else {
            continue;
        };
        let field = |i: usize| fields.get(i).map_or("", String::as_str);
        let _ = write!(
            html,
            r#"<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            row_class(row),
            escape(&row.label()),
            escape(field(group)),
            escape(field(classes)),
            escape(field(n)),
            percent(field(recall), field(recall + 1)),
            percent(field(precision), field(precision + 1)),
        );
    }
    html.push_str("</tbody></table></div>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_keep_empty_ones_and_bold() {
        assert_eq!(
            cells("| ✓ |  | **66.20 ± 3.42** |"),
            ["✓", "", "**66.20 ± 3.42**"]
        );
        assert_eq!(cell_html("**1 < 2**"), "<strong>1 &lt; 2</strong>");
    }

    #[test]
    fn csv_fields_unquote() {
        assert_eq!(
            csv_fields(r#"1,"a,b","say ""hi""",x"#),
            ["1", "a,b", r#"say "hi""#, "x"]
        );
        assert_eq!(percent("0.5", "0.01"), "50.00 ± 1.00");
        assert_eq!(percent("0.5", ""), "50.00");
        assert_eq!(percent("", ""), "");
    }
}
