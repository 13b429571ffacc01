-- Invites per day x channel x persona x region x partner tier over the run's date range
-- (scope: range). A run computes it over its own window's days; a backfill computes it once over
-- all its windows' days, and each window's funnel_cube rolls up its own days from it.
-- `dt` is kept beside the event day so that a window filters both exactly as a scan would.
SELECT i.dt,
       CAST(arrow_cast(i.sent_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE) AS day,
       i.channel, i.persona, i.region,
       CASE WHEN i.partner_id IS NULL THEN 'none' ELSE COALESCE(t.tier, 'unknown') END AS partner_tier,
       COUNT(*) AS invites
FROM invites i
LEFT JOIN (SELECT partner_id, tier FROM partners) t ON i.partner_id = t.partner_id
WHERE i.dt >= $range_start_day AND i.dt < $range_end_day
  AND i.sent_at >= $range_start AND i.sent_at < $range_end
GROUP BY i.dt, CAST(arrow_cast(i.sent_at, 'Timestamp(Microsecond, Some("UTC"))') AS DATE), i.channel, i.persona, i.region,
         CASE WHEN i.partner_id IS NULL THEN 'none' ELSE COALESCE(t.tier, 'unknown') END
