//! The day-by-day generator: invites, referrals and everything downstream of them, with planted
//! fraud and legitimate look-alikes, written as it goes.
//!
//! Generation walks the days in order. Every event caused by a referral (conversions, payouts,
//! compliance checks, fraud flags, NPS answers) happens at or after the referral, so once a day is
//! finished nothing can be added to it any more and its buffers are written out.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};

use crate::GenerateError;
use crate::sink::{DayBuffers, ParquetUploader};
use crate::tables::*;
use crate::world::*;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const MINUTE: i64 = 60_000_000;

/// The planted fraud patterns (names used in `_truth/`).
pub mod pattern {
    pub const SELF_REFERRAL: &str = "self_referral";
    pub const DEVICE_RING: &str = "device_ring";
    pub const VELOCITY_BURST: &str = "velocity_burst";
    pub const DISPOSABLE_EMAIL: &str = "disposable_email";
    pub const PAYOUT_CONCENTRATION: &str = "payout_concentration";
    pub const TIMING_ANOMALY: &str = "timing_anomaly";
    pub const COMPLIANCE_FAILURE: &str = "compliance_failure";
    /// A ring that rotates devices and cards so that none is shared by more than two of its
    /// referrers; it is still one connected component.
    pub const ROTATING_RING: &str = "rotating_ring";
    /// One referrer adding a fake referee every few days, each on a fresh device and card, all
    /// from one hosting network.
    pub const SLOW_FARM: &str = "slow_farm";
}

/// Kinds of honest referrals built to resemble fraud (names used in
/// `_truth/lookalike_referrals`); rules must spare them.
pub mod lookalike {
    /// Up to three referees of one referrer on the household's shared device and home IP.
    pub const HOUSEHOLD_DEVICE: &str = "household_device";
    /// Colleagues behind their office's NAT address, on the company's mail domain.
    pub const OFFICE_NETWORK: &str = "office_network";
    /// Students behind a campus address shared by many referrers.
    pub const CAMPUS_NETWORK: &str = "campus_network";
    /// A legitimate referrer's post or event: 15-30 sign-ups within an hour, from many networks
    /// and devices, with normal funnels.
    pub const INFLUENCER_BURST: &str = "influencer_burst";
    /// Coworkers referred by different colleagues, paid with one corporate card, on the
    /// company's domain and office network.
    pub const COMPANY_CARD: &str = "company_card";
}

/// Experiments planted in the data: id, variants with allocation, effect on invite -> referral.
pub struct PlantedExperiment {
    pub id: &'static str,
    pub variants: [(&'static str, f64); 2],
    /// Multiplier on invite -> referral probability for the second variant.
    pub effect: f64,
    /// Share of assigned units that are also (wrongly) exposed to the other variant.
    pub contamination: f64,
}

/// The three planted experiments: a real effect, an A/A test, and a sample-ratio mismatch.
pub const EXPERIMENTS: [PlantedExperiment; 3] = [
    PlantedExperiment {
        id: "exp_double_reward",
        variants: [("control", 0.5), ("treatment", 0.5)],
        effect: 1.30,
        contamination: 0.002,
    },
    PlantedExperiment {
        id: "exp_aa_holdout",
        variants: [("a", 0.5), ("b", 0.5)],
        effect: 1.0,
        contamination: 0.0,
    },
    PlantedExperiment {
        id: "exp_share_button",
        variants: [("control", 0.55), ("treatment", 0.45)],
        effect: 1.0,
        contamination: 0.0,
    },
];

/// How a referral behaves after it is created.
#[derive(Clone, Copy)]
struct Outcome {
    /// Referral -> signup, signup -> qualified, qualified -> opportunity, opportunity -> won.
    funnel: [f64; 4],
    /// Bot-driven: every step within minutes.
    instant: bool,
    /// Multiplier on the won amount.
    amount_scale: f64,
    /// Probability that the program's existing fraud model flagged it.
    flag_probability: f64,
    truth: Option<&'static str>,
    /// The kind of legitimate look-alike an honest referral is (see [`lookalike`]).
    lookalike: Option<&'static str>,
}

impl Outcome {
    fn legit(channel: usize) -> Self {
        Self {
            funnel: FUNNEL[channel],
            instant: false,
            amount_scale: 1.0,
            flag_probability: 0.004,
            truth: None,
            lookalike: None,
        }
    }
    fn fraud(pattern: &'static str, funnel: [f64; 4]) -> Self {
        Self {
            funnel,
            instant: false,
            amount_scale: 1.0,
            flag_probability: 0.5,
            truth: Some(pattern),
            lookalike: None,
        }
    }
}

/// Who an honest referee is: address, device, mail domain and card, and which look-alike of
/// fraud (if any) that makes the referral.
struct RefereeIdentity {
    ip: String,
    device: String,
    domain: String,
    payment: Option<String>,
    lookalike: Option<&'static str>,
}

impl RefereeIdentity {
    /// An ordinary person derived from one random value: their own address and device, a
    /// common mail domain, and a card 60% of the time.
    fn fresh(r: u64) -> Self {
        Self {
            ip: ip_from_hash(mix(r)),
            device: key_id("dev", mix(r ^ 1)),
            domain: COMMON_EMAIL_DOMAINS
                [pick_by_hash(mix(r ^ 2), COMMON_EMAIL_DOMAINS.iter().map(|d| d.1))]
            .0
            .to_string(),
            payment: (unit(mix(r ^ 3)) < 0.6).then(|| key_id("pf", mix(r ^ 4))),
            lookalike: None,
        }
    }
}

/// Everything a new referral needs besides its outcome.
struct NewReferral<'a> {
    invite_id: Option<String>,
    referrer_id: &'a str,
    referee_id: Option<String>,
    partner: Option<usize>,
    channel: usize,
    region: &'static str,
    persona: usize,
    created_at: Micros,
    ip: String,
    device_id: String,
    email_domain: String,
    payment_fingerprint: Option<String>,
}

/// Counts of what was generated, for the report and the truth manifest.
#[derive(Debug, Default, Clone)]
pub struct GenerationCounts {
    pub invites: u64,
    pub referrals: u64,
    pub fraud_by_pattern: std::collections::BTreeMap<&'static str, u64>,
    pub lookalikes_by_kind: std::collections::BTreeMap<&'static str, u64>,
}

/// A slow farm: a referrer account that adds one fake referee every few days from addresses of
/// one hosting network.
struct SlowFarm {
    referrer: Referrer,
    network: [u8; 3],
    next_at: Micros,
    mean_interval: i64,
}

pub(crate) struct Generator<'w> {
    world: &'w World,
    rng: ChaCha8Rng,
    start: Micros,
    end: Micros,
    next_id: u64,
    assigned: Vec<u8>,
    family_counts: HashMap<u64, u8>,
    pub invites: DayBuffers<Invite>,
    pub referrals: DayBuffers<Referral>,
    pub conversions: DayBuffers<Conversion>,
    pub payouts: DayBuffers<Payout>,
    pub partner_activity: DayBuffers<PartnerActivity>,
    pub nps: DayBuffers<NpsResponse>,
    pub flags: DayBuffers<FraudFlag>,
    pub compliance: DayBuffers<ComplianceEvent>,
    pub assignments: DayBuffers<ExperimentAssignment>,
    pub truth: Vec<TruthLabel>,
    pub lookalikes: Vec<TruthLabel>,
    pub counts: GenerationCounts,
    farms: Vec<SlowFarm>,
    experiment_start: Micros,
}

