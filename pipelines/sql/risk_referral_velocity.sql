-- Per referral: how many referrals the same referrer submitted within an hour either side, and
-- how narrow the burst it belongs to is. A burst is a run of the referrer's referrals less than
-- an hour apart. Scripted bursts are narrow: few networks (/24), few devices, or (nearly) every
-- sign-up within minutes; an influencer's post brings a burst of different people on their own
-- networks and devices, signing up at human speed. burst_fast_signup_share is the share of the
-- burst's sign-ups that came within 30 minutes of the referral (NULL under three sign-ups).
-- Distinct counts from de-duplicated rows (see risk_devices.sql for why).
WITH timed AS (
  SELECT referral_id, referrer_id, created_at, ip_network(ip, 24) AS network, device_id,
         minutes_to_signup,
         COUNT(*) OVER (
           PARTITION BY referrer_id ORDER BY created_at
           RANGE BETWEEN INTERVAL '60 minutes' PRECEDING AND INTERVAL '60 minutes' FOLLOWING
         ) AS referrals_within_1h,
         CASE WHEN date_part('epoch', created_at) - date_part('epoch', LAG(created_at) OVER (
                     PARTITION BY referrer_id ORDER BY created_at)) < 3600
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
),
-- Only bursts of at least three referrals are described (smaller ones have no shape).
burst_sizes AS (
  SELECT referrer_id, burst, COUNT(*) AS burst_referrals,
         CASE WHEN COUNT(minutes_to_signup) >= 3
              THEN AVG(CASE WHEN minutes_to_signup IS NULL THEN NULL
                            WHEN minutes_to_signup < 30 THEN 1.0 ELSE 0.0 END) END
           AS burst_fast_signup_share
  FROM bursts GROUP BY referrer_id, burst HAVING COUNT(*) >= 3
),
burst_distinct AS (
  SELECT referrer_id, burst,
         SUM(CASE WHEN kind = 'network' THEN 1 ELSE 0 END) AS burst_networks,
         SUM(CASE WHEN kind = 'device' THEN 1 ELSE 0 END) AS burst_devices
  FROM (
    SELECT DISTINCT referrer_id, burst, kind, v FROM (
      SELECT referrer_id, burst, 'network' AS kind, network AS v FROM bursts
      UNION ALL SELECT referrer_id, burst, 'device', device_id FROM bursts
    ) WHERE v IS NOT NULL
  ) GROUP BY referrer_id, burst
)
SELECT b.referral_id, b.referrer_id, b.referrals_within_1h,
       COALESCE(s.burst_referrals, 1) AS burst_referrals,
       COALESCE(d.burst_networks, 0) AS burst_networks,
       COALESCE(d.burst_devices, 0) AS burst_devices,
       s.burst_fast_signup_share
FROM bursts b
LEFT JOIN burst_sizes s ON s.referrer_id = b.referrer_id AND s.burst = b.burst
LEFT JOIN burst_distinct d ON d.referrer_id = b.referrer_id AND d.burst = b.burst
