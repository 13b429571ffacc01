-- Per referee email domain: referrals, distinct referrers and devices, signup and won rates.
-- Distinct counts from de-duplicated triples (see risk_devices.sql for why).
WITH triples AS (
  SELECT DISTINCT email_domain, kind, v FROM (
    SELECT email_domain, 'referrer' AS kind, referrer_id AS v FROM risk_referrals
    UNION ALL SELECT email_domain, 'device', device_id FROM risk_referrals
  ) WHERE v IS NOT NULL
),
distinct_counts AS (
  SELECT email_domain,
         SUM(CASE WHEN kind = 'referrer' THEN 1 ELSE 0 END) AS referrers,
         SUM(CASE WHEN kind = 'device' THEN 1 ELSE 0 END) AS devices
  FROM triples GROUP BY email_domain
),
base AS (
  SELECT email_domain, COUNT(*) AS referrals,
         CAST(COUNT(signup_at) AS DOUBLE) / COUNT(*) AS signup_rate,
         CAST(COUNT(won_at) AS DOUBLE) / COUNT(*) AS won_rate
  FROM risk_referrals GROUP BY email_domain
)
SELECT b.email_domain, b.referrals,
       COALESCE(d.referrers, 0) AS referrers,
       COALESCE(d.devices, 0) AS devices,
       b.signup_rate, b.won_rate
FROM base b
LEFT JOIN distinct_counts d ON d.email_domain IS NOT DISTINCT FROM b.email_domain