impl<'w> Generator<'w> {
    pub fn new(world: &'w World, seed: u64, start: Micros, end: Micros) -> Self {
        let days = (end - start) / DAY;
        Self {
            world,
            rng: ChaCha8Rng::seed_from_u64(mix(seed ^ 0xDA7A)),
            start,
            end,
            next_id: 1,
            assigned: vec![0; world.referrer_count as usize],
            family_counts: HashMap::new(),
            invites: DayBuffers::default(),
            referrals: DayBuffers::default(),
            conversions: DayBuffers::default(),
            payouts: DayBuffers::default(),
            partner_activity: DayBuffers::default(),
            nps: DayBuffers::default(),
            flags: DayBuffers::default(),
            compliance: DayBuffers::default(),
            assignments: DayBuffers::default(),
            truth: Vec::new(),
            lookalikes: Vec::new(),
            counts: GenerationCounts::default(),
            farms: Vec::new(),
            experiment_start: start + (days / 5) * DAY,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        // Ids are scrambled so that their order does not leak generation order or fraud.
        let n = self.next_id;
        self.next_id += 1;
        key_id(prefix, mix(n ^ self.world.seed))
    }

    fn new_user_id(&mut self) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("u_{:09}", self.world.referrer_count + n)
    }

    /// Writes every static table (partners) and compliance checks of partners.
    pub async fn write_static(&mut self, out: &mut ParquetUploader) -> Result<(), GenerateError> {
        let mut partners_buf: DayBuffers<Partner> = DayBuffers::default();
        for p in &self.world.partners {
            partners_buf
                .push(
                    Partner {
                        partner_id: p.id.clone(),
                        name: p.name.clone(),
                        tier: p.tier,
                        region: p.region,
                        joined_at: p.joined_at,
                        status: p.status,
                    },
                    out,
                )
                .await?;
        }
        partners_buf.flush_all(out).await
    }

    /// Generates one day (`day_index` from 0) of events.
    pub async fn day(
        &mut self,
        day_index: i64,
        out: &mut ParquetUploader,
        invites_today: u64,
    ) -> Result<(), GenerateError> {
        let day_start = self.start + day_index * DAY;
        for _ in 0..invites_today {
            let at = day_start + self.rng.random_range(0..DAY);
            self.organic_invite(at, out).await?;
        }
        self.plant_fraud(day_start, invites_today, out).await?;
        self.partner_day(day_start, out).await?;
        self.referrer_nps(day_start, invites_today, out).await?;
        Ok(())
    }

