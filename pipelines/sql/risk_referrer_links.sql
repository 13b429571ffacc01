-- Links between referrers (a `kind: components` stage: edges a, b): two referrers are linked
-- when referees of both used the same device, the same payment card, or the same address in
-- the current or the previous period (risk_link_referrals). An address behind more than three
-- referrers is a hub (an office NAT, a campus, a carrier), not a link: it would chain honest
-- strangers together. Each shared key links its referrers to the key's smallest referrer id (a
-- star, not every pair). The keys' referrer counts are a grouped aggregate (it spills under a
-- memory limit; a window partitioned by key held one result array per key outside the pool),
-- joined back to the distinct (key, referrer) rows with the shared keys as the build side.
WITH keys AS (
  SELECT DISTINCT kind, k, referrer_id FROM (
    SELECT 'device' AS kind, device_id AS k, referrer_id FROM risk_link_referrals
    UNION ALL SELECT 'card', payment_fingerprint, referrer_id FROM risk_link_referrals
    UNION ALL SELECT 'address', ip, referrer_id FROM risk_link_referrals
  ) WHERE k IS NOT NULL
),
shared AS (
  SELECT kind, k, MIN(referrer_id) AS hub
  FROM keys
  GROUP BY kind, k
  HAVING COUNT(*) >= 2 AND (kind <> 'address' OR COUNT(*) <= 3)
)
SELECT keys.referrer_id AS a, shared.hub AS b
FROM shared
JOIN keys ON keys.kind = shared.kind AND keys.k = shared.k
WHERE keys.referrer_id <> shared.hub
