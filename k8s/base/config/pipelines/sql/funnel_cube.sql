-- Funnel counts by period x channel x persona x region x partner tier.
--
-- Cohort semantics: a referral belongs to the period (current / previous window) in which it
-- was created; its conversions and payouts count when they happen before that period ends
-- (both windows are measured at the same maturity). Invites count in the period they were sent.
-- Each event table is scanned once over [previous_start, window_end).
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
steps AS (
  SELECT referral_id, period,
         MAX(CASE WHEN stage = 'signup' THEN 1 ELSE 0 END) AS signed_up,
         MAX(CASE WHEN stage = 'qualified' THEN 1 ELSE 0 END) AS qualified,
         MAX(CASE WHEN stage = 'opportunity' THEN 1 ELSE 0 END) AS opportunity,
         MAX(CASE WHEN stage = 'won' THEN 1 ELSE 0 END) AS won,
         SUM(CASE WHEN stage = 'won' THEN COALESCE(amount, 0.0) ELSE 0.0 END) AS revenue
  FROM (SELECT referral_id, stage, amount,
               CASE WHEN occurred_at >= $window_start THEN 'current' ELSE 'previous' END AS period
        FROM conversions
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND occurred_at >= $previous_start AND occurred_at < $window_end) c
  GROUP BY referral_id, period
),
paid AS (
  SELECT referral_id, period, SUM(amount) AS payout_cost
  FROM (SELECT referral_id, amount,
               CASE WHEN created_at >= $window_start THEN 'current' ELSE 'previous' END AS period
        FROM payouts
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND created_at >= $previous_start AND created_at < $window_end
          AND status <> 'reversed') p
  GROUP BY referral_id, period
),
referral_cube AS (
  SELECT c.period, c.channel, c.persona, c.region, c.partner_tier,
         CAST(0 AS BIGINT) AS invites,
         COUNT(*) AS referrals,
         CAST(SUM(COALESCE(s.signed_up, 0)) AS BIGINT) AS signups,
         CAST(SUM(COALESCE(s.qualified, 0)) AS BIGINT) AS qualified,
         CAST(SUM(COALESCE(s.opportunity, 0)) AS BIGINT) AS opportunities,
         CAST(SUM(COALESCE(s.won, 0)) AS BIGINT) AS won,
         SUM(COALESCE(s.revenue, 0.0)) AS revenue,
         SUM(COALESCE(p.payout_cost, 0.0)) AS payout_cost
  FROM cohort c
  LEFT JOIN steps s ON s.referral_id = c.referral_id AND s.period = c.period
  LEFT JOIN paid p ON p.referral_id = c.referral_id AND p.period = c.period
  GROUP BY c.period, c.channel, c.persona, c.region, c.partner_tier
),
invite_cube AS (
  SELECT period, channel, persona, region, partner_tier,
         COUNT(*) AS invites,
         CAST(0 AS BIGINT) AS referrals, CAST(0 AS BIGINT) AS signups,
         CAST(0 AS BIGINT) AS qualified, CAST(0 AS BIGINT) AS opportunities,
         CAST(0 AS BIGINT) AS won, CAST(0.0 AS DOUBLE) AS revenue, CAST(0.0 AS DOUBLE) AS payout_cost
  FROM (SELECT i.channel, i.persona, i.region,
               CASE WHEN i.partner_id IS NULL THEN 'none' ELSE COALESCE(t.tier, 'unknown') END AS partner_tier,
               CASE WHEN i.sent_at >= $window_start THEN 'current' ELSE 'previous' END AS period
        FROM invites i
        LEFT JOIN tiers t ON i.partner_id = t.partner_id
        WHERE i.dt >= $previous_start_day AND i.dt < $window_end_day
          AND i.sent_at >= $previous_start AND i.sent_at < $window_end) i
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
       SUM(payout_cost) AS payout_cost
FROM (SELECT * FROM referral_cube UNION ALL SELECT * FROM invite_cube) u
GROUP BY period, channel, persona, region, partner_tier
