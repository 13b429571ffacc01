-- Partner health inputs per partner: referrals now and in the previous window, wins and revenue,
-- engagement (logins, content shares), share of voice (the partner's share of all partner
-- mentions), partner NPS, and compliance failures. Ordered by revenue, then referrals.
-- Publishes: partner_health.
WITH refs AS (
  SELECT partner_id,
         SUM(CASE WHEN created_at >= $window_start THEN 1 ELSE 0 END) AS referrals,
         SUM(CASE WHEN created_at < $window_start THEN 1 ELSE 0 END) AS referrals_previous
  FROM referrals
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND created_at >= $previous_start AND created_at < $window_end
    AND partner_id IS NOT NULL
  GROUP BY partner_id
),
activity AS (
  SELECT partner_id, SUM(logins) AS logins, SUM(content_shares) AS content_shares,
         SUM(mentions) AS mentions
  FROM partner_activity
  WHERE dt >= $window_start_day AND dt < $window_end_day
  GROUP BY partner_id
),
nps AS (
  SELECT partner_id, COUNT(*) AS nps_responses,
         100.0 * (SUM(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - SUM(CASE WHEN score <= 6 THEN 1 ELSE 0 END))
           / COUNT(*) AS nps
  FROM nps_responses
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND responded_at >= $window_start AND responded_at < $window_end
    AND respondent_type = 'partner' AND partner_id IS NOT NULL
  GROUP BY partner_id
)
SELECT p.partner_id, p.name, p.tier, p.region, p.status,
       COALESCE(refs.referrals, 0) AS referrals,
       COALESCE(refs.referrals_previous, 0) AS referrals_previous,
       rp.won, rp.revenue, rp.payouts,
       COALESCE(a.logins, 0) AS logins,
       COALESCE(a.content_shares, 0) AS content_shares,
       COALESCE(a.mentions, 0) AS mentions,
       CAST(COALESCE(a.mentions, 0) AS DOUBLE) / NULLIF(CAST(SUM(COALESCE(a.mentions, 0)) OVER () AS DOUBLE), 0.0)
         AS share_of_voice,
       COUNT(*) OVER () AS partners,
       n.nps, COALESCE(n.nps_responses, 0) AS nps_responses,
       rp.kyc_failures + rp.disclosure_failures AS compliance_failures,
       rp.kyc_failures, rp.disclosure_failures, rp.disclosure_checks,
       CAST(rp.disclosure_failures AS DOUBLE) / NULLIF(CAST(rp.disclosure_checks AS DOUBLE), 0.0)
         AS disclosure_failure_rate
FROM partners p
JOIN risk_partners rp ON rp.partner_id = p.partner_id
LEFT JOIN refs ON refs.partner_id = p.partner_id
LEFT JOIN activity a ON a.partner_id = p.partner_id
LEFT JOIN nps n ON n.partner_id = p.partner_id
ORDER BY rp.revenue DESC, referrals DESC, p.partner_id