    async fn organic_invite(
        &mut self,
        at: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let world = self.world;
        let idx = world.sample_referrer(&mut self.rng);
        let referrer = world.referrer(idx);
        let channel = pick_by_hash(self.rng.random(), CHANNELS.iter().map(|c| c.1));
        let partner =
            (CHANNELS[channel].0 == "partner").then(|| world.sample_partner(&mut self.rng));
        let invite_id = self.id("inv");
        self.push_invite(&invite_id, &referrer, channel, partner, at, out)
            .await?;

        let mut p = INVITE_TO_REFERRAL[channel];
        p *= self.experiment_effect(idx, &referrer.id, at, out).await?;
        if self.rng.random::<f64>() >= p {
            // Self-referrers sometimes refer themselves under fresh accounts instead.
            if referrer.self_referrer && self.rng.random::<f64>() < 0.5 {
                self.self_referral(&referrer, channel, partner, at, out)
                    .await?;
            }
            return Ok(());
        }
        let created_at = at + (self.rng.random::<f64>().powi(2) * 48.0 * HOUR as f64) as i64;
        let identity = self.legit_referee_identity(idx, &referrer);
        let new = NewReferral {
            invite_id: Some(invite_id),
            referrer_id: &referrer.id,
            referee_id: None,
            partner,
            channel,
            region: referrer.region,
            persona: referrer.persona_idx,
            created_at,
            ip: identity.ip,
            device_id: identity.device,
            email_domain: identity.domain,
            payment_fingerprint: identity.payment,
        };
        let mut outcome = Outcome {
            lookalike: identity.lookalike,
            ..Outcome::legit(channel)
        };
        // A few honest referrals are bot-fast: scripted signups that then convert instantly.
        let roll = self.rng.random::<f64>();
        if roll < 0.0015 {
            outcome = Outcome {
                // Scripted accounts exist to trigger the qualification bonus, so they all qualify.
                funnel: [1.0, 1.0, 0.9, 0.85],
                instant: true,
                amount_scale: 0.15,
                flag_probability: 0.45,
                truth: Some(pattern::TIMING_ANOMALY),
                lookalike: None,
            };
        } else if roll < 0.0045 {
            let new = NewReferral {
                email_domain: DISPOSABLE_DOMAINS
                    [self.rng.random_range(0..DISPOSABLE_DOMAINS.len())]
                .to_string(),
                device_id: key_id("dev", self.rng.random()),
                // A throw-away account pays (if at all) with a card of its own.
                payment_fingerprint: (self.rng.random::<f64>() < 0.6)
                    .then(|| key_id("pf", self.rng.random())),
                ..new
            };
            let outcome = Outcome::fraud(pattern::DISPOSABLE_EMAIL, [0.85, 0.6, 0.08, 0.05]);
            return self.referral(new, outcome, out).await;
        }
        self.referral(new, outcome, out).await
    }

    async fn push_invite(
        &mut self,
        invite_id: &str,
        referrer: &Referrer,
        channel: usize,
        partner: Option<usize>,
        at: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        self.counts.invites += 1;
        let row = Invite {
            invite_id: invite_id.to_string(),
            referrer_id: referrer.id.clone(),
            channel: CHANNELS[channel].0,
            partner_id: partner.map(|p| self.world.partners[p].id.clone()),
            region: referrer.region,
            persona: PERSONAS[referrer.persona_idx].0,
            sent_at: at,
        };
        self.invites.push(row, out).await
    }

    /// Assigns the referrer to running experiments on first sight; returns the effect multiplier.
    async fn experiment_effect(
        &mut self,
        idx: u64,
        unit_id: &str,
        at: Micros,
        out: &mut ParquetUploader,
    ) -> Result<f64, GenerateError> {
        if at < self.experiment_start {
            return Ok(1.0);
        }
        let mut effect = 1.0;
        for (e, exp) in EXPERIMENTS.iter().enumerate() {
            let h = mix(self.world.seed ^ (e as u64 + 1) << 40 ^ idx);
            let second = unit(h) >= exp.variants[0].1;
            if second {
                effect *= exp.effect;
            }
            let bit = 1u8 << e;
            if self.assigned[idx as usize] & bit == 0 {
                self.assigned[idx as usize] |= bit;
                let variant = exp.variants[usize::from(second)].0;
                self.assignments
                    .push(
                        ExperimentAssignment {
                            experiment_id: exp.id,
                            unit_id: unit_id.to_string(),
                            variant,
                            assigned_at: at,
                        },
                        out,
                    )
                    .await?;
                if unit(mix(h)) < exp.contamination {
                    self.assignments
                        .push(
                            ExperimentAssignment {
                                experiment_id: exp.id,
                                unit_id: unit_id.to_string(),
                                variant: exp.variants[usize::from(!second)].0,
                                assigned_at: at + HOUR,
                            },
                            out,
                        )
                        .await?;
                }
            }
        }
        Ok(effect)
    }

    /// A referee identity for an honest referral, including the look-alikes that trip naive
    /// rules: colleagues behind one office IP (some paid with the company's card), families
    /// sharing a tablet, students on a campus.
    fn legit_referee_identity(&mut self, idx: u64, referrer: &Referrer) -> RefereeIdentity {
        let r: u64 = self.rng.random();
        let mut identity = RefereeIdentity::fresh(r);
        let kind = unit(mix(r ^ 5));
        if let Some(c) = referrer.company.filter(|_| kind < 0.45) {
            let company = &self.world.companies[c];
            identity.ip = company.ips[(r % 2) as usize].clone();
            identity.domain = company.domain.clone();
            identity.lookalike = Some(lookalike::OFFICE_NETWORK);
            if let Some(card) = company.card.as_ref().filter(|_| unit(mix(r ^ 6)) < 0.5) {
                identity.payment = Some(card.clone());
                identity.lookalike = Some(lookalike::COMPANY_CARD);
            }
        } else if referrer.has_family && kind < 0.6 {
            let count = self.family_counts.entry(idx).or_insert(0);
            if *count < 3 {
                *count += 1;
                identity.device = referrer.household_device.clone();
                identity.ip = referrer.home_ip.clone();
                identity.lookalike = Some(lookalike::HOUSEHOLD_DEVICE);
            }
        } else if kind > 0.985 {
            identity.ip =
                self.world.campus_ips[(r % self.world.campus_ips.len() as u64) as usize].clone();
            identity.lookalike = Some(lookalike::CAMPUS_NETWORK);
        }
        identity
    }

