//! Escalations up the ladder, counted per period of as-of dates (never per plan).
//!
//! Every plan carries the series' escalation memory ([`EscalationState`]); a run continues the
//! state of its predecessor, the series' latest plan with an earlier as-of date. Reruns of one
//! date therefore continue the same predecessor and reach the same state, and a backfill walks
//! the dates exactly as the scheduled series does. Per trigger, an [`Episode`] moves
//! quiet -> breaching -> escalated (the rip-cord, level 1; one rung up per `advance_after` of
//! as-of time while unacknowledged) -> recovered (`recover_after` quiet periods in a row).

use chrono::NaiveDate;
use refopt_plan::{
    Acknowledgement, AcknowledgementRecord, Alert, Breach, Episode, EpisodeState, Escalation,
    EscalationState, FRAUD_SPIKE_TRIGGER, PeriodValue, Plan, Transition,
};
use refopt_spec::Ladder;

/// Breached periods an episode keeps (older ones are summarized by `opened`).
const KEPT_BREACHES: usize = 30;

/// What the ladder decided for one run.
#[derive(Debug, Default)]
pub struct EscalationOutcome {
    /// The memory this plan passes on.
    pub state: EscalationState,
    /// Open episodes at level 1 or higher.
    pub escalations: Vec<Escalation>,
    /// Whether an episode stands escalated (the plan's status is `escalated`).
    pub escalated: bool,
}

/// What one run observed, and where it stands in its series.
pub struct Observation<'a> {
    pub alerts: &'a [Alert],
    /// The run's fraud flag rate (None: no fraud rules).
    pub flag_rate: Option<f64>,
    pub as_of: NaiveDate,
    pub run_id: &'a str,
    /// Earlier plans of the series, newest written first (reruns of this date included).
    pub previous: &'a [Plan],
    /// Acknowledgements recorded for the series.
    pub acks: &'a [AcknowledgementRecord],
}

fn alert_key(a: &Alert) -> String {
    format!("alert:{}:{}", a.id, a.value)
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// First day of the breach period holding `day` (periods are anchored at 1970-01-01, so every
/// series and backfill cuts the calendar the same way).
fn period_of(day: NaiveDate, period_days: u32) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let n = (day - epoch).num_days();
    let len = i64::from(period_days.max(1));
    epoch + chrono::Duration::days(n.div_euclid(len) * len)
}

/// The plan this run continues: the latest written plan with an earlier as-of date.
fn predecessor(previous: &[Plan], as_of: NaiveDate) -> Option<&Plan> {
    previous
        .iter()
        .filter(|p| date(&p.inputs.as_of).is_some_and(|d| d < as_of))
        .max_by(|a, b| {
            (date(&a.inputs.as_of), a.version, &a.created_at).cmp(&(
                date(&b.inputs.as_of),
                b.version,
                &b.created_at,
            ))
        })
}

