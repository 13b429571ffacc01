-- The rows of repeated keys (scope: range), per dataset, key, `dt` partition and event day: what
-- the window's data_refresh needs to count, per period, the rows beyond the first of each key.
-- The (small, in-memory) repeated_keys table is the build side of each join.
SELECT 'invites' AS dataset, r.k, t.dt, CAST(arrow_cast(t.sent_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'invites') r
JOIN invites t ON r.k = t.invite_id
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.sent_at >= $range_start AND t.sent_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.sent_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'referrals' AS dataset, r.k, t.dt, CAST(arrow_cast(t.created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'referrals') r
JOIN referrals t ON r.k = t.referral_id
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.created_at >= $range_start AND t.created_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'conversions' AS dataset, r.k, t.dt, CAST(arrow_cast(t.occurred_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'conversions') r
JOIN conversions t ON r.k = concat(t.referral_id, '/', t.stage)
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.occurred_at >= $range_start AND t.occurred_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.occurred_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'payouts' AS dataset, r.k, t.dt, CAST(arrow_cast(t.created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'payouts') r
JOIN payouts t ON r.k = t.payout_id
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.created_at >= $range_start AND t.created_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.created_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'partner_activity' AS dataset, k, dt, CAST(dt AS DATE) AS day, n
FROM (SELECT r.k, t.dt, COUNT(*) AS n
      FROM (SELECT k FROM repeated_keys WHERE dataset = 'partner_activity') r
      JOIN partner_activity t ON r.k = concat(t.partner_id, '/', CAST(t.activity_date AS VARCHAR))
      WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
      GROUP BY r.k, t.dt) by_partition

UNION ALL
SELECT 'nps_responses' AS dataset, r.k, t.dt, CAST(arrow_cast(t.responded_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'nps_responses') r
JOIN nps_responses t ON r.k = t.response_id
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.responded_at >= $range_start AND t.responded_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.responded_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'fraud_flags' AS dataset, r.k, t.dt, CAST(arrow_cast(t.flagged_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'fraud_flags') r
JOIN fraud_flags t ON r.k = concat(t.referral_id, '/', t.source, '/', t.reason)
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.flagged_at >= $range_start AND t.flagged_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.flagged_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'compliance_events' AS dataset, r.k, t.dt, CAST(arrow_cast(t."at", 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'compliance_events') r
JOIN compliance_events t ON r.k = t.event_id
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t."at" >= $range_start AND t."at" < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t."at", 'Timestamp(Microsecond, Some("UTC"))') AS DATE)

UNION ALL
SELECT 'experiment_assignments' AS dataset, r.k, t.dt, CAST(arrow_cast(t.assigned_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       COUNT(*) AS n
FROM (SELECT k FROM repeated_keys WHERE dataset = 'experiment_assignments') r
JOIN experiment_assignments t ON r.k = concat(t.experiment_id, '/', t.unit_id, '/', t.variant)
WHERE t.dt >= $range_start_day AND t.dt < $range_end_day
  AND t.assigned_at >= $range_start AND t.assigned_at < $range_end
GROUP BY r.k, t.dt, CAST(arrow_cast(t.assigned_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE)
