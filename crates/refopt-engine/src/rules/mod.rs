//! The editable rules (`rules/`, YAML and sandboxed Rhai) and the phases that apply them:
//!
//! 1. [`review`] (after the stages): the fraud review over the feature tables and the plan's
//!    risk section.
//! 2. [`apply`] (once the earlier plans are known): KPI alerts, escalations up the ladder, the
//!    partner health score (with drops since the previous plan) and the partner messages.
//! 3. [`backlog`] (over the assembled plan): the playbook.
//!
//! A rule that fails is recorded as a skipped rule ([`RuleResults::skipped`]) and the others
//! still run.

pub(crate) mod alerts;
pub(crate) mod escalation;
pub(crate) mod fraud;
pub(crate) mod json;
pub(crate) mod partner_health;
pub(crate) mod partner_messages;
pub(crate) mod playbook;
pub(crate) mod risk;
pub(crate) mod rows;
pub mod source;

use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use refopt_plan::{
    Alert, BacklogItem, Detail, ErrorAction, ErrorEvent, Escalation, EscalationState, Finding,
    PartnerCommunication, PartnerHealth, Plan, Risk,
};
use refopt_spec::{Pipeline, Role, RuleSet};

use crate::error::EngineError;
use crate::execution::executor::Execution;
use crate::execution::roles;
use crate::metrics::{Measures, role_output};

pub use fraud::FraudReview;

/// Threshold factors of the sensitivity sweep at `--detail full`.
const SWEEP_FACTORS: [f64; 2] = [0.8, 1.25];

/// The fraud review and the risk section of one run.
#[derive(Debug)]
pub struct Review {
    /// `None` when the rules have no fraud rules.
    pub fraud: Option<FraudReview>,
    pub risk: Risk,
    /// Time spent in the fraud review and in the risk section.
    pub review_ms: u64,
    pub risk_ms: u64,
}

/// Runs the fraud rules over the feature tables of `ctx` (the stage outputs) and builds the
/// risk section.
pub async fn review(
    ctx: &SessionContext,
    rules: &RuleSet,
    params: &ParamValues,
    as_of: chrono::NaiveDate,
    detail: Detail,
    engine: fraud::RuleEngine,
) -> Result<Review, EngineError> {
    let started = std::time::Instant::now();
    let Some(fraud_rules) = &rules.fraud else {
        return Ok(Review {
            fraud: None,
            risk: Risk::default(),
            review_ms: 0,
            risk_ms: 0,
        });
    };
    let sweep_factors: &[f64] = match detail {
        Detail::Full => &SWEEP_FACTORS,
        Detail::Summary => &[],
    };
    let options = fraud::ReviewOptions {
        suppressions: rules.suppressions.as_ref(),
        as_of,
        sweep_factors,
        engine,
    };
    let review = fraud::review(ctx, fraud_rules, options).await?;
    let review_ms = started.elapsed().as_millis() as u64;
    let limits = fraud_rules.payout_concentration.as_ref();
    let risk = risk::risk_section(ctx, &review, params, limits).await?;
    Ok(Review {
        fraud: Some(review),
        risk,
        review_ms,
        risk_ms: started.elapsed().as_millis() as u64 - review_ms,
    })
}

/// What the rules phase reads.
pub struct RuleInputs<'a> {
    pub rules: &'a RuleSet,
    pub pipeline: &'a Pipeline,
    pub execution: &'a Execution,
    pub measures: &'a Measures,
    /// The risk section of [`review`] (its flag rate feeds the fraud-spike trigger).
    pub risk: &'a Risk,
    pub alert_threshold: Option<f64>,
    pub detail: Detail,
    pub run_id: &'a str,
    pub as_of: chrono::NaiveDate,
    /// Days of the window (the partner health script scales its counts to 30 days).
    pub window_days: u32,
    /// Earlier plans of the series, newest first.
    pub previous: &'a [Plan],
    /// Acknowledgements of escalation episodes recorded for the series.
    pub acks: &'a [refopt_plan::AcknowledgementRecord],
}

