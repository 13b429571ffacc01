-- Per IP: referrals, distinct referrers, devices and email domains, first and last seen.
-- Distinct counts from de-duplicated triples (see risk_devices.sql for why).
WITH triples AS (
  SELECT DISTINCT ip, kind, v FROM (
    SELECT ip, 'referrer' AS kind, referrer_id AS v FROM risk_referrals
    UNION ALL SELECT ip, 'device', device_id FROM risk_referrals
    UNION ALL SELECT ip, 'domain', email_domain FROM risk_referrals
  ) WHERE v IS NOT NULL
),
distinct_counts AS (
  SELECT ip,
         SUM(CASE WHEN kind = 'referrer' THEN 1 ELSE 0 END) AS referrers,
         SUM(CASE WHEN kind = 'device' THEN 1 ELSE 0 END) AS devices,
         SUM(CASE WHEN kind = 'domain' THEN 1 ELSE 0 END) AS email_domains
  FROM triples GROUP BY ip
),
base AS (
  SELECT ip, COUNT(*) AS referrals, MIN(created_at) AS first_seen, MAX(created_at) AS last_seen
  FROM risk_referrals GROUP BY ip
)
SELECT b.ip, b.referrals,
       COALESCE(d.referrers, 0) AS referrers,
       COALESCE(d.devices, 0) AS devices,
       COALESCE(d.email_domains, 0) AS email_domains,
       b.first_seen, b.last_seen
FROM base b
LEFT JOIN distinct_counts d ON d.ip IS NOT DISTINCT FROM b.ip
