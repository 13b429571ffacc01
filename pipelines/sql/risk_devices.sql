SELECT device_id,
       COUNT(*) AS referrals,
       COUNT(DISTINCT referrer_id) AS referrers,
       COUNT(DISTINCT payment_fingerprint) AS payment_fingerprints,
       COUNT(DISTINCT ip) AS ips,
       MIN(created_at) AS first_seen,
       MAX(created_at) AS last_seen
FROM risk_referrals
GROUP BY device_id
