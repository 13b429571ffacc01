-- Per referral: how many referrals the same referrer submitted within an hour either side.
-- A burst of scripted submissions shows as a high count on every referral of the burst.
SELECT referral_id, referrer_id,
       COUNT(*) OVER (
         PARTITION BY referrer_id ORDER BY created_at
         RANGE BETWEEN INTERVAL '60 minutes' PRECEDING AND INTERVAL '60 minutes' FOLLOWING
       ) AS referrals_within_1h
FROM risk_referrals
