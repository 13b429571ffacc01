//! The static world a data set is drawn from: referrers, partners, companies, campuses, and the
//! vocabulary (channels, regions, personas) with their realistic weights and funnel rates.
//!
//! Referrer attributes are derived from a hash of (seed, index) instead of being stored, so a
//! 100 M-invite world needs only one weight per referrer in memory.

use rand::Rng;
use rand::distr::weighted::WeightedIndex;
use rand::prelude::Distribution;
use rand_chacha::ChaCha8Rng;

use crate::tables::Micros;

/// Referral channels with their share of invites.
pub const CHANNELS: [(&str, f64); 5] = [
    ("email", 0.34),
    ("social", 0.26),
    ("in_app", 0.20),
    ("partner", 0.15),
    ("events", 0.05),
];
/// Invite -> referral probability per channel (same order as [`CHANNELS`]).
pub const INVITE_TO_REFERRAL: [f64; 5] = [0.14, 0.06, 0.22, 0.30, 0.18];
/// Referral -> signup, signup -> qualified, qualified -> opportunity, opportunity -> won, per
/// channel.
pub const FUNNEL: [[f64; 4]; 5] = [
    [0.55, 0.50, 0.45, 0.35],
    [0.40, 0.35, 0.30, 0.25],
    [0.65, 0.55, 0.45, 0.30],
    [0.70, 0.60, 0.55, 0.40],
    [0.60, 0.50, 0.50, 0.35],
];
pub const REGIONS: [(&str, f64); 4] = [
    ("NA", 0.45),
    ("EMEA", 0.30),
    ("APAC", 0.17),
    ("LATAM", 0.08),
];
/// Personas with their weight and mean won-deal size in USD.
pub const PERSONAS: [(&str, f64, f64); 4] = [
    ("founder", 0.22, 9_000.0),
    ("marketer", 0.34, 5_200.0),
    ("developer", 0.28, 4_100.0),
    ("sales_leader", 0.16, 12_500.0),
];
pub const COMMON_EMAIL_DOMAINS: [(&str, f64); 6] = [
    ("gmail.com", 0.46),
    ("outlook.com", 0.17),
    ("yahoo.com", 0.09),
    ("icloud.com", 0.08),
    ("proton.me", 0.03),
    ("hotmail.com", 0.07),
];
/// Throw-away mail services used by planted fraud: a few well-known ones and many of the
/// short-lived domains that appear daily (all from the public `disposable-email-domains` list,
/// which is what a maintained blocklist catches and a hand-typed list does not).
pub const DISPOSABLE_DOMAINS: [&str; 56] = [
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "yopmail.com",
    "trashmail.com",
    "sharklasers.com",
    "getnada.com",
    "maildrop.cc",
    "adroh.com",
    "aqilakomputer.com",
    "azuretechtalk.net",
    "baserda.net",
    "bbmailku.com",
    "benshelf.com",
    "cityfreon.xyz",
    "dea-21olympic.com",
    "digitalmail.info",
    "emailasia1.com",
    "emailviet.com",
    "enitempmail.xyz",
    "enotj.com",
    "eosada.com",
    "fakemailz.com",
    "fbins607.com",
    "giodaingan.com",
    "greensloth.com",
    "hola.org",
    "inboxbear.com",
    "isdaq.com",
    "japnc.com",
    "kakadua.net",
    "link2mail.net",
    "litedl.com",
    "lxbeta.com",
    "mianfeibuluo.com",
    "naocan.org",
    "ogcover.com",
    "oldao.com",
    "pearlrepairs.xyz",
    "phuotngay.com",
    "pleasenoham.org",
    "porsh.net",
    "pratikmail.org",
    "royaldoodles.org",
    "shxwonew.xyz",
    "slothmail.net",
    "substoretools.com",
    "throwam.com",
    "thueotp.net",
    "tinytimer.org",
    "tmail3.com",
    "toptechdubai.xyz",
    "tradermail.info",
    "trbvn.com",
    "winemaven.info",
    "x-lab.net",
];

const NAME_LEFT: [&str; 16] = [
    "Northwind",
    "Blue Harbor",
    "Summit",
    "Brightline",
    "Copperleaf",
    "Evergreen",
    "Ironwood",
    "Lakeside",
    "Meridian",
    "Oakridge",
    "Pinecrest",
    "Redstone",
    "Silverline",
    "Tidewater",
    "Westfield",
    "Keystone",
];
const NAME_RIGHT: [&str; 10] = [
    "Labs",
    "Partners",
    "Consulting",
    "Digital",
    "Group",
    "& Co",
    "Advisors",
    "Agency",
    "Solutions",
    "Media",
];

