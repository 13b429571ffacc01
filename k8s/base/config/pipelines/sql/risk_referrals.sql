-- Referrals created in the current window with what the fraud heuristics look at, plus
-- conversion timing from conversions in the window: first signup, qualified and won times, and
-- minutes from the referral to each; and the referee's /16 network (ip_network, see
-- docs/pipeline-authoring.md), which network features are keyed by.
SELECT r.referral_id, r.referrer_id, r.referee_id, r.partner_id, r.channel, r.region,
       r.created_at, r.ip, ip_network(r.ip, 16) AS ip_network_16, r.device_id, r.email_domain,
       r.payment_fingerprint,
       c.signup_at, c.qualified_at, c.opportunity_at, c.won_at, c.won_amount,
       (date_part('epoch', c.won_at) - date_part('epoch', r.created_at)) / 60.0 AS minutes_to_won,
       (date_part('epoch', c.signup_at) - date_part('epoch', r.created_at)) / 60.0 AS minutes_to_signup,
       (date_part('epoch', c.qualified_at) - date_part('epoch', r.created_at)) / 60.0 AS minutes_to_qualified
FROM referrals r
LEFT JOIN (
  SELECT referral_id,
         MIN(CASE WHEN stage = 'signup' THEN occurred_at END) AS signup_at,
         MIN(CASE WHEN stage = 'qualified' THEN occurred_at END) AS qualified_at,
         MIN(CASE WHEN stage = 'opportunity' THEN occurred_at END) AS opportunity_at,
         MIN(CASE WHEN stage = 'won' THEN occurred_at END) AS won_at,
         SUM(CASE WHEN stage = 'won' THEN amount END) AS won_amount
  FROM conversions
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND occurred_at >= $window_start AND occurred_at < $window_end
  GROUP BY referral_id
) c ON c.referral_id = r.referral_id
WHERE r.dt >= $window_start_day AND r.dt < $window_end_day
  AND r.created_at >= $window_start AND r.created_at < $window_end
