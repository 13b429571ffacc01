//! The closed sets of the plan: every field whose value is one of a fixed list is one of these
//! enums, serialized by its snake_case name (the names are the plan's contract, listed in
//! `docs/plan-format.md` and as `enum` in the JSON Schema).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Implements `Display` (and `as_str`) by the serde name of each variant.
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name this value has in the plan JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How bad a finding, a fraud rule's match or a payout concentration is. Ordered from the least
/// to the most severe.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}
named!(Severity { Info => "info", Low => "low", Medium => "medium", High => "high", Critical => "critical" });

/// The level an alert breached.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    #[default]
    Warn,
    Critical,
}
named!(AlertLevel { Warn => "warn", Critical => "critical" });

/// What happened after a failed attempt of a task or rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    /// A transient failure; the task was tried again after the backoff.
    #[default]
    Retried,
    /// The task failed transiently on its last allowed attempt.
    GaveUp,
    /// The failure is not transient (bad SQL, missing column): not tried again.
    NotRetryable,
    /// A rule (fraud rule, partner health script, playbook) failed; it was skipped and the
    /// run went on.
    RuleSkipped,
}
named!(ErrorAction {
    Retried => "retried",
    GaveUp => "gave_up",
    NotRetryable => "not_retryable",
    RuleSkipped => "rule_skipped",
});

/// How a fraud rule selected its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleEvaluation {
    /// Inside DataFusion, as a vectorized filter: threshold conditions, and expressions that
    /// compile to DataFusion expressions; the sensitivity sweep in the same scan.
    Vectorized,
    /// Row by row in the Rhai interpreter (an expression with no compiled form).
    Interpreted,
}
named!(RuleEvaluation {
    Vectorized => "vectorized",
    Interpreted => "interpreted",
});

/// An experiment's decision (docs/experiments.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A treatment is significantly better on the primary metric and breaks no guardrail.
    Ship,
    /// Stop the experiment: harm, or no effect at the planned sample size.
    Stop,
    /// Not enough data for a decision yet.
    #[default]
    KeepRunning,
    /// The allocation differs from the declared split: fix assignment before reading results.
    InvestigateSrm,
}
named!(Decision {
    Ship => "ship",
    Stop => "stop",
    KeepRunning => "keep_running",
    InvestigateSrm => "investigate_srm",
});

/// Whether a success metric reached its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Met,
    NotMet,
    /// No value: the data to compute it is missing.
    #[default]
    Unknown,
}
named!(TargetStatus { Met => "met", NotMet => "not_met", Unknown => "unknown" });

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    #[default]
    HigherIsBetter,
    LowerIsBetter,
}
named!(Better { HigherIsBetter => "higher_is_better", LowerIsBetter => "lower_is_better" });

/// Where a suppression stands on the run's as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionStatus {
    /// In force: matching referrals are not flagged.
    #[default]
    Active,
    /// Past its expiry date: matching referrals are flagged again.
    Expired,
    /// Could not be applied (its column is missing from the referrals).
    Failed,
}
named!(SuppressionStatus { Active => "active", Expired => "expired", Failed => "failed" });

/// Partner tiers of the data contract, lowest first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    #[default]
    Bronze,
    Silver,
    Gold,
    Platinum,
}
named!(Tier { Bronze => "bronze", Silver => "silver", Gold => "gold", Platinum => "platinum" });

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Bronze, Tier::Silver, Tier::Gold, Tier::Platinum];

    /// The tier named `name` (a data value), if it is one.
    pub fn parse(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Why partner-ops is sent a drafted message for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommunicationReason {
    /// The partner health score suggests another tier (`partner_health.tier_changes`).
    #[default]
    TierChange,
    /// The score fell since the previous plan (`partner_health.health_drops`).
    HealthDrop,
}
named!(CommunicationReason { TierChange => "tier_change", HealthDrop => "health_drop" });

/// Which side of its level an alert's value went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Crossing {
    /// The value fell below the level (a rate that should stay high).
    #[default]
    Below,
    /// The value rose above the level.
    Above,
}
named!(Crossing { Below => "below", Above => "above" });

/// Where an escalation episode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeState {
    /// Breached, not yet in enough consecutive periods for the rip-cord.
    #[default]
    Breaching,
    /// The rip-cord was pulled: the episode stands at a ladder level.
    Escalated,
    /// No breach for the declared number of periods: the episode ended in this run.
    Recovered,
}
named!(EpisodeState { Breaching => "breaching", Escalated => "escalated", Recovered => "recovered" });

