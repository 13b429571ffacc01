-- Per payment fingerprint: referrals, distinct referrers and devices.
-- Distinct counts from de-duplicated triples (see risk_devices.sql for why).
WITH cards AS (
  SELECT payment_fingerprint, referrer_id, device_id
  FROM risk_referrals WHERE payment_fingerprint IS NOT NULL
),
triples AS (
  SELECT DISTINCT payment_fingerprint, kind, v FROM (
    SELECT payment_fingerprint, 'referrer' AS kind, referrer_id AS v FROM cards
    UNION ALL SELECT payment_fingerprint, 'device', device_id FROM cards
  ) WHERE v IS NOT NULL
),
distinct_counts AS (
  SELECT payment_fingerprint,
         SUM(CASE WHEN kind = 'referrer' THEN 1 ELSE 0 END) AS referrers,
         SUM(CASE WHEN kind = 'device' THEN 1 ELSE 0 END) AS devices
  FROM triples GROUP BY payment_fingerprint
),
base AS (
  SELECT payment_fingerprint, COUNT(*) AS referrals FROM cards GROUP BY payment_fingerprint
)
SELECT b.payment_fingerprint, b.referrals,
       COALESCE(d.referrers, 0) AS referrers,
       COALESCE(d.devices, 0) AS devices
FROM base b
LEFT JOIN distinct_counts d ON d.payment_fingerprint = b.payment_fingerprint
