-- Per referrer: referrals, distinct devices and IPs, the first referral, the busiest hour, and
-- the largest group of its referees sharing one device or one payment fingerprint
-- (self-referral signals). Distinct counts come from the de-duplicated pairs below rather than
-- COUNT(DISTINCT) (see risk_devices.sql for why).
WITH per_hour AS (
  SELECT referrer_id, date_bin(INTERVAL '1 hour', created_at) AS hour, COUNT(*) AS n
  FROM risk_referrals GROUP BY referrer_id, date_bin(INTERVAL '1 hour', created_at)
),
per_device AS (
  SELECT referrer_id, device_id, COUNT(*) AS n FROM risk_referrals GROUP BY referrer_id, device_id
),
per_ip AS (
  SELECT referrer_id, ip FROM risk_referrals WHERE ip IS NOT NULL GROUP BY referrer_id, ip
),
per_payment AS (
  SELECT referrer_id, payment_fingerprint, COUNT(*) AS n
  FROM risk_referrals WHERE payment_fingerprint IS NOT NULL
  GROUP BY referrer_id, payment_fingerprint
),
base AS (
  SELECT referrer_id, COUNT(*) AS referrals, MIN(created_at) AS first_referral_at
  FROM risk_referrals GROUP BY referrer_id
)
SELECT b.referrer_id, b.referrals, d.devices, COALESCE(i.ips, 0) AS ips, b.first_referral_at,
       h.max_per_hour,
       d.max_same_device,
       COALESCE(p.max_same_payment, 0) AS max_same_payment
FROM base b
JOIN (SELECT referrer_id, MAX(n) AS max_per_hour FROM per_hour GROUP BY referrer_id) h
  ON h.referrer_id IS NOT DISTINCT FROM b.referrer_id
JOIN (SELECT referrer_id, COUNT(device_id) AS devices, MAX(n) AS max_same_device
      FROM per_device GROUP BY referrer_id) d
  ON d.referrer_id IS NOT DISTINCT FROM b.referrer_id
LEFT JOIN (SELECT referrer_id, COUNT(*) AS ips FROM per_ip GROUP BY referrer_id) i
  ON i.referrer_id IS NOT DISTINCT FROM b.referrer_id
LEFT JOIN (SELECT referrer_id, MAX(n) AS max_same_payment FROM per_payment GROUP BY referrer_id) p
  ON p.referrer_id IS NOT DISTINCT FROM b.referrer_id