/// SplitMix64: a fast, well-mixed hash of a 64-bit value; the generator's source of
/// per-entity attributes.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Uniform float in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Picks an index by weight from a hash value (for small, fixed vocabularies).
pub fn pick_by_hash(h: u64, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = unit(h) * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        last = i;
        if x < w {
            return i;
        }
        x -= w;
    }
    last
}

/// A device or card id (`dev_…`, `pf_…`): the prefix and 48 bits of a hash in hex.
pub fn key_id(prefix: &str, h: u64) -> String {
    format!("{prefix}_{:012x}", h & 0xFFFF_FFFF_FFFF)
}

/// A /24 network (its first three octets) drawn from a hash, for hosting providers whose
/// addresses fraud rotates through.
pub fn network_from_hash(h: u64) -> [u8; 3] {
    [
        (11 + (h % 200)) as u8,
        ((h >> 8) % 256) as u8,
        ((h >> 16) % 256) as u8,
    ]
}

/// One address in a /24 network.
pub fn ip_in_network(network: [u8; 3], host: u64) -> String {
    format!(
        "{}.{}.{}.{}",
        network[0],
        network[1],
        network[2],
        1 + host % 254
    )
}

/// A random IPv4 address in documentation/private-looking but realistic ranges.
pub fn ip_from_hash(h: u64) -> String {
    format!(
        "{}.{}.{}.{}",
        11 + (h % 200),
        (h >> 8) % 256,
        (h >> 16) % 256,
        1 + (h >> 24) % 254
    )
}

/// What the generator knows about a referrer; derived, not stored.
pub struct Referrer {
    pub id: String,
    pub region: &'static str,
    pub persona_idx: usize,
    pub device: String,
    pub household_device: String,
    pub home_ip: String,
    pub payment_fingerprint: String,
    /// Index into the world's companies when the referrer champions refopt at work.
    pub company: Option<usize>,
    pub has_family: bool,
    pub self_referrer: bool,
}

/// An employer whose colleagues share an office NAT IP and a mail domain (a legitimate
/// look-alike of an IP ring).
pub struct Company {
    pub domain: String,
    pub ips: [String; 2],
    /// A corporate card that pays for coworkers' accounts, whoever referred them (a legitimate
    /// look-alike of a card shared across referrers).
    pub card: Option<String>,
}

/// A partner with its latent health, used for activity, NPS and sizes.
pub struct PartnerInfo {
    pub id: String,
    pub name: String,
    pub tier: &'static str,
    pub region: &'static str,
    pub status: &'static str,
    pub joined_at: Micros,
    /// 0..1; drives logins/shares/mentions and NPS.
    pub engagement: f64,
    /// Engagement decays across the period for a "going dormant" partner.
    pub fading: bool,
    pub compliance_problem: bool,
    pub payout_fraud: bool,
}

/// The world: population sizes and samplers.
pub struct World {
    pub seed: u64,
    pub referrer_count: u64,
    pub referrer_sampler: WeightedIndex<f64>,
    pub partners: Vec<PartnerInfo>,
    pub partner_sampler: WeightedIndex<f64>,
    pub companies: Vec<Company>,
    pub campus_ips: Vec<String>,
}

