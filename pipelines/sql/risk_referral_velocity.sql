-- Per referral: how many referrals the same referrer submitted within an hour either side, and
-- how narrow the burst it belongs to is. A burst is a run of the referrer's referrals less than
-- an hour apart. Scripted bursts are narrow: few networks (/24), few devices, or (nearly) every
-- sign-up within minutes; an influencer's post brings a burst of different people on their own
-- networks and devices, signing up at human speed. burst_fast_signup_share is the share of the
-- burst's sign-ups that came within 30 minutes of the referral (NULL under three sign-ups).
-- Window functions only (no joins, no grouped aggregates): two sorts, the least memory a
-- memory limit has to share out.
WITH timed AS (
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
),
bursts AS (
  SELECT *,
         SUM(starts_burst) OVER (
           PARTITION BY referrer_id ORDER BY created_at, referral_id
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
         ) AS burst
  FROM timed
)
SELECT referral_id, referrer_id, referrals_within_1h,
       COUNT(*) OVER (PARTITION BY referrer_id, burst) AS burst_referrals,
       COUNT(DISTINCT network) OVER (PARTITION BY referrer_id, burst) AS burst_networks,
       COUNT(DISTINCT device_id) OVER (PARTITION BY referrer_id, burst) AS burst_devices,
       CASE WHEN COUNT(minutes_to_signup) OVER (PARTITION BY referrer_id, burst) >= 3
            THEN AVG(CASE WHEN minutes_to_signup IS NULL THEN NULL
                          WHEN minutes_to_signup < 30 THEN 1.0 ELSE 0.0 END)
                   OVER (PARTITION BY referrer_id, burst)
       END AS burst_fast_signup_share
FROM bursts
