//! Partner messages (`rules/partner_messages.yaml`): one subject and body template per reason
//! (a tier change, a health drop). Templates use `{placeholder}` substitution (`{{` and `}}`
//! for literal braces); every placeholder is checked against the set its reason provides when
//! the file loads, so a misspelt name is a located error, never a blank in a sent message.

use std::path::{Path, PathBuf};

use refopt_plan::CommunicationReason;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Location};
use crate::yaml;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessages {
    version: Spanned<u32>,
    owner: Spanned<String>,
    templates: RawTemplates,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    tier_change: RawTemplate,
    health_drop: RawTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    subject: Spanned<String>,
    body: Spanned<String>,
}

/// A value a template can show. Numbers are rendered by the engine (scores and drops with one
/// decimal, revenue in whole dollars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    PartnerId,
    Name,
    Tier,
    Score,
    Referrals,
    ReferralsPrevious,
    Revenue,
    /// Tier changes: the current and the suggested tier, and the rule that suggested it.
    FromTier,
    ToTier,
    Reason,
    /// Health drops: the previous plan's score, the drop in points and that plan's version.
    PreviousScore,
    Drop,
    PreviousVersion,
}

impl Placeholder {
    const COMMON: [Placeholder; 7] = [
        Placeholder::PartnerId,
        Placeholder::Name,
        Placeholder::Tier,
        Placeholder::Score,
        Placeholder::Referrals,
        Placeholder::ReferralsPrevious,
        Placeholder::Revenue,
    ];

    /// The name written between braces.
    pub fn as_str(self) -> &'static str {
        match self {
            Placeholder::PartnerId => "partner_id",
            Placeholder::Name => "name",
            Placeholder::Tier => "tier",
            Placeholder::Score => "score",
            Placeholder::Referrals => "referrals",
            Placeholder::ReferralsPrevious => "referrals_previous",
            Placeholder::Revenue => "revenue",
            Placeholder::FromTier => "from",
            Placeholder::ToTier => "to",
            Placeholder::Reason => "reason",
            Placeholder::PreviousScore => "previous_score",
            Placeholder::Drop => "drop",
            Placeholder::PreviousVersion => "previous_version",
        }
    }

    /// The placeholders a template for `reason` may use.
    pub fn allowed(reason: CommunicationReason) -> Vec<Placeholder> {
        let specific: &[Placeholder] = match reason {
            CommunicationReason::TierChange => &[
                Placeholder::FromTier,
                Placeholder::ToTier,
                Placeholder::Reason,
            ],
            CommunicationReason::HealthDrop => &[
                Placeholder::PreviousScore,
                Placeholder::Drop,
                Placeholder::PreviousVersion,
            ],
        };
        Self::COMMON.iter().chain(specific).copied().collect()
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// A parsed template: text and placeholders, each known to be valid for its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text` for `reason`; problems are described with the offending piece, which
    /// [`locate`] turns into a position.
    fn parse(text: &str, reason: CommunicationReason) -> Result<Template, TemplateError> {
        let allowed = Placeholder::allowed(reason);
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(TemplateError::Unmatched("}".into()));
            } else {
                let Some(end) = tail.find('}') else {
                    return Err(TemplateError::Unmatched(tail.chars().take(20).collect()));
                };
                let name = &tail[1..end];
                let Some(p) = allowed.iter().find(|p| p.as_str() == name.trim()) else {
                    return Err(TemplateError::Unknown(name.to_string()));
                };
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Value(*p));
                rest = &tail[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The text with every placeholder replaced by `value(placeholder)`.
    pub fn render(&self, value: impl Fn(Placeholder) -> String) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Value(v) => value(*v),
            })
            .collect()
    }

    /// The placeholders the template uses, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v) => Some(*v),
            Part::Text(_) => None,
        })
    }
}

#[derive(Debug)]
enum TemplateError {
    /// `{name}` with a name the reason does not provide.
    Unknown(String),
    /// A `{` without its `}` (or a lone `}`), with the text that starts there.
    Unmatched(String),
}

/// The subject and body of one reason's message.
#[derive(Debug, Clone)]
pub struct MessageTemplate {
    pub subject: Template,
    pub body: Template,
}

/// Validated partner message templates.
#[derive(Debug, Clone)]
pub struct PartnerMessages {
    pub file: PathBuf,
    /// Who reviews and sends the drafts (an agent or a ladder owner).
    pub owner: String,
    pub owner_location: Location,
    pub tier_change: MessageTemplate,
    pub health_drop: MessageTemplate,
}

