-- Keys seen more than once (scope: range): for every dataset, each key in more than one row
-- over the run's days. The grouping of all keys happens here, once per backfill; the result is
-- usually empty or tiny.
SELECT 'invites' AS dataset, invite_id AS k
FROM invites
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND sent_at >= $range_start AND sent_at < $range_end
GROUP BY invite_id HAVING COUNT(*) > 1

UNION ALL
SELECT 'referrals' AS dataset, referral_id AS k
FROM referrals
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND created_at >= $range_start AND created_at < $range_end
GROUP BY referral_id HAVING COUNT(*) > 1

UNION ALL
SELECT 'conversions' AS dataset, concat(referral_id, '/', stage) AS k
FROM conversions
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND occurred_at >= $range_start AND occurred_at < $range_end
GROUP BY concat(referral_id, '/', stage) HAVING COUNT(*) > 1

UNION ALL
SELECT 'payouts' AS dataset, payout_id AS k
FROM payouts
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND created_at >= $range_start AND created_at < $range_end
GROUP BY payout_id HAVING COUNT(*) > 1

UNION ALL
SELECT 'partner_activity' AS dataset, concat(partner_id, '/', CAST(activity_date AS VARCHAR)) AS k
FROM partner_activity
WHERE dt >= $range_start_day AND dt < $range_end_day
GROUP BY concat(partner_id, '/', CAST(activity_date AS VARCHAR)) HAVING COUNT(*) > 1

UNION ALL
SELECT 'nps_responses' AS dataset, response_id AS k
FROM nps_responses
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND responded_at >= $range_start AND responded_at < $range_end
GROUP BY response_id HAVING COUNT(*) > 1

UNION ALL
SELECT 'fraud_flags' AS dataset, concat(referral_id, '/', source, '/', reason) AS k
FROM fraud_flags
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND flagged_at >= $range_start AND flagged_at < $range_end
GROUP BY concat(referral_id, '/', source, '/', reason) HAVING COUNT(*) > 1

UNION ALL
SELECT 'compliance_events' AS dataset, event_id AS k
FROM compliance_events
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND "at" >= $range_start AND "at" < $range_end
GROUP BY event_id HAVING COUNT(*) > 1

UNION ALL
SELECT 'experiment_assignments' AS dataset, concat(experiment_id, '/', unit_id, '/', variant) AS k
FROM experiment_assignments
WHERE dt >= $range_start_day AND dt < $range_end_day
  AND assigned_at >= $range_start AND assigned_at < $range_end
GROUP BY concat(experiment_id, '/', unit_id, '/', variant) HAVING COUNT(*) > 1
