-- Experiments: per experiment and variant, unit-level outcomes of the units (referrers) assigned
-- before the window's end, counted over the window's referrals created after each unit's
-- assignment (conversions, payouts and flags of those referrals up to the window's end).
-- Units exposed to more than one variant of an experiment are left out of every variant and
-- counted in multi_exposed. Proportion metrics count units with at least one event; mean
-- metrics give the per-unit mean and sample variance (for Welch's test).
-- Publishes: experiments (see docs/experiments.md for the column contract).
WITH assignment AS (
  SELECT experiment_id, unit_id,
         MIN(assigned_at) AS assigned_at,
         MIN(variant) AS variant,
         MAX(variant) AS other_variant
  FROM experiment_assignments
  WHERE dt < $window_end_day AND assigned_at < $window_end
  GROUP BY experiment_id, unit_id
),
exposure AS (
  SELECT experiment_id,
         SUM(CASE WHEN variant <> other_variant THEN 1 ELSE 0 END) AS multi_exposed,
         MIN(assigned_at) AS first_assigned_at
  FROM assignment
  GROUP BY experiment_id
),
units AS (
  SELECT experiment_id, unit_id, variant, assigned_at
  FROM assignment
  WHERE variant = other_variant
),
unit_referrals AS (
  SELECT u.experiment_id, u.unit_id, r.referral_id
  FROM units u
  JOIN referrals r ON r.referrer_id = u.unit_id
  WHERE r.dt >= $window_start_day AND r.dt < $window_end_day
    AND r.created_at >= $window_start AND r.created_at < $window_end
    AND r.created_at >= u.assigned_at
),
referral_outcomes AS (
  SELECT referral_id,
         MAX(CASE WHEN stage IN ('qualified', 'opportunity', 'won') THEN 1 ELSE 0 END) AS qualified,
         MAX(CASE WHEN stage = 'won' THEN 1 ELSE 0 END) AS won,
         SUM(CASE WHEN stage = 'won' THEN COALESCE(amount, 0.0) ELSE 0.0 END) AS revenue
  FROM conversions
  WHERE dt >= $window_start_day AND dt < $window_end_day AND occurred_at < $window_end
  GROUP BY referral_id
),
referral_payouts AS (
  SELECT referral_id, SUM(amount) AS payout
  FROM payouts
  WHERE dt >= $window_start_day AND dt < $window_end_day AND created_at < $window_end
    AND recipient_type = 'referrer' AND status <> 'reversed'
  GROUP BY referral_id
),
referral_flags AS (
  SELECT referral_id, 1 AS flagged
  FROM fraud_flags
  WHERE dt >= $window_start_day AND dt < $window_end_day AND flagged_at < $window_end
  GROUP BY referral_id
),
unit_outcomes AS (
  SELECT u.experiment_id, u.unit_id, u.variant,
         COUNT(ur.referral_id) AS referrals,
         CAST(COALESCE(SUM(o.qualified), 0) AS DOUBLE) AS qualified,
         COALESCE(SUM(o.won), 0) AS won,
         COALESCE(SUM(o.revenue), 0.0) AS revenue,
         COALESCE(SUM(p.payout), 0.0) AS payout,
         COALESCE(SUM(f.flagged), 0) AS flagged
  FROM units u
  LEFT JOIN unit_referrals ur ON ur.experiment_id = u.experiment_id AND ur.unit_id = u.unit_id
  LEFT JOIN referral_outcomes o ON o.referral_id = ur.referral_id
  LEFT JOIN referral_payouts p ON p.referral_id = ur.referral_id
  LEFT JOIN referral_flags f ON f.referral_id = ur.referral_id
  GROUP BY u.experiment_id, u.unit_id, u.variant
)
SELECT o.experiment_id,
       o.variant,
       COUNT(*) AS units,
       SUM(CASE WHEN o.referrals > 0 THEN 1 ELSE 0 END) AS referred,
       SUM(CASE WHEN o.qualified > 0 THEN 1 ELSE 0 END) AS qualified,
       SUM(CASE WHEN o.won > 0 THEN 1 ELSE 0 END) AS won,
       SUM(CASE WHEN o.flagged > 0 THEN 1 ELSE 0 END) AS fraud_flagged,
       AVG(o.qualified) AS qualified_per_unit_mean,
       VAR_SAMP(o.qualified) AS qualified_per_unit_var,
       AVG(o.revenue) AS revenue_per_unit_mean,
       VAR_SAMP(o.revenue) AS revenue_per_unit_var,
       AVG(o.payout) AS payout_cost_per_unit_mean,
       VAR_SAMP(o.payout) AS payout_cost_per_unit_var,
       MAX(e.multi_exposed) AS multi_exposed,
       MIN(e.first_assigned_at) AS first_assigned_at
FROM unit_outcomes o
JOIN exposure e ON e.experiment_id = o.experiment_id
GROUP BY o.experiment_id, o.variant
ORDER BY o.experiment_id, o.variant
