-- Per referral: how many referrals the same referrer submitted within an hour either side, and
-- how narrow the burst it belongs to is. Scripted bursts are narrow: few networks (/24), few
-- devices, or (nearly) every sign-up within minutes; an influencer's post brings a burst of
-- different people on their own networks and devices, signing up at human speed.
-- burst_fast_signup_share is the share of the burst's sign-ups that came within 30 minutes of
-- the referral (NULL under three sign-ups).
-- A referral with no other within the hour is a burst of its own; only the others are
-- numbered into bursts and described by window functions (no joins, no grouped aggregates).
WITH grouped AS (
  SELECT *,
         SUM(starts_burst) OVER (
           PARTITION BY referrer_id ORDER BY created_at, referral_id
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
         ) AS burst
  FROM risk_referral_bursts
  WHERE referrals_within_1h >= 2
)
SELECT referral_id, referrer_id, referrals_within_1h,
       CAST(1 AS BIGINT) AS burst_referrals,
       CAST(CASE WHEN network IS NULL THEN 0 ELSE 1 END AS BIGINT) AS burst_networks,
       CAST(CASE WHEN device_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS burst_devices,
       CAST(NULL AS DOUBLE) AS burst_fast_signup_share
FROM risk_referral_bursts
WHERE referrals_within_1h < 2
UNION ALL
SELECT referral_id, referrer_id, referrals_within_1h,
       COUNT(*) OVER (PARTITION BY referrer_id, burst) AS burst_referrals,
       COUNT(DISTINCT network) OVER (PARTITION BY referrer_id, burst) AS burst_networks,
       COUNT(DISTINCT device_id) OVER (PARTITION BY referrer_id, burst) AS burst_devices,
       CASE WHEN COUNT(minutes_to_signup) OVER (PARTITION BY referrer_id, burst) >= 3
            THEN AVG(CASE WHEN minutes_to_signup IS NULL THEN NULL
                          WHEN minutes_to_signup < 30 THEN 1.0 ELSE 0.0 END)
                   OVER (PARTITION BY referrer_id, burst)
       END AS burst_fast_signup_share
FROM grouped
