-- Per referral: how many referrals the same referrer submitted within an hour either side, and
-- how narrow the burst it belongs to is. Scripted bursts are narrow: few networks (/24), few
-- devices, or (nearly) every sign-up within minutes; an influencer's post brings a burst of
-- different people on their own networks and devices, signing up at human speed.
-- burst_fast_signup_share is the share of the burst's sign-ups that came within 30 minutes of
-- the referral (NULL under three sign-ups).
-- A referral with no other within the hour is a burst of its own; only the others are
-- numbered into bursts (a running sum), their first network and device in each burst marked
-- (ROW_NUMBER), and each burst described by a grouped aggregate joined back to its referrals.
-- Windows partitioned without an order would hold one result array per burst outside the
-- memory pool; sorts, aggregates and joins spill under a memory limit.
WITH grouped AS (
  SELECT *,
         SUM(starts_burst) OVER (
           PARTITION BY referrer_id ORDER BY created_at, referral_id
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
         ) AS burst
  FROM risk_referral_bursts
  WHERE referrals_within_1h >= 2
),
marked AS (
  SELECT referral_id, referrer_id, referrals_within_1h, burst, minutes_to_signup,
         CASE WHEN network IS NOT NULL AND ROW_NUMBER() OVER (
                PARTITION BY referrer_id, burst, network ORDER BY referral_id) = 1
              THEN 1 ELSE 0 END AS first_of_network,
         CASE WHEN device_id IS NOT NULL AND ROW_NUMBER() OVER (
                PARTITION BY referrer_id, burst, device_id ORDER BY referral_id) = 1
              THEN 1 ELSE 0 END AS first_of_device
  FROM grouped
),
bursts AS (
  SELECT referrer_id, burst,
         COUNT(*) AS burst_referrals,
         CAST(SUM(first_of_network) AS BIGINT) AS burst_networks,
         CAST(SUM(first_of_device) AS BIGINT) AS burst_devices,
         CASE WHEN COUNT(minutes_to_signup) >= 3
              THEN AVG(CASE WHEN minutes_to_signup IS NULL THEN NULL
                            WHEN minutes_to_signup < 30 THEN 1.0 ELSE 0.0 END)
         END AS burst_fast_signup_share
  FROM marked
  GROUP BY referrer_id, burst
)
SELECT referral_id, referrer_id, referrals_within_1h,
       CAST(1 AS BIGINT) AS burst_referrals,
       CAST(CASE WHEN network IS NULL THEN 0 ELSE 1 END AS BIGINT) AS burst_networks,
       CAST(CASE WHEN device_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS burst_devices,
       CAST(NULL AS DOUBLE) AS burst_fast_signup_share
FROM risk_referral_bursts
WHERE referrals_within_1h < 2
UNION ALL
SELECT m.referral_id, m.referrer_id, m.referrals_within_1h,
       b.burst_referrals, b.burst_networks, b.burst_devices, b.burst_fast_signup_share
FROM bursts b
JOIN marked m ON m.referrer_id = b.referrer_id AND m.burst = b.burst
