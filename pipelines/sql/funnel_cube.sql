-- Funnel counts by period x channel x persona x region x partner tier.
--
-- Cohort semantics: a referral belongs to the period (current / previous window) in which it
-- was created; its conversions and payouts count when they happen before that period ends
-- (both windows are measured at the same maturity). Invites count in the period they were sent:
-- they are rolled up from the per-day `invite_days` stage (a backfill computes that once).
-- Each other event table is scanned once over [previous_start, window_end). `flagged` counts the
-- cohort's referrals with a fraud flag (fraud_flags) raised before the period ends, like outcomes.
WITH tiers AS (
  SELECT partner_id, tier FROM partners
),
cohort AS (
  SELECT r.referral_id, r.channel, r.persona, r.region,
         CASE WHEN r.partner_id IS NULL THEN 'none' ELSE COALESCE(t.tier, 'unknown') END AS partner_tier,
         CASE WHEN r.created_at >= $window_start THEN 'current' ELSE 'previous' END AS period
  FROM referrals r
  LEFT JOIN tiers t ON r.partner_id = t.partner_id
  WHERE r.dt >= $previous_start_day AND r.dt < $window_end_day
    AND r.created_at >= $previous_start AND r.created_at < $window_end
),
-- A referral's conversions and payouts are attached by grouping the three event streams on
-- (referral_id, period) instead of joining them: a grouped aggregate can spill to disk under
-- --memory-limit, a hash join's build side cannot (DataFusion 55). Referrals without an id
-- (data_refresh reports them) count as referrals with no outcomes; a duplicated id counts once.
referral_events AS (
  SELECT referral_id, period, 1 AS is_referral, channel, persona, region, partner_tier,
         0 AS signed_up, 0 AS qualified, 0 AS opportunity, 0 AS won,
         CAST(0 AS DECIMAL(18, 2)) AS revenue, CAST(0 AS DECIMAL(18, 2)) AS payout_cost, 0 AS flagged
  FROM cohort
  WHERE referral_id IS NOT NULL
  UNION ALL
  SELECT referral_id,
         CASE WHEN occurred_at >= $window_start THEN 'current' ELSE 'previous' END AS period,
         0, NULL, NULL, NULL, NULL,
         CASE WHEN stage = 'signup' THEN 1 ELSE 0 END,
         CASE WHEN stage = 'qualified' THEN 1 ELSE 0 END,
         CASE WHEN stage = 'opportunity' THEN 1 ELSE 0 END,
         CASE WHEN stage = 'won' THEN 1 ELSE 0 END,
         CASE WHEN stage = 'won' THEN COALESCE(amount, 0) ELSE 0 END,
         CAST(0 AS DECIMAL(18, 2)), 0
  FROM conversions
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND occurred_at >= $previous_start AND occurred_at < $window_end
    AND referral_id IS NOT NULL
  UNION ALL
  SELECT referral_id,
         CASE WHEN created_at >= $window_start THEN 'current' ELSE 'previous' END AS period,
         0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, CAST(0 AS DECIMAL(18, 2)), amount, 0
  FROM payouts
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND created_at >= $previous_start AND created_at < $window_end
    AND status <> 'reversed' AND referral_id IS NOT NULL
  UNION ALL
  SELECT referral_id,
         CASE WHEN flagged_at >= $window_start THEN 'current' ELSE 'previous' END AS period,
         0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, CAST(0 AS DECIMAL(18, 2)), CAST(0 AS DECIMAL(18, 2)), 1
  FROM fraud_flags
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND flagged_at >= $previous_start AND flagged_at < $window_end
    AND referral_id IS NOT NULL
),
per_referral AS (
  SELECT referral_id, period, MAX(is_referral) AS is_referral,
         MAX(channel) AS channel, MAX(persona) AS persona, MAX(region) AS region,
         MAX(partner_tier) AS partner_tier,
         MAX(signed_up) AS signed_up, MAX(qualified) AS qualified,
         MAX(opportunity) AS opportunity, MAX(won) AS won,
         SUM(revenue) AS revenue, SUM(payout_cost) AS payout_cost, MAX(flagged) AS flagged
  FROM referral_events
  GROUP BY referral_id, period
),
referral_cube AS (
  SELECT period, channel, persona, region, partner_tier,
         CAST(0 AS BIGINT) AS invites,
         COUNT(*) AS referrals,
         CAST(SUM(signed_up) AS BIGINT) AS signups,
         CAST(SUM(qualified) AS BIGINT) AS qualified,
         CAST(SUM(opportunity) AS BIGINT) AS opportunities,
         CAST(SUM(won) AS BIGINT) AS won,
         SUM(revenue) AS revenue,
         SUM(payout_cost) AS payout_cost,
         CAST(SUM(flagged) AS BIGINT) AS flagged
  FROM per_referral
  WHERE is_referral = 1
  GROUP BY period, channel, persona, region, partner_tier
  UNION ALL
  SELECT period, channel, persona, region, partner_tier, CAST(0 AS BIGINT), COUNT(*),
         CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT),
         CAST(0 AS DECIMAL(18, 2)), CAST(0 AS DECIMAL(18, 2)), CAST(0 AS BIGINT)
  FROM cohort
  WHERE referral_id IS NULL
  GROUP BY period, channel, persona, region, partner_tier
),
invite_cube AS (
  SELECT period, channel, persona, region, partner_tier,
         CAST(SUM(invites) AS BIGINT) AS invites,
         CAST(0 AS BIGINT) AS referrals, CAST(0 AS BIGINT) AS signups,
         CAST(0 AS BIGINT) AS qualified, CAST(0 AS BIGINT) AS opportunities,
         CAST(0 AS BIGINT) AS won, CAST(0 AS DECIMAL(18, 2)) AS revenue, CAST(0 AS DECIMAL(18, 2)) AS payout_cost,
         CAST(0 AS BIGINT) AS flagged
  FROM (SELECT channel, persona, region, partner_tier, invites,
               CASE WHEN day >= CAST($window_start_day AS DATE) THEN 'current' ELSE 'previous' END AS period
        FROM invite_days
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND day >= CAST($previous_start_day AS DATE) AND day < CAST($window_end_day AS DATE)) i
  GROUP BY period, channel, persona, region, partner_tier
)
SELECT period, channel, persona, region, partner_tier,
       CAST(SUM(invites) AS BIGINT) AS invites,
       CAST(SUM(referrals) AS BIGINT) AS referrals,
       CAST(SUM(signups) AS BIGINT) AS signups,
       CAST(SUM(qualified) AS BIGINT) AS qualified,
       CAST(SUM(opportunities) AS BIGINT) AS opportunities,
       CAST(SUM(won) AS BIGINT) AS won,
       SUM(revenue) AS revenue,
       SUM(payout_cost) AS payout_cost,
       CAST(SUM(flagged) AS BIGINT) AS flagged
FROM (SELECT * FROM referral_cube UNION ALL SELECT * FROM invite_cube) u
GROUP BY period, channel, persona, region, partner_tier
