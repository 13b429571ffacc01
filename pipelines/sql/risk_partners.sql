-- Per partner in the current window: referrals, partner payouts (not reversed) vs the revenue of the
-- partner's won deals, each partner's share of all partner payouts and revenue, and compliance
-- failures (partner KYC and disclosure checks on the partner's referrals).
WITH pay AS (
  SELECT recipient_id AS partner_id, SUM(amount) AS payouts, COUNT(*) AS payout_count
  FROM payouts
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND created_at >= $window_start AND created_at < $window_end
    AND recipient_type = 'partner' AND status <> 'reversed'
  GROUP BY recipient_id
),
won AS (
  SELECT r.partner_id, COUNT(*) AS won, SUM(c.amount) AS revenue
  FROM conversions c
  JOIN referrals r ON r.referral_id = c.referral_id
  WHERE c.dt >= $window_start_day AND c.dt < $window_end_day
    AND c.occurred_at >= $window_start AND c.occurred_at < $window_end
    AND c.stage = 'won'
    AND r.dt >= $previous_start_day AND r.dt < $window_end_day
    AND r.partner_id IS NOT NULL
  GROUP BY r.partner_id
),
kyc AS (
  SELECT subject_id AS partner_id,
         SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END) AS kyc_failures,
         SUM(CASE WHEN status = 'missing' THEN 1 ELSE 0 END) AS kyc_missing,
         COUNT(*) AS kyc_checks
  FROM compliance_events
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND "at" >= $window_start AND "at" < $window_end
    AND subject_type = 'partner'
  GROUP BY subject_id
),
refs AS (
  SELECT partner_id, COUNT(*) AS referrals
  FROM referrals
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND created_at >= $window_start AND created_at < $window_end
    AND partner_id IS NOT NULL
  GROUP BY partner_id
),
disclosure AS (
  SELECT r.partner_id,
         SUM(CASE WHEN e.status = 'fail' THEN 1 ELSE 0 END) AS disclosure_failures,
         COUNT(*) AS disclosure_checks
  FROM compliance_events e
  JOIN referrals r ON r.referral_id = e.subject_id
  WHERE e.dt >= $window_start_day AND e.dt < $window_end_day
    AND e."at" >= $window_start AND e."at" < $window_end
    AND e.subject_type = 'referral' AND e.check_name = 'disclosure_shown'
    AND r.dt >= $window_start_day AND r.dt < $window_end_day
    AND r.partner_id IS NOT NULL
  GROUP BY r.partner_id
)
SELECT p.partner_id, p.tier, p.status, p.joined_at,
       COALESCE(pay.payouts, 0) AS payouts,
       COALESCE(pay.payout_count, 0) AS payout_count,
       COALESCE(refs.referrals, 0) AS referrals,
       COALESCE(won.won, 0) AS won,
       COALESCE(won.revenue, 0) AS revenue,
       CAST(COALESCE(pay.payouts, 0) AS DOUBLE)
         / NULLIF(CAST(SUM(COALESCE(pay.payouts, 0)) OVER () AS DOUBLE), 0.0) AS payout_share,
       CAST(COALESCE(won.revenue, 0) AS DOUBLE)
         / NULLIF(CAST(SUM(COALESCE(won.revenue, 0)) OVER () AS DOUBLE), 0.0) AS revenue_share,
       -- Program-wide references for relative rules.
       CAST(SUM(COALESCE(pay.payouts, 0)) OVER () AS DOUBLE)
         / NULLIF(CAST(SUM(COALESCE(won.revenue, 0)) OVER () AS DOUBLE), 0.0)
         AS program_payout_to_revenue,
       CAST(SUM(COALESCE(won.won, 0)) OVER () AS DOUBLE) / NULLIF(CAST(SUM(COALESCE(refs.referrals, 0)) OVER () AS DOUBLE), 0.0)
         AS program_win_rate,
       COALESCE(kyc.kyc_failures, 0) AS kyc_failures,
       COALESCE(kyc.kyc_missing, 0) AS kyc_missing,
       COALESCE(kyc.kyc_checks, 0) AS kyc_checks,
       COALESCE(disclosure.disclosure_failures, 0) AS disclosure_failures,
       COALESCE(disclosure.disclosure_checks, 0) AS disclosure_checks
FROM partners p
LEFT JOIN pay ON pay.partner_id = p.partner_id
LEFT JOIN won ON won.partner_id = p.partner_id
LEFT JOIN refs ON refs.partner_id = p.partner_id
LEFT JOIN kyc ON kyc.partner_id = p.partner_id
LEFT JOIN disclosure ON disclosure.partner_id = p.partner_id
