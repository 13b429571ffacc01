-- Data refresh: per dataset and period (current / previous window), row counts, newest event,
-- nulls in required non-nullable columns (contract v1) and rows whose key repeats.
-- Publishes: dataset_health (dataset, period, row_count, null_violations, duplicate_keys,
-- latest_event_at).
-- Rolled up from two per-day range stages, so a backfill scans the datasets once for all its
-- windows: dataset_days (rows, nulls, rows without a key, newest event) and repeated_key_days
-- (the rows of keys seen more than once). A window keeps the days a scan of it would read (both
-- the `dt` partition and the event day inside [previous_start, window_end)); a key's rows beyond
-- its first within a period are duplicates, and so is every row without a key.
WITH days AS (
  SELECT dataset, row_count, null_violations, null_keys, latest_event_at,
         CASE WHEN day >= CAST($window_start_day AS DATE) THEN 'current' ELSE 'previous' END AS period
  FROM dataset_days
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND day >= CAST($previous_start_day AS DATE) AND day < CAST($window_end_day AS DATE)
),
repeats AS (
  SELECT dataset, period, SUM(n - 1) AS repeated_rows
  FROM (SELECT dataset, k, SUM(n) AS n,
               CASE WHEN day >= CAST($window_start_day AS DATE) THEN 'current' ELSE 'previous' END AS period
        FROM repeated_key_days
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND day >= CAST($previous_start_day AS DATE) AND day < CAST($window_end_day AS DATE)
        GROUP BY dataset, k,
                 CASE WHEN day >= CAST($window_start_day AS DATE) THEN 'current' ELSE 'previous' END) per_key
  WHERE n > 1
  GROUP BY dataset, period
)
SELECT d.dataset, d.period, d.row_count, d.null_violations,
       d.null_keys + COALESCE(r.repeated_rows, 0) AS duplicate_keys,
       d.latest_event_at
FROM (SELECT dataset, period, CAST(SUM(row_count) AS BIGINT) AS row_count,
             CAST(SUM(null_violations) AS BIGINT) AS null_violations,
             CAST(SUM(null_keys) AS BIGINT) AS null_keys, MAX(latest_event_at) AS latest_event_at
      FROM days GROUP BY dataset, period) d
LEFT JOIN repeats r ON r.dataset = d.dataset AND r.period = d.period

UNION ALL
-- Dimension table: every row, reported as the current period.
SELECT 'partners' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT 'current' AS period, partner_id AS k, COUNT(*) AS n,
             SUM(CASE WHEN partner_id IS NULL OR name IS NULL OR tier IS NULL OR region IS NULL
                 OR joined_at IS NULL OR status IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX(joined_at) AS latest
      FROM partners
      GROUP BY partner_id) g
GROUP BY period
