-- Links between referrers (a `kind: components` stage: edges a, b): two referrers are linked
-- when referees of both used the same device, the same payment card, or the same address in
-- the current or the previous period (risk_link_referrals). An address behind more than three
-- referrers is a hub (an office NAT, a campus, a carrier), not a link: it would chain honest
-- strangers together. Each shared key links its referrers to the key's smallest referrer id (a
-- star, not every pair). One pass: the distinct (key, referrer) rows, then window counts per key.
WITH keys AS (
  SELECT DISTINCT kind, k, referrer_id FROM (
    SELECT 'device' AS kind, device_id AS k, referrer_id FROM risk_link_referrals
    UNION ALL SELECT 'card', payment_fingerprint, referrer_id FROM risk_link_referrals
    UNION ALL SELECT 'address', ip, referrer_id FROM risk_link_referrals
  ) WHERE k IS NOT NULL
),
counted AS (
  SELECT referrer_id, kind,
         COUNT(*) OVER (PARTITION BY kind, k) AS referrers,
         MIN(referrer_id) OVER (PARTITION BY kind, k) AS hub
  FROM keys
)
SELECT referrer_id AS a, hub AS b
FROM counted
WHERE referrers >= 2 AND (kind <> 'address' OR referrers <= 3) AND referrer_id <> hub