impl World {
    /// Builds a world sized for `invites` invites over `days` days.
    pub fn new(seed: u64, invites: u64, days: u32, start: Micros, rng: &mut ChaCha8Rng) -> Self {
        let referrer_count = (invites / 40).max(200);
        let per_day = invites as f64 / f64::from(days.max(1));
        // Pareto-distributed activity, capped so that nobody sends more than ~20 invites a day:
        // real power users are busy, not bots.
        let mut weights: Vec<f64> = (0..referrer_count)
            .map(|_| {
                let u: f64 = rng.random_range(1e-9..1.0);
                u.powf(-1.0 / 1.6)
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let cap = 20.0 * total / per_day.max(1.0);
        for w in &mut weights {
            *w = w.min(cap);
        }
        let referrer_sampler = WeightedIndex::new(&weights).expect("positive weights");

        let partner_count = (invites / 4_000).clamp(30, 20_000) as usize;
        let mut partners = Vec::with_capacity(partner_count);
        let mut partner_weights = Vec::with_capacity(partner_count);
        for rank in 0..partner_count {
            let share = rank as f64 / partner_count as f64;
            let tier = if share < 0.03 {
                "platinum"
            } else if share < 0.12 {
                "gold"
            } else if share < 0.40 {
                "silver"
            } else {
                "bronze"
            };
            let h = mix(seed ^ 0xA11CE ^ rank as u64);
            let status = match unit(mix(h)) {
                x if x < 0.88 => "active",
                x if x < 0.96 => "paused",
                _ => "terminated",
            };
            let joined_days_before = 30 + (h % 900) as i64;
            partners.push(PartnerInfo {
                id: format!("p_{:05}", mix(h) % 100_000),
                name: format!(
                    "{} {}",
                    NAME_LEFT[(h % 16) as usize],
                    NAME_RIGHT[((h >> 8) % 10) as usize]
                ),
                tier,
                region: REGIONS[pick_by_hash(h >> 3, REGIONS.iter().map(|r| r.1))].0,
                status,
                joined_at: start - joined_days_before * 86_400_000_000,
                engagement: 0.25 + 0.75 * unit(mix(h ^ 7)),
                fading: unit(mix(h ^ 9)) < 0.15,
                compliance_problem: unit(mix(h ^ 11)) < 0.04 && tier != "platinum",
                payout_fraud: false,
            });
            let size = 1.0 / ((rank + 1) as f64).powf(1.1);
            partner_weights.push(if status == "active" { size } else { size * 0.2 });
        }
        // Partner ids come from a hash: make them unique.
        for (i, p) in partners.iter_mut().enumerate() {
            p.id = format!("p_{i:05}");
        }
        // One recently joined small partner farms payouts with fake deals.
        let fraud_idx = partner_count * 2 / 3;
        partners[fraud_idx].payout_fraud = true;
        partners[fraud_idx].status = "active";
        partners[fraud_idx].joined_at = start - 20 * 86_400_000_000;
        // A partner set up to farm payouts brings almost no genuine traffic.
        partner_weights[fraud_idx] *= 0.02;
        let partner_sampler = WeightedIndex::new(&partner_weights).expect("positive weights");

        let company_count = (referrer_count / 60).max(5) as usize;
        let companies = (0..company_count)
            .map(|i| {
                let h = mix(seed ^ 0xC0FFEE ^ i as u64);
                Company {
                    domain: format!(
                        "{}{}.com",
                        NAME_LEFT[(h % 16) as usize].to_lowercase().replace(' ', ""),
                        i
                    ),
                    ips: [ip_from_hash(mix(h)), ip_from_hash(mix(h ^ 1))],
                    card: (unit(mix(h ^ 2)) < 0.35).then(|| key_id("pf", mix(h ^ 3))),
                }
            })
            .collect();
        let campus_ips = (0..(company_count / 20).max(2))
            .map(|i| ip_from_hash(mix(seed ^ 0xCA3905 ^ i as u64)))
            .collect();
        Self {
            seed,
            referrer_count,
            referrer_sampler,
            partners,
            partner_sampler,
            companies,
            campus_ips,
        }
    }

    /// Draws a referrer index by activity weight.
    pub fn sample_referrer(&self, rng: &mut ChaCha8Rng) -> u64 {
        self.referrer_sampler.sample(rng) as u64
    }

    /// Draws a partner index by size.
    pub fn sample_partner(&self, rng: &mut ChaCha8Rng) -> usize {
        self.partner_sampler.sample(rng)
    }

    /// Derives a referrer's attributes from its index.
    pub fn referrer(&self, idx: u64) -> Referrer {
        let h = mix(self.seed ^ 0x5EED_0000 ^ idx);
        let company = if unit(mix(h ^ 1)) < 0.12 {
            Some((mix(h ^ 2) % self.companies.len() as u64) as usize)
        } else {
            None
        };
        Referrer {
            id: format!("u_{idx:09}"),
            region: REGIONS[pick_by_hash(mix(h ^ 3), REGIONS.iter().map(|r| r.1))].0,
            persona_idx: pick_by_hash(mix(h ^ 4), PERSONAS.iter().map(|p| p.1)),
            device: key_id("dev", mix(h ^ 5)),
            household_device: key_id("dev", mix(h ^ 6)),
            home_ip: ip_from_hash(mix(h ^ 7)),
            payment_fingerprint: key_id("pf", mix(h ^ 8)),
            company,
            has_family: unit(mix(h ^ 9)) < 0.10,
            self_referrer: unit(mix(h ^ 10)) < 0.004,
        }
    }
}