    /// A self-referral: fresh accounts on the referrer's own device and card.
    async fn self_referral(
        &mut self,
        referrer: &Referrer,
        channel: usize,
        partner: Option<usize>,
        at: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let n = self.rng.random_range(2..=4);
        for k in 0..n {
            let t = at + k * self.rng.random_range(MINUTE..6 * HOUR);
            let invite_id = self.id("inv");
            self.push_invite(&invite_id, referrer, channel, partner, t, out)
                .await?;
            let new = NewReferral {
                invite_id: Some(invite_id),
                referrer_id: &referrer.id,
                referee_id: None,
                partner,
                channel,
                region: referrer.region,
                persona: referrer.persona_idx,
                created_at: t + self.rng.random_range(MINUTE..2 * HOUR),
                ip: referrer.home_ip.clone(),
                device_id: referrer.device.clone(),
                email_domain: "gmail.com".to_string(),
                payment_fingerprint: Some(referrer.payment_fingerprint.clone()),
            };
            let outcome = Outcome::fraud(pattern::SELF_REFERRAL, [0.92, 0.75, 0.05, 0.3]);
            self.referral(new, outcome, out).await?;
        }
        Ok(())
    }

    /// Rings, bursts and the payout-farming partner, at a rate proportional to the day's volume.
    async fn plant_fraud(
        &mut self,
        day_start: Micros,
        invites_today: u64,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let expected_referrals = invites_today as f64 * 0.15;
        // Device/IP rings: accounts created together, sharing two or three devices and an IP or two.
        let rings = poisson(&mut self.rng, (expected_referrals * 0.006 / 45.0).max(0.08));
        for _ in 0..rings {
            self.device_ring(day_start, out).await?;
        }
        let bursts = poisson(&mut self.rng, (expected_referrals * 0.004 / 35.0).max(0.06));
        for _ in 0..bursts {
            self.velocity_burst(day_start, out).await?;
        }
        // Rings that rotate their hardware so that no device or card links more than two of
        // their accounts.
        let rotating = poisson(&mut self.rng, (expected_referrals * 0.006 / 45.0).max(0.08));
        for _ in 0..rotating {
            self.rotating_ring(day_start, out).await?;
        }
        self.slow_farms(day_start, out).await?;
        // Honest look-alike: a legitimate referrer's post brings a burst of real sign-ups.
        let posts = poisson(&mut self.rng, (expected_referrals * 0.004 / 25.0).max(0.08));
        for _ in 0..posts {
            self.influencer_burst(day_start, out).await?;
        }
        // The payout-farming partner is active in the last 60% of the period.
        let period = self.end - self.start;
        if day_start >= self.start + period * 2 / 5 {
            let n = poisson(&mut self.rng, (expected_referrals * 0.004).max(1.0));
            let partner = self
                .world
                .partners
                .iter()
                .position(|p| p.payout_fraud)
                .expect("planted");
            for _ in 0..n {
                self.farmed_partner_referral(partner, day_start, out)
                    .await?;
            }
        }
        Ok(())
    }

