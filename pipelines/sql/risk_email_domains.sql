SELECT email_domain,
       COUNT(*) AS referrals,
       COUNT(DISTINCT referrer_id) AS referrers,
       COUNT(DISTINCT device_id) AS devices,
       CAST(COUNT(signup_at) AS DOUBLE) / COUNT(*) AS signup_rate,
       CAST(COUNT(won_at) AS DOUBLE) / COUNT(*) AS won_rate
FROM risk_referrals
GROUP BY email_domain
