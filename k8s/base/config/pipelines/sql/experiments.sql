-- Experiments: per experiment and variant, unit-level outcomes of the units (referrers) assigned
-- before the window's end, counted over the window's referrals created after each unit's
-- assignment (conversions, payouts and flags of those referrals up to the window's end).
-- Units exposed to more than one variant of an experiment are left out of every variant and
-- counted in multi_exposed. Proportion metrics count units with at least one event; mean
-- metrics give the per-unit mean and sample variance (for Welch's test), computed from exact
-- integer and decimal sums so the result does not depend on how the rows were split.
-- Publishes: experiments (see docs/experiments.md for the column contract).
WITH assignment AS (
  SELECT experiment_id, unit_id, assigned_at, variant, other_variant FROM experiment_units
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
  SELECT u.experiment_id, u.unit_id, w.referral_id, w.qualified, w.won, w.revenue, w.payout,
         w.flagged
  FROM units u
  JOIN experiment_referrals w ON w.referrer_id = u.unit_id
  WHERE w.is_referral = 1 AND w.created_at >= u.assigned_at
),
-- Every unit with its referrals' outcomes; units without referrals count with zeros (a
-- grouped union instead of a left join, for the same reason as above).
unit_outcomes AS (
  SELECT experiment_id, unit_id, MAX(variant) AS variant,
         SUM(referrals) AS referrals,
         CAST(SUM(qualified) AS BIGINT) AS qualified,
         SUM(won) AS won,
         SUM(revenue) AS revenue,
         SUM(payout) AS payout,
         SUM(flagged) AS flagged
  FROM (
    SELECT experiment_id, unit_id, variant, 0 AS referrals, 0 AS qualified, 0 AS won,
           CAST(0 AS DECIMAL(18, 2)) AS revenue, CAST(0 AS DECIMAL(18, 2)) AS payout, 0 AS flagged
    FROM units
    UNION ALL
    SELECT experiment_id, unit_id, NULL, 1, qualified, won, revenue, payout, flagged
    FROM unit_referrals
  ) unit_rows
  GROUP BY experiment_id, unit_id
)
SELECT o.experiment_id,
       o.variant,
       COUNT(*) AS units,
       SUM(CASE WHEN o.referrals > 0 THEN 1 ELSE 0 END) AS referred,
       SUM(CASE WHEN o.qualified > 0 THEN 1 ELSE 0 END) AS qualified,
       SUM(CASE WHEN o.won > 0 THEN 1 ELSE 0 END) AS won,
       SUM(CASE WHEN o.flagged > 0 THEN 1 ELSE 0 END) AS fraud_flagged,
       -- Means and sample variances from exact sums (integers and decimals): the same bits
       -- in any summation order, unlike a floating-point AVG or VAR_SAMP.
       CAST(SUM(o.qualified) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE) AS qualified_per_unit_mean,
       CAST(COUNT(*) * SUM(o.qualified * o.qualified) - SUM(o.qualified) * SUM(o.qualified) AS DOUBLE)
         / NULLIF(CAST(COUNT(*) AS DOUBLE) * CAST(COUNT(*) - 1 AS DOUBLE), 0.0) AS qualified_per_unit_var,
       CAST(SUM(o.revenue) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE) AS revenue_per_unit_mean,
       CAST(COUNT(*) * SUM(o.revenue * o.revenue) - SUM(o.revenue) * SUM(o.revenue) AS DOUBLE)
         / NULLIF(CAST(COUNT(*) AS DOUBLE) * CAST(COUNT(*) - 1 AS DOUBLE), 0.0) AS revenue_per_unit_var,
       CAST(SUM(o.payout) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE) AS payout_cost_per_unit_mean,
       CAST(COUNT(*) * SUM(o.payout * o.payout) - SUM(o.payout) * SUM(o.payout) AS DOUBLE)
         / NULLIF(CAST(COUNT(*) AS DOUBLE) * CAST(COUNT(*) - 1 AS DOUBLE), 0.0) AS payout_cost_per_unit_var,
       MAX(e.multi_exposed) AS multi_exposed,
       MIN(e.first_assigned_at) AS first_assigned_at
FROM unit_outcomes o
JOIN exposure e ON e.experiment_id = o.experiment_id
GROUP BY o.experiment_id, o.variant
ORDER BY o.experiment_id, o.variant