impl PartnerMessages {
    /// Loads and checks the templates (every placeholder against its reason's set).
    pub fn load(file: &Path) -> Result<PartnerMessages, Diagnostics> {
        let raw: RawMessages = yaml::load(file)?;
        let source = std::fs::read_to_string(file).unwrap_or_default();
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(
            file,
            &raw.version,
            1,
            "partner messages",
        ));
        if raw.owner.value.trim().is_empty() {
            errors.push(Diagnostic::new(
                Location::from_yaml(file, &raw.owner.referenced),
                "owner must name who reviews the drafted messages",
            ));
        }
        let mut template = |reason: CommunicationReason, field: &str, text: &Spanned<String>| {
            Template::parse(&text.value, reason)
                .map_err(|e| errors.push(template_error(file, &source, reason, field, text, e)))
                .ok()
        };
        let mut message = |reason, raw: &RawTemplate| {
            let subject = template(reason, "subject", &raw.subject);
            let body = template(reason, "body", &raw.body);
            Some(MessageTemplate {
                subject: subject?,
                body: body?,
            })
        };
        let tier_change = message(CommunicationReason::TierChange, &raw.templates.tier_change);
        let health_drop = message(CommunicationReason::HealthDrop, &raw.templates.health_drop);
        match (tier_change, health_drop) {
            (Some(tier_change), Some(health_drop)) if errors.is_empty() => Ok(PartnerMessages {
                file: file.to_path_buf(),
                owner: raw.owner.value,
                owner_location: Location::from_yaml(file, &raw.owner.referenced),
                tier_change,
                health_drop,
            }),
            _ => Err(Diagnostics(errors)),
        }
    }

    /// The template for `reason`.
    pub fn template(&self, reason: CommunicationReason) -> &MessageTemplate {
        match reason {
            CommunicationReason::TierChange => &self.tier_change,
            CommunicationReason::HealthDrop => &self.health_drop,
        }
    }
}

fn template_error(
    file: &Path,
    source: &str,
    reason: CommunicationReason,
    field: &str,
    text: &Spanned<String>,
    error: TemplateError,
) -> Diagnostic {
    let at = Location::from_yaml(file, &text.referenced);
    let names: Vec<&str> = Placeholder::allowed(reason)
        .iter()
        .map(|p| p.as_str())
        .collect();
    match error {
        TemplateError::Unknown(name) => Diagnostic::of(
            Code::UnknownReference,
            locate(source, &format!("{{{name}}}"), at),
            format!("templates.{reason}.{field}: unknown placeholder `{{{name}}}`"),
        )
        .help(format!(
            "a {reason} message can use {}",
            names
                .iter()
                .map(|n| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        TemplateError::Unmatched(piece) => Diagnostic::of(
            Code::InvalidValue,
            locate(source, &piece, at),
            format!("templates.{reason}.{field}: unmatched brace at `{piece}`"),
        )
        .help("write `{{` and `}}` for literal braces"),
    }
}

/// The position of `needle`'s first occurrence in `source` at or after `from` (the field's
/// value); `from` itself when the text is not found verbatim (e.g. written with escapes).
fn locate(source: &str, needle: &str, from: Location) -> Location {
    let start_line = from.line.saturating_sub(1) as usize;
    for (i, line) in source.lines().enumerate().skip(start_line) {
        let skip = if i == start_line {
            from.column.saturating_sub(1) as usize
        } else {
            0
        };
        let Some(head) = line.get(skip..) else {
            continue;
        };
        if let Some(col) = head.find(needle) {
            return Location {
                line: i as u64 + 1,
                column: (line[..skip + col].chars().count() + 1) as u64,
                ..from
            };
        }
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<PartnerMessages, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("partner_messages.yaml");
        std::fs::write(&file, yaml).unwrap();
        PartnerMessages::load(&file)
    }

    const GOOD: &str = "version: 1\nowner: partner-ops\ntemplates:\n  tier_change:\n    subject: \"{name}: {from} -> {to}\"\n    body: |\n      Hi {name}, your score is {score} ({{not a placeholder}}).\n  health_drop:\n    subject: \"{name}\"\n    body: \"{previous_score} -> {score}\"\n";

    #[test]
    fn renders_placeholders_and_literal_braces() {
        let m = load(GOOD).unwrap();
        let body = m.tier_change.body.render(|p| match p {
            Placeholder::Name => "Acme <b>".into(),
            Placeholder::Score => "71.5".into(),
            _ => "?".into(),
        });
        assert_eq!(
            body,
            "Hi Acme <b>, your score is 71.5 ({not a placeholder}).\n"
        );
        let used: Vec<_> = m.tier_change.subject.placeholders().collect();
        assert_eq!(
            used,
            [
                Placeholder::Name,
                Placeholder::FromTier,
                Placeholder::ToTier
            ]
        );
    }

    #[test]
    fn an_unknown_placeholder_is_located_at_its_line_and_column() {
        let bad = GOOD.replace("your score is {score}", "your score is {scroe}");
        let e = load(&bad).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        let d = &e.0[0];
        assert_eq!(d.code, Code::UnknownReference);
        assert_eq!((d.location.line, d.location.column), (7, 32), "{e}");
        assert!(d.message.contains("{scroe}"), "{e}");
        assert!(d.help.as_deref().unwrap().contains("{score}"), "{e}");
    }

    #[test]
    fn a_placeholder_of_the_other_reason_is_rejected() {
        // `drop` belongs to health drops, not to tier changes.
        let bad = GOOD.replace("{from} -> {to}", "{from} -> {drop}");
        let e = load(&bad).unwrap_err();
        assert!(e.0[0].message.contains("tier_change.subject"), "{e}");
        assert_eq!((e.0[0].location.line, e.0[0].location.column), (5, 33));
    }

    #[test]
    fn an_unmatched_brace_is_an_error() {
        let bad = GOOD.replace("\"{name}\"\n    body", "\"{name\"\n    body");
        let e = load(&bad).unwrap_err();
        assert_eq!(e.0[0].code, Code::InvalidValue, "{e}");
        assert!(e.0[0].message.contains("unmatched brace"), "{e}");
    }
}
