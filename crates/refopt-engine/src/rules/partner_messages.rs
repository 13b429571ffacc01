//! Partner communications: one drafted message per partner with a tier change or a health
//! drop, from the templates of `rules/partner_messages.yaml`, for partner-ops to review.

use refopt_plan::{CommunicationReason, PartnerCommunication, PartnerHealth};
use refopt_spec::partner_messages::{PartnerMessages, Placeholder};

/// The numbers a message can show about one partner.
struct Subject<'a> {
    partner_id: &'a str,
    name: &'a str,
    tier: &'a str,
    score: f64,
    referrals: i64,
    referrals_previous: i64,
    revenue: refopt_plan::Money,
    /// Tier changes: from, to, reason.
    tier_change: Option<(String, String, &'a str)>,
    /// Health drops: previous score, drop, previous plan version.
    health_drop: Option<(f64, f64, u64)>,
}

impl Subject<'_> {
    /// The text of `p` (placeholders of the other reason are rejected when the templates load,
    /// so they never reach here; they would render empty).
    fn value(&self, p: Placeholder) -> String {
        match p {
            Placeholder::PartnerId => self.partner_id.to_string(),
            Placeholder::Name => self.name.to_string(),
            Placeholder::Tier => self.tier.to_string(),
            Placeholder::Score => format!("{:.1}", self.score),
            Placeholder::Referrals => self.referrals.to_string(),
            Placeholder::ReferralsPrevious => self.referrals_previous.to_string(),
            Placeholder::Revenue => format!("{:.0}", self.revenue.to_f64()),
            Placeholder::FromTier => self.tier_change.as_ref().map_or("", |t| &t.0).to_string(),
            Placeholder::ToTier => self.tier_change.as_ref().map_or("", |t| &t.1).to_string(),
            Placeholder::Reason => self.tier_change.as_ref().map_or("", |t| t.2).to_string(),
            Placeholder::PreviousScore => self
                .health_drop
                .map_or(String::new(), |d| format!("{:.1}", d.0)),
            Placeholder::Drop => self
                .health_drop
                .map_or(String::new(), |d| format!("{:.1}", d.1)),
            Placeholder::PreviousVersion => {
                self.health_drop.map_or(String::new(), |d| d.2.to_string())
            }
        }
    }
}

/// One message per partner in `health.tier_changes` or `health.health_drops` (a partner in
/// both gets the tier change message), ordered by partner id.
pub fn draft(health: &PartnerHealth, messages: &PartnerMessages) -> Vec<PartnerCommunication> {
    let mut subjects: Vec<(CommunicationReason, Subject<'_>)> = health
        .tier_changes
        .iter()
        .map(|t| {
            (
                CommunicationReason::TierChange,
                Subject {
                    partner_id: &t.partner_id,
                    name: &t.name,
                    tier: t.from.as_str(),
                    score: t.score,
                    referrals: t.referrals,
                    referrals_previous: t.referrals_previous,
                    revenue: t.revenue,
                    tier_change: Some((t.from.to_string(), t.to.to_string(), &t.reason)),
                    health_drop: None,
                },
            )
        })
        .collect();
    for d in &health.health_drops {
        if subjects.iter().any(|(_, s)| s.partner_id == d.partner_id) {
            continue;
        }
        subjects.push((
            CommunicationReason::HealthDrop,
            Subject {
                partner_id: &d.partner_id,
                name: &d.name,
                tier: &d.tier,
                score: d.score,
                referrals: d.referrals,
                referrals_previous: d.referrals_previous,
                revenue: d.revenue,
                tier_change: None,
                health_drop: Some((d.previous_score, d.drop, d.previous_version)),
            },
        ));
    }
    subjects.sort_by(|a, b| a.1.partner_id.cmp(b.1.partner_id));
    let file = messages
        .file
        .file_name()
        .map_or_else(|| "partner_messages.yaml".into(), |f| f.to_string_lossy());
    subjects
        .into_iter()
        .map(|(reason, s)| {
            let template = messages.template(reason);
            PartnerCommunication {
                partner_id: s.partner_id.to_string(),
                partner_name: s.name.to_string(),
                reason,
                subject: template.subject.render(|p| s.value(p)),
                body: template.body.render(|p| s.value(p)),
                owner: messages.owner.clone(),
                template: format!("rules/{file}#{reason}"),
            }
        })
        .collect()
}