    /// An invite sent by a ring account at `at` on a random channel, and the referee it brings:
    /// half of the time another account of the ring. Returns (invite id, channel, referee).
    async fn ring_invite(
        &mut self,
        member: &str,
        member_ids: &[String],
        region: &'static str,
        persona: usize,
        at: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(String, usize, Option<String>), GenerateError> {
        let channel = pick_by_hash(self.rng.random(), CHANNELS.iter().map(|c| c.1));
        let invite_id = self.id("inv");
        self.counts.invites += 1;
        self.invites
            .push(
                Invite {
                    invite_id: invite_id.clone(),
                    referrer_id: member.to_string(),
                    channel: CHANNELS[channel].0,
                    partner_id: None,
                    region,
                    persona: PERSONAS[persona].0,
                    sent_at: at,
                },
                out,
            )
            .await?;
        let referee_id = (self.rng.random::<f64>() < 0.5)
            .then(|| member_ids[self.rng.random_range(0..member_ids.len())].clone())
            .filter(|r| r != member);
        Ok((invite_id, channel, referee_id))
    }

    async fn device_ring(
        &mut self,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let members = self.rng.random_range(6..=14);
        let devices: Vec<String> = (0..self.rng.random_range(2..=3))
            .map(|_| key_id("dev", self.rng.random()))
            .collect();
        let ips: Vec<String> = (0..self.rng.random_range(1..=2))
            .map(|_| ip_from_hash(self.rng.random()))
            .collect();
        let cards: Vec<String> = (0..2).map(|_| key_id("pf", self.rng.random())).collect();
        let region = REGIONS[pick_by_hash(self.rng.random(), REGIONS.iter().map(|r| r.1))].0;
        let span_days = self.rng.random_range(1..=4);
        let member_ids: Vec<String> = (0..members).map(|_| self.new_user_id()).collect();
        for member in &member_ids {
            for _ in 0..self.rng.random_range(2..=6) {
                let at = day_start + self.rng.random_range(0..span_days * DAY);
                let (invite_id, channel, referee_id) = self
                    .ring_invite(member, &member_ids, region, 0, at, out)
                    .await?;
                let new = NewReferral {
                    invite_id: Some(invite_id),
                    referrer_id: member,
                    referee_id,
                    partner: None,
                    channel,
                    region,
                    persona: 0,
                    created_at: at + self.rng.random_range(MINUTE..3 * HOUR),
                    ip: ips[self.rng.random_range(0..ips.len())].clone(),
                    device_id: devices[self.rng.random_range(0..devices.len())].clone(),
                    email_domain: COMMON_EMAIL_DOMAINS[self.rng.random_range(0..3)]
                        .0
                        .to_string(),
                    payment_fingerprint: (self.rng.random::<f64>() < 0.7)
                        .then(|| cards[self.rng.random_range(0..2)].clone()),
                };
                let outcome = Outcome::fraud(pattern::DEVICE_RING, [0.95, 0.8, 0.05, 0.3]);
                self.referral(new, outcome, out).await?;
            }
        }
        Ok(())
    }

    /// A scripted burst: 20-45 referrals from one referrer within 20-90 minutes, narrow in at
    /// least one way a script is: few networks (addresses rotated within one or two /24s), few
    /// (emulated) devices, or bot-speed funnels.
    async fn velocity_burst(
        &mut self,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let idx = self.world.sample_referrer(&mut self.rng);
        let referrer = self.world.referrer(idx);
        let n = self.rng.random_range(20..=45);
        let begin = day_start + self.rng.random_range(0..20 * HOUR);
        let length = self.rng.random_range(20 * MINUTE..90 * MINUTE);
        let (narrow_networks, narrow_devices, bot_speed) = loop {
            let traits = (
                self.rng.random::<f64>() < 0.6,
                self.rng.random::<f64>() < 0.6,
                self.rng.random::<f64>() < 0.5,
            );
            if traits.0 || traits.1 || traits.2 {
                break traits;
            }
        };
        let networks: Vec<[u8; 3]> = (0..self.rng.random_range(1..=2))
            .map(|_| network_from_hash(self.rng.random()))
            .collect();
        let devices: Vec<String> = (0..self.rng.random_range(2..=5))
            .map(|_| key_id("dev", self.rng.random()))
            .collect();
        for _ in 0..n {
            let at = begin + self.rng.random_range(0..length);
            let channel = 1; // social blasts
            let invite_id = self.id("inv");
            self.push_invite(&invite_id, &referrer, channel, None, at - MINUTE, out)
                .await?;
            let r: u64 = self.rng.random();
            let identity = RefereeIdentity::fresh(r);
            let ip = if narrow_networks {
                ip_in_network(networks[(r % networks.len() as u64) as usize], mix(r ^ 3))
            } else {
                identity.ip
            };
            let device_id = if narrow_devices {
                devices[(mix(r ^ 4) % devices.len() as u64) as usize].clone()
            } else {
                identity.device
            };
            let new = NewReferral {
                invite_id: Some(invite_id),
                referrer_id: &referrer.id,
                referee_id: None,
                partner: None,
                channel,
                region: referrer.region,
                persona: referrer.persona_idx,
                created_at: at,
                ip,
                device_id,
                email_domain: identity.domain,
                payment_fingerprint: None,
            };
            let outcome = Outcome {
                instant: bot_speed,
                ..Outcome::fraud(pattern::VELOCITY_BURST, [0.7, 0.45, 0.05, 0.2])
            };
            self.referral(new, outcome, out).await?;
        }
        Ok(())
    }

    /// Honest look-alike of a burst: a legitimate referrer's post or event brings 15-30
    /// sign-ups within an hour, each a different person on their own network and device, with
    /// the channel's normal funnel.
    async fn influencer_burst(
        &mut self,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let idx = self.world.sample_referrer(&mut self.rng);
        let referrer = self.world.referrer(idx);
        let n = self.rng.random_range(15..=30);
        let begin = day_start + self.rng.random_range(0..20 * HOUR);
        let length = self.rng.random_range(15 * MINUTE..60 * MINUTE);
        let channel = if self.rng.random::<f64>() < 0.7 { 1 } else { 4 }; // social or events
        for _ in 0..n {
            let at = begin + self.rng.random_range(0..length);
            let invite_id = self.id("inv");
            self.push_invite(&invite_id, &referrer, channel, None, at - MINUTE, out)
                .await?;
            let identity = RefereeIdentity::fresh(self.rng.random());
            let new = NewReferral {
                invite_id: Some(invite_id),
                referrer_id: &referrer.id,
                referee_id: None,
                partner: None,
                channel,
                region: referrer.region,
                persona: referrer.persona_idx,
                created_at: at,
                ip: identity.ip,
                device_id: identity.device,
                email_domain: identity.domain,
                payment_fingerprint: identity.payment,
            };
            let outcome = Outcome {
                lookalike: Some(lookalike::INFLUENCER_BURST),
                ..Outcome::legit(channel)
            };
            self.referral(new, outcome, out).await?;
        }
        Ok(())
    }

    /// A ring that evades per-key counts: each device (and card) is shared by two neighbouring
    /// accounts of the ring only, so no single key reaches three referrers, yet the shared keys
    /// chain every account into one component. Addresses rotate within one hosting network.
    async fn rotating_ring(
        &mut self,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let members = self.rng.random_range(6..=14);
        // Which keys chain the ring: devices, cards, or both.
        let (share_devices, share_cards) = match self.rng.random_range(0..3) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let fresh = |rng: &mut ChaCha8Rng, prefix: &str| key_id(prefix, rng.random());
        let devices: Vec<String> = (0..members).map(|_| fresh(&mut self.rng, "dev")).collect();
        let cards: Vec<String> = (0..members).map(|_| fresh(&mut self.rng, "pf")).collect();
        let network = network_from_hash(self.rng.random());
        let region = REGIONS[pick_by_hash(self.rng.random(), REGIONS.iter().map(|r| r.1))].0;
        let span_days = self.rng.random_range(3..=10);
        let member_ids: Vec<String> = (0..members).map(|_| self.new_user_id()).collect();
        for (m, member) in member_ids.iter().enumerate() {
            // Member m uses keys m and m+1 (mod size), each at least once: every key links two
            // neighbours, and the shared keys chain the whole ring.
            let mine = [m, (m + 1) % members];
            for i in 0..self.rng.random_range(2..=5) {
                let at = day_start + self.rng.random_range(0..span_days * DAY);
                let (invite_id, channel, referee_id) = self
                    .ring_invite(member, &member_ids, region, 1, at, out)
                    .await?;
                let pick = if i < 2 {
                    mine[i]
                } else {
                    mine[self.rng.random_range(0..2)]
                };
                let new = NewReferral {
                    invite_id: Some(invite_id),
                    referrer_id: member,
                    referee_id,
                    partner: None,
                    channel,
                    region,
                    persona: 1,
                    created_at: at + self.rng.random_range(MINUTE..6 * HOUR),
                    ip: ip_in_network(network, self.rng.random()),
                    device_id: if share_devices {
                        devices[pick].clone()
                    } else {
                        fresh(&mut self.rng, "dev")
                    },
                    email_domain: COMMON_EMAIL_DOMAINS[self.rng.random_range(0..4)]
                        .0
                        .to_string(),
                    payment_fingerprint: Some(if share_cards {
                        cards[pick].clone()
                    } else {
                        fresh(&mut self.rng, "pf")
                    }),
                };
                let outcome = Outcome::fraud(pattern::ROTATING_RING, [0.95, 0.8, 0.05, 0.3]);
                self.referral(new, outcome, out).await?;
            }
        }
        Ok(())
    }

    /// Slow farms: dedicated referrer accounts, each adding one fake referee every few days
    /// (never fast enough for a velocity rule), each referee on a fresh device and card, all
    /// from addresses of one hosting network. The referees collect the sign-up bonus and go no
    /// further.
    async fn slow_farms(
        &mut self,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        if day_start == self.start {
            let count = (self.world.referrer_count / 2_000).max(4);
            let period = self.end - self.start;
            for _ in 0..count {
                let idx = self.world.referrer_count + self.next_id;
                self.next_id += 1;
                let farm = SlowFarm {
                    referrer: self.world.referrer(idx),
                    network: network_from_hash(self.rng.random()),
                    next_at: self.start + self.rng.random_range(0..period / 5),
                    mean_interval: self.rng.random_range(2 * DAY..5 * DAY),
                };
                self.farms.push(farm);
            }
        }
        let mut farms = std::mem::take(&mut self.farms);
        for farm in &mut farms {
            while farm.next_at < day_start + DAY {
                let at = farm.next_at;
                farm.next_at +=
                    (farm.mean_interval as f64 * self.rng.random_range(0.75..1.25)) as i64;
                let channel = 0; // email
                let invite_id = self.id("inv");
                self.push_invite(&invite_id, &farm.referrer, channel, None, at, out)
                    .await?;
                let new = NewReferral {
                    invite_id: Some(invite_id),
                    referrer_id: &farm.referrer.id,
                    referee_id: None,
                    partner: None,
                    channel,
                    region: farm.referrer.region,
                    persona: farm.referrer.persona_idx,
                    created_at: at + self.rng.random_range(10 * MINUTE..10 * HOUR),
                    ip: ip_in_network(farm.network, self.rng.random()),
                    device_id: key_id("dev", self.rng.random()),
                    email_domain: COMMON_EMAIL_DOMAINS[self.rng.random_range(0..4)]
                        .0
                        .to_string(),
                    payment_fingerprint: Some(key_id("pf", self.rng.random())),
                };
                let outcome = Outcome::fraud(pattern::SLOW_FARM, [0.95, 0.9, 0.02, 0.02]);
                self.referral(new, outcome, out).await?;
            }
        }
        self.farms = farms;
        Ok(())
    }

    async fn farmed_partner_referral(
        &mut self,
        partner: usize,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let idx = self.world.sample_referrer(&mut self.rng);
        let referrer = self.world.referrer(idx);
        let at = day_start + self.rng.random_range(0..DAY);
        let channel = 3; // partner
        let invite_id = self.id("inv");
        self.push_invite(&invite_id, &referrer, channel, Some(partner), at, out)
            .await?;
        let identity = self.legit_referee_identity(idx, &referrer);
        let new = NewReferral {
            invite_id: Some(invite_id),
            referrer_id: &referrer.id,
            referee_id: None,
            partner: Some(partner),
            channel,
            region: referrer.region,
            persona: referrer.persona_idx,
            created_at: at + self.rng.random_range(MINUTE..12 * HOUR),
            ip: identity.ip,
            device_id: identity.device,
            email_domain: identity.domain,
            payment_fingerprint: identity.payment,
        };
        let outcome = Outcome {
            amount_scale: 0.08,
            flag_probability: 0.1,
            ..Outcome::fraud(pattern::PAYOUT_CONCENTRATION, [0.95, 0.95, 0.9, 0.85])
        };
        self.referral(new, outcome, out).await
    }

    /// Writes a referral and everything it causes.
    async fn referral(
        &mut self,
        new: NewReferral<'_>,
        outcome: Outcome,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        if new.created_at >= self.end {
            return Ok(());
        }
        let referral_id = self.id("ref");
        let referee_id = match new.referee_id {
            Some(id) => id,
            None => self.new_user_id(),
        };
        let partner_id = new.partner.map(|p| self.world.partners[p].id.clone());
        self.counts.referrals += 1;
        if let Some(p) = outcome.truth {
            *self.counts.fraud_by_pattern.entry(p).or_default() += 1;
            self.truth.push(TruthLabel {
                referral_id: referral_id.clone(),
                pattern: p,
                created_at: new.created_at,
            });
        } else if let Some(kind) = outcome.lookalike {
            *self.counts.lookalikes_by_kind.entry(kind).or_default() += 1;
            self.lookalikes.push(TruthLabel {
                referral_id: referral_id.clone(),
                pattern: kind,
                created_at: new.created_at,
            });
        }
        let channel_name = CHANNELS[new.channel].0;
        self.referrals
            .push(
                Referral {
                    referral_id: referral_id.clone(),
                    invite_id: new.invite_id,
                    referrer_id: new.referrer_id.to_string(),
                    referee_id: referee_id.clone(),
                    partner_id: partner_id.clone(),
                    channel: channel_name,
                    region: new.region,
                    persona: PERSONAS[new.persona].0,
                    created_at: new.created_at,
                    ip: new.ip,
                    device_id: new.device_id,
                    email_domain: new.email_domain,
                    payment_fingerprint: new.payment_fingerprint,
                },
                out,
            )
            .await?;

        // Compliance checks on the referral itself.
        let terms = if self.rng.random::<f64>() < 0.985 {
            "pass"
        } else {
            "missing"
        };
        self.compliance_event(
            "referral",
            &referral_id,
            "terms_accepted",
            terms,
            new.created_at + MINUTE,
            out,
        )
        .await?;
        if let Some(p) = new.partner {
            let bad = self.world.partners[p].compliance_problem;
            let roll = self.rng.random::<f64>();
            let status = match (bad, roll) {
                (true, x) if x < 0.45 => "fail",
                (true, x) if x < 0.6 => "missing",
                (false, x) if x < 0.01 => "fail",
                (false, x) if x < 0.03 => "missing",
                _ => "pass",
            };
            self.compliance_event(
                "referral",
                &referral_id,
                "disclosure_shown",
                status,
                new.created_at + MINUTE,
                out,
            )
            .await?;
        }

        // The funnel, step by step.
        const STAGES: [&str; 4] = ["signup", "qualified", "opportunity", "won"];
        const LAG_DAYS: [(f64, f64); 4] = [(0.05, 3.0), (1.0, 7.0), (2.0, 12.0), (4.0, 21.0)];
        let mut t = new.created_at;
        let mut reached = 0;
        for (s, stage) in STAGES.iter().enumerate() {
            if self.rng.random::<f64>() >= outcome.funnel[s] {
                break;
            }
            t += if outcome.instant {
                self.rng.random_range(MINUTE..8 * MINUTE)
            } else {
                let (lo, hi) = LAG_DAYS[s];
                (self.rng.random_range(lo..hi) * DAY as f64) as i64
            };
            if t >= self.end {
                break;
            }
            reached = s + 1;
            let amount = (*stage == "won").then(|| {
                let mean = PERSONAS[new.persona].2 * outcome.amount_scale;
                let dist = LogNormal::new(mean.ln() - 0.18, 0.6).expect("valid lognormal");
                (dist.sample(&mut self.rng) * 100.0).round() / 100.0
            });
            self.conversions
                .push(
                    Conversion {
                        referral_id: referral_id.clone(),
                        stage,
                        occurred_at: t,
                        amount,
                    },
                    out,
                )
                .await?;
            // Payouts: a signup bonus to the referrer on `qualified`; the reward on `won`.
            let payout = match (*stage, new.partner) {
                ("qualified", _) => Some((new.referrer_id.to_string(), "referrer", 25.0)),
                ("won", Some(p)) => Some((
                    self.world.partners[p].id.clone(),
                    "partner",
                    150.0 + 0.05 * amount.unwrap_or(0.0),
                )),
                ("won", None) => Some((new.referrer_id.to_string(), "referrer", 150.0)),
                _ => None,
            };
            if let Some((recipient_id, recipient_type, amount)) = payout {
                let created_at = t + self.rng.random_range(HOUR..2 * DAY);
                if created_at < self.end {
                    let status = self.payout_status(created_at, outcome.truth.is_some());
                    let payout_id = self.id("pay");
                    self.payouts
                        .push(
                            Payout {
                                payout_id,
                                referral_id: referral_id.clone(),
                                recipient_id,
                                recipient_type,
                                amount: (amount * 100.0_f64).round() / 100.0,
                                currency: "USD",
                                status,
                                created_at,
                            },
                            out,
                        )
                        .await?;
                }
            }
        }

        // The program's existing fraud model and chargebacks catch some of it.
        if self.rng.random::<f64>() < outcome.flag_probability {
            let flagged_at = new.created_at + self.rng.random_range(HOUR..4 * DAY);
            if flagged_at < self.end {
                let (source, reason) = match (outcome.truth, self.rng.random::<f64>()) {
                    (_, x) if x < 0.15 => ("manual", "reviewer_suspicion"),
                    (Some(_), x) if x < 0.3 => ("chargeback", "payment_disputed"),
                    (Some(pattern::VELOCITY_BURST), _) => ("model", "velocity"),
                    (Some(pattern::DISPOSABLE_EMAIL), _) => ("model", "email_reputation"),
                    (
                        Some(
                            pattern::DEVICE_RING | pattern::ROTATING_RING | pattern::SELF_REFERRAL,
                        ),
                        _,
                    ) => ("model", "shared_device"),
                    _ => ("model", "anomaly_score"),
                };
                self.flags
                    .push(
                        FraudFlag {
                            referral_id: referral_id.clone(),
                            source,
                            reason,
                            flagged_at,
                        },
                        out,
                    )
                    .await?;
            }
        }

        // Referees who signed up sometimes answer NPS a week later.
        if reached >= 1 && self.rng.random::<f64>() < 0.06 {
            let responded_at = new.created_at + self.rng.random_range(3 * DAY..10 * DAY);
            if responded_at < self.end {
                let base =
                    if reached == 4 { 8.9 } else { 8.0 } - if new.channel == 1 { 0.6 } else { 0.0 };
                let score = self.nps_score(base);
                let response_id = self.id("nps");
                self.nps
                    .push(
                        NpsResponse {
                            response_id,
                            respondent_type: "referee",
                            respondent_id: referee_id,
                            partner_id,
                            channel: Some(channel_name),
                            region: new.region,
                            score,
                            responded_at,
                        },
                        out,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn payout_status(&mut self, created_at: Micros, fraudulent: bool) -> &'static str {
        let recent = self.end - created_at < 7 * DAY;
        let x = self.rng.random::<f64>();
        if recent && x < 0.6 {
            return "pending";
        }
        match (fraudulent, x) {
            (true, x) if x < 0.08 => "held",
            (true, x) if x < 0.14 => "reversed",
            (false, x) if x < 0.03 => "held",
            (false, x) if x < 0.05 => "reversed",
            (_, x) if x < 0.1 => "pending",
            _ => "paid",
        }
    }

    async fn compliance_event(
        &mut self,
        subject_type: &'static str,
        subject_id: &str,
        check_name: &'static str,
        status: &'static str,
        at: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        if at >= self.end {
            return Ok(());
        }
        let event_id = self.id("cmp");
        self.compliance
            .push(
                ComplianceEvent {
                    event_id,
                    subject_type,
                    subject_id: subject_id.to_string(),
                    check_name,
                    status,
                    at,
                },
                out,
            )
            .await
    }

    fn nps_score(&mut self, mean: f64) -> i64 {
        let n = Normal::new(mean, 1.5).expect("valid normal");
        n.sample(&mut self.rng).round().clamp(0.0, 10.0) as i64
    }

    /// Partner activity for one day, plus partner NPS and periodic KYC checks.
    async fn partner_day(
        &mut self,
        day_start: Micros,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let progress = (day_start - self.start) as f64 / (self.end - self.start) as f64;
        let day = (day_start / DAY) as i32;
        let weekend = matches!((day + 4).rem_euclid(7), 0 | 6);
        for p in 0..self.world.partners.len() {
            let info = &self.world.partners[p];
            if info.status == "terminated" {
                continue;
            }
            let size = match info.tier {
                "platinum" => 6.0,
                "gold" => 3.0,
                "silver" => 1.5,
                _ => 0.6,
            };
            let mut engagement = info.engagement;
            if info.fading {
                engagement *= (1.0 - progress).max(0.05);
            }
            if info.status == "paused" {
                engagement *= 0.1;
            }
            let lambda = size * engagement * if weekend { 0.4 } else { 1.0 };
            let partner_id = info.id.clone();
            let region = info.region;
            let nps_mean = 6.3 + 3.2 * engagement;
            let kyc_due = (day as u64).wrapping_add(mix(p as u64)).is_multiple_of(30);
            let kyc_status = if info.compliance_problem {
                if self.rng.random::<f64>() < 0.7 {
                    "fail"
                } else {
                    "missing"
                }
            } else if info.payout_fraud {
                "missing"
            } else if self.rng.random::<f64>() < 0.97 {
                "pass"
            } else {
                "missing"
            };
            let row = PartnerActivity {
                partner_id: partner_id.clone(),
                activity_date: day,
                logins: poisson(&mut self.rng, lambda * 2.0) as i64,
                content_shares: poisson(&mut self.rng, lambda) as i64,
                mentions: poisson(&mut self.rng, lambda * 0.5) as i64,
            };
            self.partner_activity.push(row, out).await?;
            if self.rng.random::<f64>() < 1.0 / 45.0 {
                let score = self.nps_score(nps_mean);
                let response_id = self.id("nps");
                let responded_at = day_start + self.rng.random_range(0..DAY);
                self.nps
                    .push(
                        NpsResponse {
                            response_id,
                            respondent_type: "partner",
                            respondent_id: partner_id.clone(),
                            partner_id: Some(partner_id.clone()),
                            channel: None,
                            region,
                            score,
                            responded_at,
                        },
                        out,
                    )
                    .await?;
            }
            if kyc_due {
                let at = day_start + self.rng.random_range(0..DAY);
                self.compliance_event("partner", &partner_id, "kyc_verified", kyc_status, at, out)
                    .await?;
            }
        }
        Ok(())
    }

    /// NPS answers from referrers, proportional to the day's volume.
    async fn referrer_nps(
        &mut self,
        day_start: Micros,
        invites_today: u64,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let n = poisson(&mut self.rng, invites_today as f64 * 0.003);
        for _ in 0..n {
            let idx = self.world.sample_referrer(&mut self.rng);
            let referrer = self.world.referrer(idx);
            let score = self.nps_score(8.4);
            let response_id = self.id("nps");
            let responded_at = day_start + self.rng.random_range(0..DAY);
            self.nps
                .push(
                    NpsResponse {
                        response_id,
                        respondent_type: "referrer",
                        respondent_id: referrer.id,
                        partner_id: None,
                        channel: None,
                        region: referrer.region,
                        score,
                        responded_at,
                    },
                    out,
                )
                .await?;
        }
        Ok(())
    }

    /// Writes every buffer for days before `day` (number since the epoch).
    pub async fn flush_before(
        &mut self,
        day: i32,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        self.invites.flush_before(day, out).await?;
        self.referrals.flush_before(day, out).await?;
        self.conversions.flush_before(day, out).await?;
        self.payouts.flush_before(day, out).await?;
        self.partner_activity.flush_before(day, out).await?;
        self.nps.flush_before(day, out).await?;
        self.flags.flush_before(day, out).await?;
        self.compliance.flush_before(day, out).await?;
        self.assignments.flush_before(day, out).await
    }
}

/// A Poisson draw (0 for a non-positive mean).
pub fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean)
        .map(|d| d.sample(rng) as u64)
        .unwrap_or(0)
}
