-- Per referrer and /16 network of its referees (pairs with at least three referrals in the
-- window): how much of the referrer's traffic the network carries, how many addresses and
-- devices it spans, how regular the gaps between these referrals are, and how many of them were
-- paid and went no further. A slow farm adds one referee every few days, each on a fresh device
-- and address, all inside one hosting network, collecting the payout and nothing more: no
-- per-hour count sees it, the shape over the window does. An office puts colleagues behind one
-- or two addresses, not many.
-- Distinct counts from de-duplicated rows (see risk_devices.sql for why). The pairs' referrals
-- come from risk_network_referrals.
WITH rows_in_pairs AS (SELECT * FROM risk_network_referrals),
pairs AS (
  SELECT referrer_id, ip_network_16, MAX(network_referrals) AS network_referrals,
         MAX(referrer_referrals) AS referrer_referrals
  FROM rows_in_pairs GROUP BY referrer_id, ip_network_16
),
distinct_counts AS (
  SELECT referrer_id, ip_network_16,
         SUM(CASE WHEN kind = 'address' THEN 1 ELSE 0 END) AS addresses,
         SUM(CASE WHEN kind = 'net24' THEN 1 ELSE 0 END) AS networks_24,
         SUM(CASE WHEN kind = 'device' THEN 1 ELSE 0 END) AS devices
  FROM (
    SELECT DISTINCT referrer_id, ip_network_16, kind, v FROM (
      SELECT referrer_id, ip_network_16, 'address' AS kind, ip AS v FROM rows_in_pairs
      UNION ALL SELECT referrer_id, ip_network_16, 'net24', net24 FROM rows_in_pairs
      UNION ALL SELECT referrer_id, ip_network_16, 'device', device_id FROM rows_in_pairs
    ) WHERE v IS NOT NULL
  ) GROUP BY referrer_id, ip_network_16
),
gaps AS (
  SELECT referrer_id, ip_network_16,
         (date_part('epoch', created_at)
          - date_part('epoch', LAG(created_at) OVER (
              PARTITION BY referrer_id, ip_network_16 ORDER BY created_at))) / 3600.0 AS gap_hours
  FROM rows_in_pairs
),
gap_stats AS (
  SELECT referrer_id, ip_network_16, AVG(gap_hours) AS mean_gap_hours,
         STDDEV_POP(gap_hours) AS sd_gap_hours
  FROM gaps WHERE gap_hours IS NOT NULL GROUP BY referrer_id, ip_network_16
),
paid AS (
  SELECT DISTINCT referral_id FROM payouts
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND created_at >= $window_start AND created_at < $window_end
    AND referral_id IN (SELECT referral_id FROM risk_network_referrals)
),
payout_depth AS (
  SELECT r.referrer_id, r.ip_network_16,
         SUM(CASE WHEN p.referral_id IS NOT NULL THEN 1 ELSE 0 END) AS paid_referrals,
         SUM(CASE WHEN p.referral_id IS NOT NULL AND r.opportunity_at IS NULL
                   AND r.won_at IS NULL THEN 1 ELSE 0 END) AS paid_stalled
  FROM rows_in_pairs r LEFT JOIN paid p ON p.referral_id = r.referral_id
  GROUP BY r.referrer_id, r.ip_network_16
)
SELECT p.referrer_id, p.ip_network_16, p.referrer_referrals,
       p.network_referrals,
       CAST(p.network_referrals AS DOUBLE) / p.referrer_referrals AS network_share,
       d.addresses AS network_addresses, d.networks_24 AS network_subnets_24,
       d.devices AS network_devices,
       g.mean_gap_hours,
       CASE WHEN g.mean_gap_hours > 0 THEN g.sd_gap_hours / g.mean_gap_hours END
         AS interarrival_cv,
       pd.paid_referrals,
       CASE WHEN pd.paid_referrals > 0
            THEN CAST(pd.paid_stalled AS DOUBLE) / pd.paid_referrals END AS paid_stalled_share
FROM pairs p
JOIN distinct_counts d ON d.referrer_id = p.referrer_id AND d.ip_network_16 = p.ip_network_16
JOIN payout_depth pd ON pd.referrer_id = p.referrer_id AND pd.ip_network_16 = p.ip_network_16
LEFT JOIN gap_stats g ON g.referrer_id = p.referrer_id AND g.ip_network_16 = p.ip_network_16