/// Escalations of this run.
pub fn escalate(ladder: &Ladder, seen: &Observation<'_>) -> EscalationOutcome {
    let period_days = ladder.series.breach_period_days;
    let period = period_of(seen.as_of, period_days);
    let previous_period = |p: NaiveDate| p - chrono::Duration::days(i64::from(period_days));
    let before = predecessor(seen.previous, seen.as_of);
    // A state written with another period length cannot be continued period by period.
    let carried: EscalationState = before
        .map(|p| p.escalation_state.clone())
        .filter(|s| s.breach_period_days == period_days)
        .unwrap_or_default();
    let top = ladder.levels.len() as u32;

    // Fraud spike: this run's flag rate against the earlier periods' rates.
    let spike = &ladder.triggers.fraud_spike;
    let earlier_rates: Vec<PeriodValue> = carried
        .flag_rates
        .iter()
        .filter(|r| date(&r.period).is_some_and(|d| d < period))
        .cloned()
        .collect();
    let trailing = &earlier_rates[earlier_rates.len().saturating_sub(spike.trailing_periods)..];
    let mut spike_reason = None;
    if let Some(current) = seen.flag_rate
        && !trailing.is_empty()
    {
        let average = trailing.iter().map(|r| r.value).sum::<f64>() / trailing.len() as f64;
        if average > 0.0 && current > spike.multiplier * average {
            spike_reason = Some(format!(
                "fraud flag rate {current:.4} is above {}x its average {average:.4} over the {} previous period(s)",
                spike.multiplier,
                trailing.len()
            ));
        }
    }
    let mut flag_rates = earlier_rates;
    if let Some(rate) = seen.flag_rate {
        flag_rates.push(PeriodValue {
            period: period.to_string(),
            value: rate,
        });
    }
    let excess = flag_rates.len().saturating_sub(spike.trailing_periods + 1);
    flag_rates.drain(..excess);

    // This run's breaches, by trigger.
    let mut breached: Vec<(String, String)> = seen
        .alerts
        .iter()
        .map(|a| {
            (
                alert_key(a),
                format!("{} breached its {} level", a.id, a.level),
            )
        })
        .collect();
    if let Some(reason) = spike_reason {
        breached.push((FRAUD_SPIKE_TRIGGER.to_string(), reason));
    }

    let mut episodes = Vec::new();
    let mut reasons = Vec::new();
    let open = carried
        .episodes
        .into_iter()
        .filter(|e| e.state != EpisodeState::Recovered);
    let mut open: Vec<Episode> = open.collect();
    for (trigger, _) in &breached {
        if !open.iter().any(|e| &e.trigger == trigger) {
            open.push(Episode {
                trigger: trigger.clone(),
                opened: seen.as_of.to_string(),
                ..Default::default()
            });
        }
    }
    for mut e in open {
        e.transition = Transition::None;
        let breach = breached.iter().find(|(t, _)| *t == e.trigger);
        let last_period = e.breaches.last().and_then(|b| date(&b.period));
        let mark = Breach {
            period: period.to_string(),
            as_of: seen.as_of.to_string(),
            run_id: seen.run_id.to_string(),
        };
        if breach.is_some() {
            if last_period == Some(period) {
                // Another run in a breached period: the period counts once.
                *e.breaches.last_mut().expect("a last breach") = mark;
            } else {
                let consecutive = last_period == Some(previous_period(period));
                if e.level == 0 && !consecutive {
                    // A streak below the rip-cord starts over after a gap.
                    e.breaches.clear();
                    e.opened = seen.as_of.to_string();
                }
                e.transition = if e.breaches.is_empty() {
                    Transition::Opened
                } else {
                    Transition::Breached
                };
                e.breaches.push(mark);
                let excess = e.breaches.len().saturating_sub(KEPT_BREACHES);
                e.breaches.drain(..excess);
            }
            e.quiet_periods.clear();
            let streak = e.breaches.len() as u32;
            if e.level == 0
                && (streak >= ladder.triggers.consecutive_breaches
                    || e.trigger == FRAUD_SPIKE_TRIGGER)
            {
                e.level = 1;
                e.state = EpisodeState::Escalated;
                e.rip_cord = Some(seen.as_of.to_string());
                e.level_since = Some(seen.as_of.to_string());
                e.transition = Transition::RipCord;
            }
        } else if last_period != Some(period) {
            if e.level == 0 {
                // Below the rip-cord a quiet period ends the streak: nothing to remember.
                continue;
            }
            if !e.quiet_periods.contains(&period.to_string()) {
                e.quiet_periods.push(period.to_string());
            }
            if e.quiet_periods.len() as u32 >= ladder.triggers.recover_after {
                e.state = EpisodeState::Recovered;
                e.recovered = Some(seen.as_of.to_string());
                e.transition = Transition::Recovered;
            }
        }
        if let Some(ack) = seen
            .acks
            .iter()
            .filter(|a| a.trigger == e.trigger && a.episode_opened == e.opened)
            .min_by_key(|a| a.level)
        {
            e.acknowledged = Some(Acknowledgement {
                by: ack.by.clone(),
                at: ack.at.clone(),
                level: ack.level,
                note: ack.note.clone(),
            });
        }
        // Unacknowledged escalated episodes climb one rung per `advance_after` of as-of time
        // while they keep breaching (a quiet period is on the way to recovery).
        if e.state == EpisodeState::Escalated
            && e.acknowledged.is_none()
            && e.quiet_periods.is_empty()
        {
            let since = e.level_since.as_deref().and_then(date);
            let step = i64::from(ladder.triggers.advance_after_days);
            if let Some(since) = since
                && e.level < top
                && (seen.as_of - since).num_days() >= step
            {
                e.level += 1;
                e.level_since = Some(seen.as_of.to_string());
                e.transition = Transition::Advanced;
            }
        }
        e.announce = match e.transition {
            Transition::None => false,
            t => !announced_before(seen.previous, &e, t),
        };
        if let Some((_, why)) = breach {
            reasons.push((e.trigger.clone(), why.clone()));
        }
        episodes.push(e);
    }
    episodes.sort_by(|a, b| a.trigger.cmp(&b.trigger));

    let escalations: Vec<Escalation> = episodes
        .iter()
        .filter(|e| e.state == EpisodeState::Escalated)
        .map(|e| {
            let rung = ladder.level(e.level);
            let why = reasons
                .iter()
                .find(|(t, _)| *t == e.trigger)
                .map_or("no breach in this period", |(_, r)| r.as_str());
            Escalation {
                trigger: e.trigger.clone(),
                level: rung.level,
                role: rung.role.clone(),
                owner: rung.owner.clone(),
                fallback_owner: rung.fallback.clone(),
                reason: episode_reason(e, why, ladder),
                run_ids: e.breaches.iter().map(|b| b.run_id.clone()).collect(),
                episode_opened: e.opened.clone(),
            }
        })
        .collect();
    EscalationOutcome {
        escalated: !escalations.is_empty(),
        escalations,
        state: EscalationState {
            period: period.to_string(),
            breach_period_days: period_days,
            continues: before.map(|p| format!("{} {}", p.inputs.as_of, p.run_id)),
            flag_rates,
            episodes,
        },
    }
}

