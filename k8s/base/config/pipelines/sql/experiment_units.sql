-- Experiment units: one row per experiment and unit (referrer) assigned before the window's
-- end, with its first assignment time and the lowest and highest variant it saw (they differ
-- for a unit exposed to more than one variant). A stage of its own so that the experiments
-- stage reads it from memory instead of aggregating the assignments once per use.
SELECT experiment_id, unit_id,
       MIN(assigned_at) AS assigned_at,
       MIN(variant) AS variant,
       MAX(variant) AS other_variant
FROM experiment_assignments
WHERE dt < $window_end_day AND assigned_at < $window_end
GROUP BY experiment_id, unit_id