/// What a run changed in an escalation episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Nothing: the episode goes on as it stood.
    #[default]
    None,
    /// The first breach.
    Opened,
    /// Breached again in a new period, below the rip-cord.
    Breached,
    /// Breached in enough consecutive periods (or a fraud spike): level 1, every owner told.
    RipCord,
    /// Not acknowledged in time: one rung up.
    Advanced,
    /// Quiet for the declared number of periods: the episode ended.
    Recovered,
}
named!(Transition { None => "none", Opened => "opened", Breached => "breached", RipCord => "rip_cord", Advanced => "advanced", Recovered => "recovered" });

/// The trigger name of the fraud-spike escalation (alert triggers are
/// `alert:<alert id>:<level>`).
pub const FRAUD_SPIKE_TRIGGER: &str = "fraud_spike";

#[cfg(test)]
mod tests {
    use super::*;

    /// `Display` must say what serde writes, or the plan and the text disagree.
    #[test]
    fn display_is_the_serde_name() {
        fn check<T: Serialize + std::fmt::Display>(values: &[T]) {
            for v in values {
                assert_eq!(serde_json::to_value(v).unwrap(), v.to_string());
            }
        }
        check(&[
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]);
        check(&[AlertLevel::Warn, AlertLevel::Critical]);
        check(&[
            ErrorAction::Retried,
            ErrorAction::GaveUp,
            ErrorAction::NotRetryable,
            ErrorAction::RuleSkipped,
        ]);
        check(&[
            Decision::Ship,
            Decision::Stop,
            Decision::KeepRunning,
            Decision::InvestigateSrm,
        ]);
        check(&[
            TargetStatus::Met,
            TargetStatus::NotMet,
            TargetStatus::Unknown,
        ]);
        check(&[Better::HigherIsBetter, Better::LowerIsBetter]);
        check(&[Crossing::Below, Crossing::Above]);
        check(&[
            SuppressionStatus::Active,
            SuppressionStatus::Expired,
            SuppressionStatus::Failed,
        ]);
        check(&Tier::ALL);
        check(&[
            EpisodeState::Breaching,
            EpisodeState::Escalated,
            EpisodeState::Recovered,
        ]);
        check(&[
            Transition::None,
            Transition::Opened,
            Transition::Breached,
            Transition::RipCord,
            Transition::Advanced,
            Transition::Recovered,
        ]);
    }

    #[test]
    fn severities_order_from_info_to_critical() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::High < Severity::Critical);
        assert_eq!(Tier::parse("gold"), Some(Tier::Gold));
        assert_eq!(Tier::parse("Gold"), None);
    }
}

/// What a declared data test checks (pipeline YAML `tests:` of a dataset).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DataTestKind {
    /// Rows whose column is null.
    #[default]
    NotNull,
    /// Rows whose (non-null) column value repeats an earlier row's.
    Unique,
    /// Rows whose (non-null) column value is not in the accepted list.
    AcceptedValues,
    /// Rows whose (non-null) column value has no match in another dataset's column (orphans).
    Relationships,
    /// Hours from the newest event to the window's end.
    Freshness,
    /// Relative change of the row count vs the previous window.
    RowCountChange,
    /// Rows whose floating-point column is NaN or infinite (stages read them as null).
    Finite,
    /// Rows whose money column has more than two decimal places or is out of range (stages
    /// read it to the nearest cent, or as null out of range).
    Money,
}
named!(DataTestKind {
    NotNull => "not_null",
    Unique => "unique",
    AcceptedValues => "accepted_values",
    Relationships => "relationships",
    Freshness => "freshness",
    RowCountChange => "row_count_change",
    Finite => "finite",
    Money => "money",
});

impl DataTestKind {
    /// Every kind, in documentation order.
    pub const ALL: [DataTestKind; 6] = [
        DataTestKind::NotNull,
        DataTestKind::Unique,
        DataTestKind::AcceptedValues,
        DataTestKind::Relationships,
        DataTestKind::Freshness,
        DataTestKind::RowCountChange,
    ];

    /// The kind named `name` in YAML.
    pub fn parse(name: &str) -> Option<DataTestKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Outcome of a data test: `warn` raises a finding; `error` raises an alert and blocks
/// `refopt plan approve`. Ordered from the least to the most severe.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DataTestStatus {
    #[default]
    Pass,
    Warn,
    Error,
}
named!(DataTestStatus { Pass => "pass", Warn => "warn", Error => "error" });
