WITH per_hour AS (
  SELECT referrer_id, date_trunc('hour', created_at) AS hour, COUNT(*) AS n
  FROM risk_referrals GROUP BY referrer_id, date_trunc('hour', created_at)
),
per_device AS (
  SELECT referrer_id, device_id, COUNT(*) AS n FROM risk_referrals GROUP BY referrer_id, device_id
),
per_payment AS (
  SELECT referrer_id, payment_fingerprint, COUNT(*) AS n
  FROM risk_referrals WHERE payment_fingerprint IS NOT NULL
  GROUP BY referrer_id, payment_fingerprint
),
base AS (
  SELECT referrer_id, COUNT(*) AS referrals, COUNT(DISTINCT device_id) AS devices,
         COUNT(DISTINCT ip) AS ips, MIN(created_at) AS first_referral_at
  FROM risk_referrals GROUP BY referrer_id
)
SELECT b.referrer_id, b.referrals, b.devices, b.ips, b.first_referral_at,
       h.max_per_hour,
       d.max_same_device,
       COALESCE(p.max_same_payment, 0) AS max_same_payment
FROM base b
JOIN (SELECT referrer_id, MAX(n) AS max_per_hour FROM per_hour GROUP BY referrer_id) h
  ON h.referrer_id = b.referrer_id
JOIN (SELECT referrer_id, MAX(n) AS max_same_device FROM per_device GROUP BY referrer_id) d
  ON d.referrer_id = b.referrer_id
LEFT JOIN (SELECT referrer_id, MAX(n) AS max_same_payment FROM per_payment GROUP BY referrer_id) p
  ON p.referrer_id = b.referrer_id
