//! Clusters of flagged referrals: connected components over shared devices and payment
//! fingerprints, named after their smallest flagged referral id, and their summaries.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use super::Cluster;
use super::referrals::{Facts, LINK_COLUMNS, LinkRow};

/// Union-find over dense indices.
struct Components {
    parent: Vec<usize>,
}

impl Components {
    fn new() -> Self {
        Self { parent: Vec::new() }
    }

    fn add(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.parent.len() - 1
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// The cluster of each flagged referral that shares a component with another flagged one.
/// `linked` holds every referral row reachable from the flagged ones through shared link
/// values (see `ReferralsTable::linked`), so its components are the window's.
pub(super) fn link<'a>(
    flagged: impl IntoIterator<Item = &'a str>,
    linked: &'a BTreeSet<LinkRow>,
) -> BTreeMap<String, String> {
    let mut components = Components::new();
    let mut node: FxHashMap<&str, usize> = FxHashMap::default();
    let mut node_of = |id: &'a str, components: &mut Components| {
        *node.entry(id).or_insert_with(|| components.add())
    };
    let mut first_with: [FxHashMap<&str, usize>; 2] = Default::default();
    for row in linked {
        let n = node_of(&row.id, &mut components);
        for (first, link) in first_with.iter_mut().zip(&row.links) {
            if let Some(link) = link {
                match first.get(link.as_str()) {
                    Some(&m) => components.union(n, m),
                    None => {
                        first.insert(link, n);
                    }
                }
            }
        }
    }
    let mut members: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for id in flagged {
        let n = node_of(id, &mut components);
        members.entry(components.find(n)).or_default().push(id);
    }
    let mut out = BTreeMap::new();
    for flagged in members.into_values().filter(|m| m.len() >= 2) {
        // Named after its smallest flagged referral id: stable whatever order rows came in.
        let name = format!("cluster-{}", flagged.iter().min().expect("two members"));
        for id in flagged {
            out.insert(id.to_string(), name.clone());
        }
    }
    out
}

/// Summaries of the clusters, largest first: from what the review knows of their flagged
/// referrals (`facts`) and the rules that fired on them (`rules_of`).
pub(super) fn summarize(
    clusters_of: &BTreeMap<String, String>,
    facts: &BTreeMap<String, Facts>,
    rules_of: impl Fn(&str) -> Vec<String>,
) -> Vec<Cluster> {
    #[derive(Default)]
    struct Acc {
        n: u64,
        referrers: BTreeSet<String>,
        devices: BTreeSet<String>,
        ips: BTreeSet<String>,
        cards: BTreeSet<String>,
        rules: BTreeSet<String>,
    }
    let no_facts = Facts::new();
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    for (id, name) in clusters_of {
        let a = acc.entry(name.as_str()).or_default();
        let f = facts.get(id).unwrap_or(&no_facts);
        let values = |column: &str| f.get(column).into_iter().flatten().cloned();
        a.n += 1;
        a.referrers.extend(values("referrer_id"));
        a.devices.extend(values(LINK_COLUMNS[0]));
        a.cards.extend(values(LINK_COLUMNS[1]));
        a.ips.extend(values("ip"));
        a.rules.extend(rules_of(id));
    }
    let mut clusters: Vec<Cluster> = acc
        .into_iter()
        .map(|(name, a)| Cluster {
            cluster_id: name.to_string(),
            referrals: a.n,
            referrers: a.referrers.len() as u64,
            devices: a.devices.into_iter().take(5).collect(),
            ips: a.ips.into_iter().take(5).collect(),
            payment_fingerprints: a.cards.len() as u64,
            rule_ids: a.rules.into_iter().collect(),
        })
        .collect();
    clusters.sort_by(|a, b| {
        b.referrals
            .cmp(&a.referrals)
            .then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
    clusters
}
