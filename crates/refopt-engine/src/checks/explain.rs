//! `refopt explain`: each stage's SQL with its placeholders shown bound, and DataFusion's logical
//! (optionally physical) plan — without running anything.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use refopt_spec::{Pipeline, StageKind};

use crate::error::EngineError;

/// What `explain` prints for one stage.
#[derive(Debug, Clone)]
pub struct StageExplanation {
    pub id: String,
    /// The SQL with every `$placeholder` replaced by its value, for reading (the engine binds
    /// values as parameters; it never pastes them into SQL).
    pub sql: String,
    pub logical_plan: String,
    pub physical_plan: Option<String>,
}

/// Explains the pipeline's SQL stages in dependency order (all of them, or only `only`).
/// Upstream outputs are registered as empty tables of their planned schema, so nothing runs.
pub async fn explain(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &ParamValues,
    only: Option<&str>,
    physical: bool,
) -> Result<Vec<StageExplanation>, EngineError> {
    if let Some(id) = only
        && pipeline.stage(id).is_none()
    {
        let ids: Vec<&str> = pipeline.stages.iter().map(|s| s.id.as_str()).collect();
        let hint = refopt_spec::pipeline::closest(id, ids.iter().copied())
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        return Err(EngineError::Parameter(format!(
            "unknown stage `{id}`{hint}; stages: {}",
            ids.join(", ")
        )));
    }
    let mut out = Vec::new();
    for stage in &pipeline.stages {
        let Some((sql, _)) = stage.kind.sql() else {
            continue;
        };
        let df = ctx
            .sql(sql)
            .await
            .and_then(|df| df.with_param_values(params.clone()))
            .map_err(|e| {
                EngineError::Parameter(format!("stage `{}` does not plan: {e}", stage.id))
            })?;
        let schema: SchemaRef = match stage.kind {
            StageKind::Components { .. } => crate::execution::components::output_schema(),
            _ => Arc::new(df.schema().as_arrow().clone()),
        };
        if only.is_none_or(|id| id == stage.id) {
            let logical_plan = df.logical_plan().display_indent().to_string();
            let physical_plan = if physical {
                let plan = df.clone().create_physical_plan().await?;
                Some(displayable(plan.as_ref()).indent(true).to_string())
            } else {
                None
            };
            out.push(StageExplanation {
                id: stage.id.clone(),
                sql: show_bound(sql, params),
                logical_plan,
                physical_plan,
            });
        }
        let table = MemTable::try_new(schema, vec![vec![]])?;
        ctx.deregister_table(stage.id.as_str())?;
        ctx.register_table(stage.id.as_str(), Arc::new(table))?;
    }
    Ok(out)
}

/// The SQL text with placeholders replaced by SQL literals of their values (longest names
/// first, so `$window_start_day` is not read as `$window_start`).
fn show_bound(sql: &str, params: &ParamValues) -> String {
    let ParamValues::Map(map) = params else {
        return sql.to_string();
    };
    let mut names: Vec<&String> = map.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut text = sql.to_string();
    for name in names {
        let literal = match &map[name].value {
            ScalarValue::Utf8(Some(s)) => format!("'{}'", s.replace('\'', "''")),
            ScalarValue::TimestampMicrosecond(Some(us), _) => {
                match chrono::DateTime::from_timestamp_micros(*us) {
                    Some(t) => format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%SZ")),
                    None => us.to_string(),
                }
            }
            other => other.to_string(),
        };
        text = text.replace(&format!("${name}"), &literal);
    }
    text
}
