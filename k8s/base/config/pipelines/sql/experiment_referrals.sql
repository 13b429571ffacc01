-- The window's referrals with their outcomes, for the experiments: per referral id, whether it
-- was created in the window (is_referral) with its referrer and creation time, and its
-- conversions, payouts and flags up to the window's end. The event streams are attached by
-- grouping on referral_id (one spillable aggregate instead of three joins); rows without a
-- referral id are left out (a unit's referrals were always counted by id). A stage of its own so
-- that, under a memory limit, its aggregate and the experiments' joins do not share the pool.
SELECT referral_id,
       MAX(is_referral) AS is_referral,
       MAX(referrer_id) AS referrer_id,
       MAX(created_at) AS created_at,
       MAX(qualified) AS qualified,
       MAX(won) AS won,
       SUM(revenue) AS revenue,
       SUM(payout) AS payout,
       MAX(flagged) AS flagged
FROM (
  SELECT referral_id, 1 AS is_referral, referrer_id, created_at,
         0 AS qualified, 0 AS won, CAST(0 AS DECIMAL(18, 2)) AS revenue, CAST(0 AS DECIMAL(18, 2)) AS payout, 0 AS flagged
  FROM referrals
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND created_at >= $window_start AND created_at < $window_end AND referral_id IS NOT NULL
  UNION ALL
  SELECT referral_id, 0, NULL, NULL,
         CASE WHEN stage IN ('qualified', 'opportunity', 'won') THEN 1 ELSE 0 END,
         CASE WHEN stage = 'won' THEN 1 ELSE 0 END,
         CASE WHEN stage = 'won' THEN COALESCE(amount, 0) ELSE 0 END,
         CAST(0 AS DECIMAL(18, 2)), 0
  FROM conversions
  WHERE dt >= $window_start_day AND dt < $window_end_day AND occurred_at < $window_end
    AND referral_id IS NOT NULL
  UNION ALL
  SELECT referral_id, 0, NULL, NULL, 0, 0, CAST(0 AS DECIMAL(18, 2)), amount, 0
  FROM payouts
  WHERE dt >= $window_start_day AND dt < $window_end_day AND created_at < $window_end
    AND recipient_type = 'referrer' AND status <> 'reversed' AND referral_id IS NOT NULL
  UNION ALL
  SELECT referral_id, 0, NULL, NULL, 0, 0, CAST(0 AS DECIMAL(18, 2)), CAST(0 AS DECIMAL(18, 2)), 1
  FROM fraud_flags
  WHERE dt >= $window_start_day AND dt < $window_end_day AND flagged_at < $window_end
    AND referral_id IS NOT NULL
) events
GROUP BY referral_id
