-- Links between referrers (a `kind: components` stage: edges a, b): two referrers are linked
-- when referees of both used the same device, the same payment card, or the same address in
-- the current or the previous period (risk_link_referrals). An address behind more than three
-- referrers is a hub (an office NAT, a campus, a carrier), not a link: it would chain honest
-- strangers together. Each shared key links its referrers to the key's smallest referrer id (a
-- star, not every pair).
-- Almost every key belongs to one referrer, so each kind is first grouped on its own key column
-- alone (a key is shared when its smallest and largest referrer differ: no DISTINCT over every
-- (key, referrer) pair); only the referrals of shared keys are then joined back, the shared keys
-- being the small build side. Grouped aggregates spill under a memory limit.
WITH shared_devices AS (
  SELECT device_id AS k, MIN(referrer_id) AS hub
  FROM risk_link_referrals WHERE device_id IS NOT NULL
  GROUP BY device_id HAVING MIN(referrer_id) <> MAX(referrer_id)
),
shared_cards AS (
  SELECT payment_fingerprint AS k, MIN(referrer_id) AS hub
  FROM risk_link_referrals WHERE payment_fingerprint IS NOT NULL
  GROUP BY payment_fingerprint HAVING MIN(referrer_id) <> MAX(referrer_id)
),
address_referrers AS (
  SELECT DISTINCT a.k, a.hub, r.referrer_id
  FROM (
    SELECT ip AS k, MIN(referrer_id) AS hub
    FROM risk_link_referrals WHERE ip IS NOT NULL
    GROUP BY ip HAVING MIN(referrer_id) <> MAX(referrer_id)
  ) a
  JOIN risk_link_referrals r ON r.ip = a.k
),
shared_addresses AS (
  SELECT referrer_id, hub, COUNT(*) OVER (PARTITION BY k) AS referrers FROM address_referrers
)
SELECT r.referrer_id AS a, s.hub AS b
FROM shared_devices s JOIN risk_link_referrals r ON r.device_id = s.k
WHERE r.referrer_id <> s.hub
UNION ALL
SELECT r.referrer_id, s.hub
FROM shared_cards s JOIN risk_link_referrals r ON r.payment_fingerprint = s.k
WHERE r.referrer_id <> s.hub
UNION ALL
SELECT referrer_id, hub FROM shared_addresses WHERE referrers <= 3 AND referrer_id <> hub
