-- Program KPIs per period: NPS by respondent type (% promoters - % detractors), fraud flags and
-- flag rate (distinct flagged referrals / referrals created), share of payout dollars held.
-- Publishes: kpis (metric, period, value).
WITH nps AS (
  SELECT respondent_type, score,
         CASE WHEN responded_at >= $window_start THEN 'current' ELSE 'previous' END AS period
  FROM nps_responses
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND responded_at >= $previous_start AND responded_at < $window_end
),
flags AS (
  SELECT period, COUNT(DISTINCT referral_id) AS flagged
  FROM (SELECT referral_id,
               CASE WHEN flagged_at >= $window_start THEN 'current' ELSE 'previous' END AS period
        FROM fraud_flags
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND flagged_at >= $previous_start AND flagged_at < $window_end) f
  GROUP BY period
),
referral_totals AS (
  SELECT period, SUM(referrals) AS referrals FROM funnel_cube GROUP BY period
),
payout_status AS (
  SELECT period,
         SUM(CASE WHEN status = 'held' THEN amount ELSE 0 END) AS held,
         SUM(amount) AS total
  FROM (SELECT status, amount,
               CASE WHEN created_at >= $window_start THEN 'current' ELSE 'previous' END AS period
        FROM payouts
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND created_at >= $previous_start AND created_at < $window_end) p
  GROUP BY period
)
SELECT concat(respondent_type, '_nps') AS metric, period,
       100.0 * (SUM(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - SUM(CASE WHEN score <= 6 THEN 1 ELSE 0 END))
         / COUNT(*) AS value
FROM nps GROUP BY respondent_type, period
UNION ALL
SELECT 'fraud_flags', period, CAST(flagged AS DOUBLE) FROM flags
UNION ALL
SELECT 'fraud_flag_rate', r.period,
       CAST(COALESCE(f.flagged, 0) AS DOUBLE) / CAST(NULLIF(r.referrals, 0) AS DOUBLE)
FROM referral_totals r LEFT JOIN flags f ON f.period = r.period
UNION ALL
SELECT 'payout_held_share', period, CAST(held AS DOUBLE) / NULLIF(CAST(total AS DOUBLE), 0.0)
FROM payout_status
