-- The referrals of each referrer x /16 network pair with at least three referrals in the
-- window (the only pairs a farm rule can judge), with the pair's and the referrer's counts.
-- A small table: the network features (risk_referrer_networks) are computed from it.
WITH pairs AS (
  SELECT referrer_id, ip_network_16, COUNT(*) AS network_referrals
  FROM risk_referrals WHERE referrer_id IS NOT NULL AND ip_network_16 IS NOT NULL
  GROUP BY referrer_id, ip_network_16 HAVING COUNT(*) >= 3
)
SELECT r.referral_id, r.referrer_id, r.ip_network_16, r.ip, ip_network(r.ip, 24) AS net24,
       r.device_id, r.created_at, r.opportunity_at, r.won_at, p.network_referrals,
       t.referrals AS referrer_referrals
FROM pairs p
JOIN risk_referrals r ON r.referrer_id = p.referrer_id AND r.ip_network_16 = p.ip_network_16
JOIN risk_referrers t ON t.referrer_id = p.referrer_id
