SELECT ip,
       COUNT(*) AS referrals,
       COUNT(DISTINCT referrer_id) AS referrers,
       COUNT(DISTINCT device_id) AS devices,
       COUNT(DISTINCT email_domain) AS email_domains,
       MIN(created_at) AS first_seen,
       MAX(created_at) AS last_seen
FROM risk_referrals
GROUP BY ip