/// Whether an earlier plan (a rerun of this date, or an earlier date) already announced this
/// transition of the same episode at the same level.
fn announced_before(previous: &[Plan], e: &Episode, t: Transition) -> bool {
    previous.iter().any(|p| {
        p.escalation_state.episodes.iter().any(|o| {
            o.trigger == e.trigger
                && o.opened == e.opened
                && o.transition == t
                && o.level == e.level
                && o.announce
        })
    })
}

fn episode_reason(e: &Episode, why: &str, ladder: &Ladder) -> String {
    let periods = e.breaches.len();
    let period = ladder.series.breach_period_days;
    let mut text = format!(
        "{why}; breached in {periods} consecutive {period}d period(s) since {}; rip-cord pulled {}",
        e.opened,
        e.rip_cord.as_deref().unwrap_or("-"),
    );
    match &e.acknowledged {
        Some(a) => text.push_str(&format!("; acknowledged by {} at level {}", a.by, a.level)),
        None => text.push_str(&format!(
            "; not acknowledged: one rung up every {}d",
            ladder.triggers.advance_after_days
        )),
    }
    if !e.quiet_periods.is_empty() {
        text.push_str(&format!(
            "; quiet for {} of the {} period(s) that end it",
            e.quiet_periods.len(),
            ladder.triggers.recover_after
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Ladder {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/ladder.yaml");
        Ladder::load(&file).unwrap()
    }

    fn alert(id: &str, value: &str) -> Alert {
        Alert {
            id: id.into(),
            value: value.into(),
            ..Default::default()
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    /// A series of runs: each call writes a plan with the next version.
    #[derive(Default)]
    struct Series {
        plans: Vec<Plan>,
        acks: Vec<AcknowledgementRecord>,
    }

    impl Series {
        fn run(
            &mut self,
            ladder: &Ladder,
            as_of: NaiveDate,
            alerts: &[Alert],
            rate: Option<f64>,
        ) -> Plan {
            let previous: Vec<Plan> = self.plans.iter().rev().cloned().collect();
            let run_id = format!("r{}", self.plans.len() + 1);
            let out = escalate(
                ladder,
                &Observation {
                    alerts,
                    flag_rate: rate,
                    as_of,
                    run_id: &run_id,
                    previous: &previous,
                    acks: &self.acks,
                },
            );
            let mut plan = Plan {
                run_id,
                version: self.plans.len() as u64 + 1,
                escalations: out.escalations,
                escalation_state: out.state,
                ..Default::default()
            };
            plan.inputs.as_of = as_of.to_string();
            plan.risk.flag_rate = rate;
            self.plans.push(plan.clone());
            plan
        }
    }

    fn episode<'a>(plan: &'a Plan, trigger: &str) -> Option<&'a Episode> {
        plan.escalation_state
            .episodes
            .iter()
            .find(|e| e.trigger == trigger)
    }

    const LOW: &str = "alert:signup_rate_low:email";

    #[test]
    fn reruns_of_one_date_count_once() {
        let ladder = ladder();
        let low = [alert("signup_rate_low", "email")];
        let mut series = Series::default();
        for _ in 0..4 {
            let plan = series.run(&ladder, day(1), &low, None);
            assert!(plan.escalations.is_empty(), "{:#?}", plan.escalation_state);
            let e = episode(&plan, LOW).unwrap();
            assert_eq!(
                (e.state, e.level, e.breaches.len()),
                (EpisodeState::Breaching, 0, 1)
            );
            assert_eq!(e.transition, Transition::Opened);
        }
        // Only the first run announces the opening.
        let announced: Vec<bool> = series
            .plans
            .iter()
            .map(|p| episode(p, LOW).unwrap().announce)
            .collect();
        assert_eq!(announced, [true, false, false, false]);
    }

    #[test]
    fn an_incident_pulls_the_rip_cord_once_climbs_unacknowledged_and_recovers() {
        let ladder = ladder();
        assert_eq!(ladder.triggers.consecutive_breaches, 2);
        let low = [alert("signup_rate_low", "email")];
        let other = [alert("signup_rate_low", "social")];
        let mut series = Series::default();
        // Day 1: another value breaches; it does not count towards this one.
        series.run(&ladder, day(1), &other, None);
        let d2 = series.run(&ladder, day(2), &low, None);
        assert_eq!(episode(&d2, LOW).unwrap().transition, Transition::Opened);
        assert!(
            episode(&d2, "alert:signup_rate_low:social").is_none(),
            "quiet ends a streak"
        );
        // Second consecutive period: the rip-cord, level 1.
        let d3 = series.run(&ladder, day(3), &low, None);
        let e = episode(&d3, LOW).unwrap();
        assert_eq!(
            (e.transition, e.level, e.state),
            (Transition::RipCord, 1, EpisodeState::Escalated)
        );
        assert_eq!(d3.escalations[0].owner, "referral-architect");
        assert_eq!(d3.escalations[0].run_ids, ["r2", "r3"]);
        assert_eq!(d3.escalations[0].episode_opened, "2026-03-02");
        // A rerun of day 3 stands at the same level and does not announce again.
        let rerun = series.run(&ladder, day(3), &low, None);
        let e = episode(&rerun, LOW).unwrap();
        assert_eq!(
            (e.transition, e.level, e.announce),
            (Transition::RipCord, 1, false)
        );
        // Day 4, unacknowledged for advance_after (1d): level 2.
        let d4 = series.run(&ladder, day(4), &low, None);
        assert_eq!(episode(&d4, LOW).unwrap().transition, Transition::Advanced);
        assert_eq!(d4.escalations[0].role, "Partner Ops");
        // Quiet on day 5: still escalated, one quiet period; recovered on day 6.
        let d5 = series.run(&ladder, day(5), &[], None);
        let e = episode(&d5, LOW).unwrap();
        assert_eq!(
            (e.state, e.quiet_periods.len()),
            (EpisodeState::Escalated, 1)
        );
        assert!(e.level >= 2, "a quiet period does not lower the level");
        let d6 = series.run(&ladder, day(6), &[], None);
        let e = episode(&d6, LOW).unwrap();
        assert_eq!(
            (e.state, e.transition),
            (EpisodeState::Recovered, Transition::Recovered)
        );
        assert_eq!(e.recovered.as_deref(), Some("2026-03-06"));
        assert!(d6.escalations.is_empty());
        // The next day remembers nothing of it.
        let d7 = series.run(&ladder, day(7), &[], None);
        assert!(d7.escalation_state.episodes.is_empty());
        let rip_cords = series
            .plans
            .iter()
            .filter(|p| {
                p.escalation_state
                    .episodes
                    .iter()
                    .any(|e| e.transition == Transition::RipCord && e.announce)
            })
            .count();
        assert_eq!(rip_cords, 1);
    }

    #[test]
    fn an_acknowledged_episode_stays_at_its_level() {
        let ladder = ladder();
        let low = [alert("signup_rate_low", "email")];
        let mut series = Series::default();
        series.run(&ladder, day(1), &low, None);
        series.run(&ladder, day(2), &low, None);
        series.acks.push(AcknowledgementRecord {
            trigger: LOW.into(),
            episode_opened: "2026-03-01".into(),
            level: 1,
            by: "ana".into(),
            ..Default::default()
        });
        for d in 3..6 {
            let plan = series.run(&ladder, day(d), &low, None);
            assert_eq!(plan.escalations[0].level, 1);
            assert_eq!(
                episode(&plan, LOW)
                    .unwrap()
                    .acknowledged
                    .as_ref()
                    .unwrap()
                    .by,
                "ana"
            );
        }
    }

    #[test]
    fn breaches_in_one_period_count_once_and_gaps_restart_a_streak() {
        let mut ladder = ladder();
        ladder.series.breach_period_days = 7;
        let low = [alert("signup_rate_low", "email")];
        let mut series = Series::default();
        // 2026-03-05 .. 2026-03-11 is one 7-day period counted from 1970-01-01.
        assert_eq!(period_of(day(5), 7), day(5));
        assert_eq!(period_of(day(11), 7), day(5));
        for d in 5..12 {
            let plan = series.run(&ladder, day(d), &low, None);
            assert!(plan.escalations.is_empty(), "one period: {d}");
            assert_eq!(episode(&plan, LOW).unwrap().breaches.len(), 1);
        }
        let next = series.run(&ladder, day(12), &low, None);
        assert_eq!(
            next.escalations.len(),
            1,
            "the second period pulls the rip-cord"
        );
        // Below the rip-cord, a period skipped by the schedule restarts the count.
        let mut ladder = self::ladder();
        ladder.triggers.consecutive_breaches = 3;
        let mut series = Series::default();
        series.run(&ladder, day(1), &low, None);
        series.run(&ladder, day(2), &low, None);
        let after_gap = series.run(&ladder, day(4), &low, None);
        let e = episode(&after_gap, LOW).unwrap();
        assert_eq!((e.breaches.len(), e.opened.as_str()), (1, "2026-03-04"));
    }

    #[test]
    fn a_fraud_spike_pulls_the_rip_cord_against_earlier_periods() {
        let ladder = ladder();
        let spike = &ladder.triggers.fraud_spike;
        assert_eq!(spike.trailing_periods, 4);
        let mut series = Series::default();
        for d in 1..=6 {
            series.run(&ladder, day(d), &[], Some(0.01 * f64::from(d)));
        }
        // Trailing average over the 4 previous periods: 0.03..0.06 -> 0.045.
        let above = spike.multiplier * 0.045 + 1e-6;
        let mut spiking = Series {
            plans: series.plans.clone(),
            ..Default::default()
        };
        let plan = spiking.run(&ladder, day(7), &[], Some(above));
        let e = episode(&plan, FRAUD_SPIKE_TRIGGER).unwrap();
        assert_eq!((e.transition, e.level), (Transition::RipCord, 1));
        assert!(
            plan.escalations[0].reason.contains("0.0450"),
            "{}",
            plan.escalations[0].reason
        );
        // A rerun of the spiking date compares with the same earlier periods.
        let rerun = spiking.run(&ladder, day(7), &[], Some(above));
        assert_eq!(rerun.escalations.len(), 1);
        let below = spike.multiplier * 0.045 - 1e-6;
        let plan = series.run(&ladder, day(7), &[], Some(below));
        assert!(plan.escalations.is_empty());
        // No history: nothing to compare.
        let plan = Series::default().run(&ladder, day(7), &[], Some(1.0));
        assert!(plan.escalations.is_empty());
    }
}
