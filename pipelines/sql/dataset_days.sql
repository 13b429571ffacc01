-- Data refresh, per day (scope: range): for every dataset, rows, rows breaking the contract's
-- non-null columns (and NPS scores outside 0-10), rows without a key and the newest event, per
-- `dt` partition and event day over the run's days. The window's data_refresh rolls its periods
-- up from these rows; a backfill computes them once for all its windows. Event days are UTC
-- days, whatever time zone a file's timestamps carry (the cast to UTC keeps the instant).
SELECT 'invites' AS dataset, dt, CAST(arrow_cast(sent_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN invite_id IS NULL OR referrer_id IS NULL OR channel IS NULL
                 OR region IS NULL OR persona IS NULL OR sent_at IS NULL
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN invite_id IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(sent_at) AS latest_event_at
FROM invites
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND sent_at >= $range_start AND sent_at < $range_end
GROUP BY dt, CAST(arrow_cast(sent_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'referrals' AS dataset, dt, CAST(arrow_cast(created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN referral_id IS NULL OR referrer_id IS NULL
                 OR referee_id IS NULL OR channel IS NULL OR region IS NULL
                 OR persona IS NULL OR created_at IS NULL OR ip IS NULL
                 OR device_id IS NULL OR email_domain IS NULL
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN referral_id IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(created_at) AS latest_event_at
FROM referrals
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND created_at >= $range_start AND created_at < $range_end
GROUP BY dt, CAST(arrow_cast(created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'conversions' AS dataset, dt, CAST(arrow_cast(occurred_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN referral_id IS NULL OR stage IS NULL OR occurred_at IS NULL
                 OR (stage = 'won' AND amount IS NULL)
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN concat(referral_id, '/', stage) IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(occurred_at) AS latest_event_at
FROM conversions
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND occurred_at >= $range_start AND occurred_at < $range_end
GROUP BY dt, CAST(arrow_cast(occurred_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'payouts' AS dataset, dt, CAST(arrow_cast(created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN payout_id IS NULL OR referral_id IS NULL
                 OR recipient_id IS NULL OR recipient_type IS NULL
                 OR amount IS NULL OR currency IS NULL OR status IS NULL
                 OR created_at IS NULL
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN payout_id IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(created_at) AS latest_event_at
FROM payouts
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND created_at >= $range_start AND created_at < $range_end
GROUP BY dt, CAST(arrow_cast(created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'partner_activity' AS dataset, dt, CAST(dt AS DATE) AS day, row_count, null_violations,
       null_keys, latest_event_at
FROM (SELECT dt, COUNT(*) AS row_count,
             SUM(CASE WHEN partner_id IS NULL OR activity_date IS NULL
                       OR logins IS NULL OR content_shares IS NULL
                       OR mentions IS NULL
                 THEN 1 ELSE 0 END) AS null_violations,
             SUM(CASE WHEN concat(partner_id, '/', CAST(activity_date AS VARCHAR)) IS NULL THEN 1 ELSE 0 END) AS null_keys,
             MAX(CAST(activity_date AS TIMESTAMP)) AS latest_event_at
      FROM partner_activity
      WHERE dt >= $range_start_day AND dt < $range_end_day
      GROUP BY dt) by_partition

UNION ALL
SELECT 'nps_responses' AS dataset, dt, CAST(arrow_cast(responded_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN response_id IS NULL OR respondent_type IS NULL
                 OR respondent_id IS NULL OR region IS NULL OR score IS NULL
                 OR responded_at IS NULL OR score < 0 OR score > 10
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN response_id IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(responded_at) AS latest_event_at
FROM nps_responses
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND responded_at >= $range_start AND responded_at < $range_end
GROUP BY dt, CAST(arrow_cast(responded_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'fraud_flags' AS dataset, dt, CAST(arrow_cast(flagged_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN referral_id IS NULL OR source IS NULL OR reason IS NULL
                 OR flagged_at IS NULL
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN concat(referral_id, '/', source, '/', reason) IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(flagged_at) AS latest_event_at
FROM fraud_flags
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND flagged_at >= $range_start AND flagged_at < $range_end
GROUP BY dt, CAST(arrow_cast(flagged_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'compliance_events' AS dataset, dt, CAST(arrow_cast("at", 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN event_id IS NULL OR subject_type IS NULL
                 OR subject_id IS NULL OR check_name IS NULL OR status IS NULL
                 OR "at" IS NULL
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN event_id IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX("at") AS latest_event_at
FROM compliance_events
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND "at" >= $range_start AND "at" < $range_end
GROUP BY dt, CAST(arrow_cast("at", 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'experiment_assignments' AS dataset, dt, CAST(arrow_cast(assigned_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day, COUNT(*) AS row_count,
       SUM(CASE WHEN experiment_id IS NULL OR unit_id IS NULL OR variant IS NULL
                 OR assigned_at IS NULL
           THEN 1 ELSE 0 END) AS null_violations,
       SUM(CASE WHEN concat(experiment_id, '/', unit_id, '/', variant) IS NULL THEN 1 ELSE 0 END) AS null_keys,
       MAX(assigned_at) AS latest_event_at
FROM experiment_assignments
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND assigned_at >= $range_start AND assigned_at < $range_end
GROUP BY dt, CAST(arrow_cast(assigned_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)
