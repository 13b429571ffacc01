-- Per referral: its referee's /24 network, device and sign-up speed, how many referrals the same
-- referrer submitted within an hour either side, and whether it starts a burst (a run of the
-- referrer's referrals less than an hour apart). One sort of the window's referrals.
SELECT referral_id, referrer_id, created_at, ip_network(ip, 24) AS network, device_id,
       minutes_to_signup,
       COUNT(*) OVER (
         PARTITION BY referrer_id ORDER BY created_at
         RANGE BETWEEN INTERVAL '60 minutes' PRECEDING AND INTERVAL '60 minutes' FOLLOWING
       ) AS referrals_within_1h,
       CASE WHEN date_part('epoch', created_at) - date_part('epoch', LAG(created_at) OVER (
                   PARTITION BY referrer_id ORDER BY created_at, referral_id)) < 3600
            THEN 0 ELSE 1 END AS starts_burst
FROM risk_referrals