/// What the rules phase decided.
#[derive(Debug, Default)]
pub struct RuleResults {
    pub alerts: Vec<Alert>,
    /// Alerts that could not be evaluated for lack of data, as findings.
    pub gated: Vec<Finding>,
    pub escalations: Vec<Escalation>,
    /// The escalation memory this plan passes on.
    pub escalation_state: EscalationState,
    /// An episode stands escalated (the rip-cord was pulled and it has not recovered).
    pub escalated: bool,
    pub partner_health: PartnerHealth,
    /// Drafted messages to partners with a tier change or a health drop.
    pub partner_communications: Vec<PartnerCommunication>,
    /// Rules that failed and were skipped (the fraud rules' own failures are in the risk
    /// section).
    pub skipped: Vec<ErrorEvent>,
}

/// Applies the alerts, the escalation ladder, the partner health score and the partner
/// messages.
pub fn apply(inputs: &RuleInputs<'_>) -> Result<RuleResults, EngineError> {
    let rules = inputs.rules;
    let mut results = RuleResults::default();
    if let Some(alert_rules) = &rules.alerts {
        let out = alerts::evaluate(
            alert_rules,
            &inputs.measures.funnel_all_dimensions,
            &inputs.measures.kpis,
            inputs.alert_threshold,
        );
        results.alerts = out.alerts;
        results.gated = out.gated;
    }
    if let Some(ladder) = &rules.ladder {
        let outcome = escalation::escalate(
            ladder,
            &escalation::Observation {
                alerts: &results.alerts,
                flag_rate: inputs.risk.flag_rate,
                as_of: inputs.as_of,
                run_id: inputs.run_id,
                previous: inputs.previous,
                acks: inputs.acks,
            },
        );
        results.escalations = outcome.escalations;
        results.escalation_state = outcome.state;
        results.escalated = outcome.escalated;
    }
    if let Some((stage, batches)) =
        role_output(inputs.pipeline, inputs.execution, Role::PartnerHealth)
    {
        roles::read(stage, Role::PartnerHealth, batches)?;
        results.partner_health = partner_health::score(
            batches,
            rules.partner_health.as_ref(),
            inputs.window_days,
            inputs.detail == Detail::Full,
            inputs.previous,
        )?;
    }
    if let Some(messages) = &rules.partner_messages {
        results.partner_communications = partner_messages::draft(&results.partner_health, messages);
    }
    if let Some(e) = &results.partner_health.error {
        results
            .skipped
            .push(skipped_rule("partner_health_score", e.clone()));
    }
    Ok(results)
}

/// The playbook's backlog for an assembled plan; a failing playbook is recorded in the plan's
/// error events and leaves the backlog empty.
pub fn backlog(rules: &RuleSet, plan: &Plan) -> Result<Vec<BacklogItem>, ErrorEvent> {
    match &rules.playbook {
        Some(script) => playbook::run(script, plan, &rules.ladder_owners())
            .map_err(|e| skipped_rule("playbook", e)),
        None => Ok(Vec::new()),
    }
}

/// The error event of a rule that failed and was skipped.
pub fn skipped_rule(task_id: &str, error: String) -> ErrorEvent {
    ErrorEvent {
        task_id: task_id.to_string(),
        attempt: 1,
        error,
        action: ErrorAction::RuleSkipped,
        backoff_ms: None,
    }
}

/// A fraud rule's declared severity as the plan writes it.
pub(crate) fn plan_severity(s: refopt_spec::Severity) -> refopt_plan::Severity {
    match s {
        refopt_spec::Severity::Low => refopt_plan::Severity::Low,
        refopt_spec::Severity::Medium => refopt_plan::Severity::Medium,
        refopt_spec::Severity::High => refopt_plan::Severity::High,
        refopt_spec::Severity::Critical => refopt_plan::Severity::Critical,
    }
}
