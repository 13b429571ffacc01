-- Data refresh: per dataset and period (current / previous window), row counts, newest event,
-- nulls in required non-nullable columns (contract v1) and rows whose key repeats.
-- Publishes: dataset_health (dataset, period, row_count, null_violations, duplicate_keys,
-- latest_event_at).
-- Each dataset is scanned once and grouped by (period, key): row counts, nulls and duplicates
-- come from the per-key groups. A hash aggregate keeps its memory accounted and can spill,
-- unlike COUNT(DISTINCT), whose hash set grows with the window unchecked.
SELECT 'invites' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, invite_id AS k, COUNT(*) AS n,
             SUM(CASE WHEN invite_id IS NULL OR referrer_id IS NULL OR channel IS NULL
                 OR region IS NULL OR persona IS NULL
                 OR sent_at IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX(sent_at) AS latest
      FROM (SELECT invite_id, referrer_id, channel, region, persona, sent_at,
             CASE WHEN sent_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM invites
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND sent_at >= $previous_start AND sent_at < $window_end) t
      GROUP BY period, invite_id) g
GROUP BY period

UNION ALL
SELECT 'referrals' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, referral_id AS k, COUNT(*) AS n,
             SUM(CASE WHEN referral_id IS NULL OR referrer_id IS NULL OR referee_id IS NULL
                 OR channel IS NULL OR region IS NULL OR persona IS NULL OR created_at IS NULL
                 OR ip IS NULL OR device_id IS NULL
                 OR email_domain IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX(created_at) AS latest
      FROM (SELECT referral_id, referrer_id, referee_id, channel, region, persona, created_at, ip,
             device_id, email_domain,
             CASE WHEN created_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM referrals
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND created_at >= $previous_start AND created_at < $window_end) t
      GROUP BY period, referral_id) g
GROUP BY period

UNION ALL
SELECT 'conversions' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, concat(referral_id, '/', stage) AS k, COUNT(*) AS n,
             SUM(CASE WHEN referral_id IS NULL OR stage IS NULL OR occurred_at IS NULL
                 OR (stage = 'won' AND amount IS NULL) THEN 1 ELSE 0 END) AS nulls,
             MAX(occurred_at) AS latest
      FROM (SELECT referral_id, stage, occurred_at, amount,
             CASE WHEN occurred_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM conversions
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND occurred_at >= $previous_start AND occurred_at < $window_end) t
      GROUP BY period, concat(referral_id, '/', stage)) g
GROUP BY period

UNION ALL
SELECT 'payouts' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, payout_id AS k, COUNT(*) AS n,
             SUM(CASE WHEN payout_id IS NULL OR referral_id IS NULL OR recipient_id IS NULL
                 OR recipient_type IS NULL OR amount IS NULL OR currency IS NULL
                 OR status IS NULL OR created_at IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX(created_at) AS latest
      FROM (SELECT payout_id, referral_id, recipient_id, recipient_type, amount, currency, status, created_at,
             CASE WHEN created_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM payouts
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND created_at >= $previous_start AND created_at < $window_end) t
      GROUP BY period, payout_id) g
GROUP BY period

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

UNION ALL
SELECT 'partner_activity' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, concat(partner_id, '/', CAST(activity_date AS VARCHAR)) AS k, COUNT(*) AS n,
             SUM(CASE WHEN partner_id IS NULL OR activity_date IS NULL OR logins IS NULL
                 OR content_shares IS NULL OR mentions IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX(CAST(activity_date AS TIMESTAMP)) AS latest
      FROM (SELECT partner_id, activity_date, logins, content_shares, mentions,
             CASE WHEN dt >= $window_start_day THEN 'current' ELSE 'previous' END AS period
      FROM partner_activity
      WHERE dt >= $previous_start_day AND dt < $window_end_day) t
      GROUP BY period, concat(partner_id, '/', CAST(activity_date AS VARCHAR))) g
GROUP BY period

UNION ALL
SELECT 'nps_responses' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, response_id AS k, COUNT(*) AS n,
             SUM(CASE WHEN response_id IS NULL OR respondent_type IS NULL
                 OR respondent_id IS NULL OR region IS NULL OR score IS NULL
                 OR responded_at IS NULL OR score < 0 OR score > 10 THEN 1 ELSE 0 END) AS nulls,
             MAX(responded_at) AS latest
      FROM (SELECT response_id, respondent_type, respondent_id, region, score, responded_at,
             CASE WHEN responded_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM nps_responses
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND responded_at >= $previous_start AND responded_at < $window_end) t
      GROUP BY period, response_id) g
GROUP BY period

UNION ALL
-- Fraud flags have no key in the contract (a referral may be flagged by several sources).
SELECT 'fraud_flags' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, concat(referral_id, '/', source, '/', reason) AS k, COUNT(*) AS n,
             SUM(CASE WHEN referral_id IS NULL OR source IS NULL OR reason IS NULL
                 OR flagged_at IS NULL  THEN 1 ELSE 0 END) AS nulls,
             MAX(flagged_at) AS latest
      FROM (SELECT referral_id, source, reason, flagged_at,
             CASE WHEN flagged_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM fraud_flags
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND flagged_at >= $previous_start AND flagged_at < $window_end) t
      GROUP BY period, concat(referral_id, '/', source, '/', reason)) g
GROUP BY period

UNION ALL
SELECT 'compliance_events' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, event_id AS k, COUNT(*) AS n,
             SUM(CASE WHEN event_id IS NULL OR subject_type IS NULL OR subject_id IS NULL
                 OR check_name IS NULL OR status IS NULL
                 OR "at" IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX("at") AS latest
      FROM (SELECT event_id, subject_type, subject_id, check_name, status, "at",
             CASE WHEN "at" >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM compliance_events
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND "at" >= $previous_start AND "at" < $window_end) t
      GROUP BY period, event_id) g
GROUP BY period

UNION ALL
SELECT 'experiment_assignments' AS dataset, period, SUM(n) AS row_count, SUM(nulls) AS null_violations,
       SUM(CASE WHEN k IS NULL THEN n ELSE n - 1 END) AS duplicate_keys,
       MAX(latest) AS latest_event_at
FROM (SELECT period, concat(experiment_id, '/', unit_id, '/', variant) AS k, COUNT(*) AS n,
             SUM(CASE WHEN experiment_id IS NULL OR unit_id IS NULL OR variant IS NULL
                 OR assigned_at IS NULL THEN 1 ELSE 0 END) AS nulls,
             MAX(assigned_at) AS latest
      FROM (SELECT experiment_id, unit_id, variant, assigned_at,
             CASE WHEN assigned_at >= $window_start THEN 'current' ELSE 'previous' END AS period
      FROM experiment_assignments
      WHERE dt >= $previous_start_day AND dt < $window_end_day
        AND assigned_at >= $previous_start AND assigned_at < $window_end) t
      GROUP BY period, concat(experiment_id, '/', unit_id, '/', variant)) g
GROUP BY period
