//! A rules folder: every rule file refopt reads, loaded together so that all problems across
//! files are reported in one pass. Files that are absent are simply not used.

use std::path::{Path, PathBuf};

use crate::alerts::{Alerts, Ladder};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::distribution::{Approvals, Notifications};
use crate::experiments::Experiments;
use crate::fraud::FraudRules;
use crate::partner_health::PartnerHealthRules;
use crate::partner_messages::PartnerMessages;
use crate::sandbox::{Script, compile_file};
use crate::suppressions::Suppressions;
use crate::targets::SuccessTargets;

/// Every rule file of a folder.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub dir: PathBuf,
    pub fraud: Option<FraudRules>,
    pub alerts: Option<Alerts>,
    pub ladder: Option<Ladder>,
    pub partner_health: Option<PartnerHealthRules>,
    pub partner_messages: Option<PartnerMessages>,
    pub playbook: Option<Script>,
    pub suppressions: Option<Suppressions>,
    pub experiments: Option<Experiments>,
    pub approvals: Option<Approvals>,
    pub notifications: Option<Notifications>,
    /// Success-metric targets (the seed's defaults without targets.yaml).
    pub targets: Option<SuccessTargets>,
}

impl RuleSet {
    /// Loads `dir/{fraud,alerts,ladder,partner_health,partner_messages,suppressions,
    /// experiments,approvals,notifications,targets}.yaml` and
    /// `dir/{partner_health,playbook}.rhai`, collecting the problems of every file.
    pub fn load(dir: &Path) -> Result<RuleSet, Diagnostics> {
        if !dir.is_dir() {
            return Err(Diagnostics(vec![
                Diagnostic::new(
                    crate::diagnostic::Location::file_start(dir),
                    format!("rules folder {} not found", dir.display()),
                )
                .code(crate::diagnostic::Code::Unreadable),
            ]));
        }
        let mut errors = Vec::new();
        let mut set = RuleSet {
            dir: dir.to_path_buf(),
            ..RuleSet::default()
        };
        fn load<T>(
            file: PathBuf,
            f: impl Fn(&Path) -> Result<T, Diagnostics>,
            errors: &mut Vec<Diagnostic>,
        ) -> Option<T> {
            if !file.is_file() {
                return None;
            }
            f(&file).map_err(|e| errors.extend(e.0)).ok()
        }
        set.fraud = load(dir.join("fraud.yaml"), FraudRules::load, &mut errors);
        set.alerts = load(dir.join("alerts.yaml"), Alerts::load, &mut errors);
        set.ladder = load(dir.join("ladder.yaml"), Ladder::load, &mut errors);
        set.partner_health = load(
            dir.join("partner_health.yaml"),
            PartnerHealthRules::load,
            &mut errors,
        );
        set.partner_messages = load(
            dir.join("partner_messages.yaml"),
            PartnerMessages::load,
            &mut errors,
        );
        set.playbook = load(
            dir.join("playbook.rhai"),
            |f| compile_file(f, &["plan"]).map_err(Diagnostics::from),
            &mut errors,
        );
        set.suppressions = load(
            dir.join("suppressions.yaml"),
            Suppressions::load,
            &mut errors,
        );
        set.approvals = load(dir.join("approvals.yaml"), Approvals::load, &mut errors);
        set.notifications = load(
            dir.join("notifications.yaml"),
            Notifications::load,
            &mut errors,
        );
        set.experiments = load(dir.join("experiments.yaml"), Experiments::load, &mut errors);
        set.targets = load(dir.join("targets.yaml"), SuccessTargets::load, &mut errors);
        if let Some(suppressions) = &set.suppressions {
            let rule_ids = set
                .fraud
                .as_ref()
                .map(|f| f.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            errors.extend(suppressions.check_rules(rule_ids.iter().copied()));
        }
        if let (Some(alerts), Some(ladder)) = (&set.alerts, &set.ladder) {
            let owners: Vec<&str> = ladder
                .owners()
                .chain(std::iter::once(ladder.triggers.fraud_spike.owner.as_str()))
                .chain(KNOWN_AGENTS.iter().copied())
                .collect();
            for a in &alerts.rules {
                if !owners.contains(&a.owner.as_str()) {
                    errors.push(Diagnostic::new(
                        a.location.clone(),
                        format!("alert `{}`: owner `{}` is neither a ladder owner nor a known agent ({})", a.id, a.owner, KNOWN_AGENTS.join(", ")),
                    ).code(crate::diagnostic::Code::UnknownReference));
                }
            }
            if let Some(approvals) = &set.approvals {
                for (kind, role) in &approvals.required {
                    if !owners.contains(&role.as_str()) {
                        errors.push(Diagnostic::new(
                            crate::diagnostic::Location::file_start(&approvals.file),
                            format!("approvals: `{kind}` needs sign-off from `{role}`, which is neither a ladder owner nor a known agent ({})", KNOWN_AGENTS.join(", ")),
                        ).code(crate::diagnostic::Code::UnknownReference));
                    }
                }
            }
            if let Some(messages) = &set.partner_messages
                && !owners.contains(&messages.owner.as_str())
            {
                errors.push(Diagnostic::new(
                    messages.owner_location.clone(),
                    format!("partner messages: owner `{}` is neither a ladder owner nor a known agent ({})", messages.owner, KNOWN_AGENTS.join(", ")),
                ).code(crate::diagnostic::Code::UnknownReference));
            }
            for e in set.experiments.iter().flat_map(|x| &x.experiments) {
                if !owners.contains(&e.owner.as_str()) {
                    errors.push(Diagnostic::new(
                        e.location.clone(),
                        format!("experiment `{}`: owner `{}` is neither a ladder owner nor a known agent ({})", e.id, e.owner, KNOWN_AGENTS.join(", ")),
                    ).code(crate::diagnostic::Code::UnknownReference));
                }
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(Diagnostics(errors))
        }
    }
}

impl RuleSet {
    /// The ladder's owners and fallbacks (empty without a ladder): valid backlog owners besides
    /// the agents.
    pub fn ladder_owners(&self) -> Vec<String> {
        self.ladder
            .iter()
            .flat_map(|l| l.owners())
            .map(String::from)
            .collect()
    }
}

/// The seed's agents, valid owners of alerts and backlog items.
pub const KNOWN_AGENTS: [&str; 4] = [
    "referral-architect",
    "lifecycle-ops",
    "fraud-detection",
    "partner-ops",
];
