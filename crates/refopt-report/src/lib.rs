//! The dashboard snapshot of a plan: a self-contained HTML report (inline CSS and SVG charts,
//! no scripts, no network fetches) and a short Markdown summary for chat, PR or issue comments.
//!
//! Both are rendered with minijinja templates from [`view::ReportView`]: the plan plus what is
//! computed for display. The HTML template auto-escapes every value (partner names, dimension
//! values and rule ids are user input); the Markdown template escapes them with the `md` filter.

mod charts;
pub mod format;
pub mod insights;
pub mod view;

use minijinja::{AutoEscape, Environment, Value};
use refopt_plan::{Detail, Plan, PlanStore};

/// Errors while rendering a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("chart `{chart}` could not be drawn: {message}")]
    Chart { chart: String, message: String },
    #[error("report template {template}: {source}")]
    Template {
        template: &'static str,
        source: minijinja::Error,
    },
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub html: String,
    pub markdown: String,
}

/// File names of a plan version's report and summary, stored beside `plan-v<N>.json`.
pub fn file_names(version: u64) -> (String, String) {
    (
        refopt_plan::plan_file_name(version, "html"),
        refopt_plan::plan_file_name(version, "md"),
    )
}

/// The dashboard snapshot written beside a plan.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub html_url: String,
    pub markdown_url: String,
    /// The Markdown summary itself (for chat notifications).
    pub markdown: String,
}

/// Renders a stored plan's report and writes it beside the plan (`plan-v<N>.html`, `.md`,
/// create-only). `history`: earlier plans of the series, newest first.
pub async fn write_beside(
    store: &PlanStore,
    plan: &Plan,
    history: &[Plan],
    detail: Detail,
) -> Result<StoredReport, String> {
    let report = render(plan, history, detail).map_err(|e| e.to_string())?;
    let (html_name, markdown_name) = file_names(plan.version);
    let pipeline = &plan.pipeline.name;
    let html_url = store
        .write_artifact(pipeline, &html_name, report.html.into_bytes().into())
        .await
        .map_err(|e| e.to_string())?;
    let markdown_url = store
        .write_artifact(
            pipeline,
            &markdown_name,
            report.markdown.clone().into_bytes().into(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(StoredReport {
        html_url,
        markdown_url,
        markdown: report.markdown,
    })
}

/// Writes whichever of the plan's report files is missing (a run stopped after its plan was
/// stored and before its report); `Ok(None)` when both are there.
pub async fn complete_beside(
    store: &PlanStore,
    plan: &Plan,
    history: &[Plan],
    detail: Detail,
) -> Result<Option<StoredReport>, String> {
    let (html_name, markdown_name) = file_names(plan.version);
    let pipeline = &plan.pipeline.name;
    let exists = |name: String| async move {
        store
            .artifact_exists(pipeline, &name)
            .await
            .map_err(|e| e.to_string())
    };
    let (has_html, has_markdown) = (
        exists(html_name.clone()).await?,
        exists(markdown_name.clone()).await?,
    );
    if has_html && has_markdown {
        return Ok(None);
    }
    let report = render(plan, history, detail).map_err(|e| e.to_string())?;
    let mut urls = Vec::new();
    for (present, name, body) in [
        (has_html, &html_name, report.html.into_bytes()),
        (
            has_markdown,
            &markdown_name,
            report.markdown.clone().into_bytes(),
        ),
    ] {
        let url = if present {
            store.url_of_artifact(pipeline, name)
        } else {
            store
                .write_artifact(pipeline, name, body.into())
                .await
                .map_err(|e| e.to_string())?
        };
        urls.push(url);
    }
    let markdown_url = urls.pop().unwrap_or_default();
    let html_url = urls.pop().unwrap_or_default();
    Ok(Some(StoredReport {
        html_url,
        markdown_url,
        markdown: report.markdown,
    }))
}

const HTML_TEMPLATE: &str = "report.html";
const MARKDOWN_TEMPLATE: &str = "summary.md";

/// Renders `plan` at `detail`; `history` holds earlier plans of the same series, newest first
/// (they give the "vs previous plan" deltas and the flag-rate trend; empty is fine).
pub fn render(plan: &Plan, history: &[Plan], detail: Detail) -> Result<Report, ReportError> {
    let (html_name, _) = file_names(plan.version);
    let view = view::build(plan, history, detail, html_name)?;
    let env = environment();
    let context = Value::from_serialize(&view);
    let render = |name: &'static str| {
        env.get_template(name)
            .and_then(|t| t.render(&context))
            .map_err(|source| ReportError::Template {
                template: name,
                source,
            })
    };
    Ok(Report {
        html: render(HTML_TEMPLATE)?,
        markdown: render(MARKDOWN_TEMPLATE)?,
    })
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template(HTML_TEMPLATE, include_str!("../templates/report.html"))
        .expect("the HTML template parses (checked by the tests)");
    env.add_template(MARKDOWN_TEMPLATE, include_str!("../templates/summary.md"))
        .expect("the Markdown template parses (checked by the tests)");
    let or_dash = |v: Option<f64>, f: fn(f64) -> String| {
        v.filter(|v| v.is_finite())
            .map_or_else(|| "–".to_string(), f)
    };
    env.add_filter("count", move |v: Option<f64>| or_dash(v, format::count));
    // Plan money is a decimal string ("12.30"); amounts the view computes are numbers.
    env.add_filter("money", move |v: Value| {
        let amount = match v.as_str() {
            Some(text) => text.parse::<refopt_plan::Money>().ok().map(|m| m.to_f64()),
            None => f64::try_from(v).ok(),
        };
        or_dash(amount, format::money)
    });
    env.add_filter("pct", move |v: Option<f64>| or_dash(v, format::pct));
    env.add_filter("signed_pct", move |v: Option<f64>| {
        or_dash(v, format::signed_pct)
    });
    env.add_filter("number", move |v: Option<f64>| or_dash(v, format::number));
    env.add_filter("signed_pts", move |v: Option<f64>| {
        or_dash(v, format::signed_points)
    });
    env.add_filter("pvalue", move |v: Option<f64>| or_dash(v, format::p_value));
    env.add_filter("md", |v: &str| format::markdown_text(v));
    env.add_filter("clip", |v: &str, max: usize| format::clip(v, max));
    env.add_filter("mdc", |v: &str, max: usize| format::markdown_clip(v, max));
    env
}

#[cfg(test)]
mod tests;
