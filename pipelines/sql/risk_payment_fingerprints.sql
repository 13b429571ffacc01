SELECT payment_fingerprint,
       COUNT(*) AS referrals,
       COUNT(DISTINCT referrer_id) AS referrers,
       COUNT(DISTINCT device_id) AS devices
FROM risk_referrals
WHERE payment_fingerprint IS NOT NULL
GROUP BY payment_fingerprint
