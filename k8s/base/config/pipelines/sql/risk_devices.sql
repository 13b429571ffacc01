-- Per device: referrals, distinct referrers, payment fingerprints and IPs, first and last seen.
-- Distinct counts come from de-duplicated (device, kind, value) triples: DataFusion's grouped
-- COUNT(DISTINCT) on strings keeps one hash set per group (kilobytes per device, gigabytes per
-- window), while grouping the triples keeps memory proportional to the rows and can spill.
WITH triples AS (
  SELECT DISTINCT device_id, kind, v FROM (
    SELECT device_id, 'referrer' AS kind, referrer_id AS v FROM risk_referrals
    UNION ALL SELECT device_id, 'card', payment_fingerprint FROM risk_referrals
    UNION ALL SELECT device_id, 'ip', ip FROM risk_referrals
  ) WHERE v IS NOT NULL
),
distinct_counts AS (
  SELECT device_id,
         SUM(CASE WHEN kind = 'referrer' THEN 1 ELSE 0 END) AS referrers,
         SUM(CASE WHEN kind = 'card' THEN 1 ELSE 0 END) AS payment_fingerprints,
         SUM(CASE WHEN kind = 'ip' THEN 1 ELSE 0 END) AS ips
  FROM triples GROUP BY device_id
),
base AS (
  SELECT device_id, COUNT(*) AS referrals, MIN(created_at) AS first_seen,
         MAX(created_at) AS last_seen
  FROM risk_referrals GROUP BY device_id
)
SELECT b.device_id, b.referrals,
       COALESCE(d.referrers, 0) AS referrers,
       COALESCE(d.payment_fingerprints, 0) AS payment_fingerprints,
       COALESCE(d.ips, 0) AS ips,
       b.first_seen, b.last_seen
FROM base b
LEFT JOIN distinct_counts d ON d.device_id IS NOT DISTINCT FROM b.device_id
