-- Payout concentration in the current window (payouts not reversed). One row per population of
-- recipients: every partner (scope `partner`), every referrer (scope `referrer`), and each
-- partner's referrers (scope `partner_referrers`, group_id = partner_id). For each: recipients,
-- total payouts, the share of the largest recipient and of the five largest, and the Gini
-- coefficient  G = 2 * sum(i * x_i) / (n * sum(x)) - (n + 1) / n  over payouts sorted ascending
-- (i = 1..n), which is 0 when everyone is paid the same and approaches 1 when one takes all.
WITH window_payouts AS (
  SELECT referral_id, recipient_id, recipient_type, amount
  FROM payouts
  WHERE dt >= $window_start_day AND dt < $window_end_day
    AND created_at >= $window_start AND created_at < $window_end
    AND status <> 'reversed'
),
per_recipient AS (
  SELECT recipient_type AS scope, CAST(NULL AS VARCHAR) AS group_id, recipient_id,
         SUM(amount) AS amount
  FROM window_payouts
  GROUP BY recipient_type, recipient_id
  UNION ALL
  SELECT 'partner_referrers' AS scope, r.partner_id AS group_id, p.recipient_id,
         SUM(p.amount) AS amount
  FROM window_payouts p
  JOIN referrals r ON r.referral_id = p.referral_id
  WHERE p.recipient_type = 'referrer'
    AND r.dt >= $previous_start_day AND r.dt < $window_end_day
    AND r.partner_id IS NOT NULL
  GROUP BY r.partner_id, p.recipient_id
),
ranked AS (
  SELECT scope, group_id, amount,
         ROW_NUMBER() OVER (PARTITION BY scope, group_id ORDER BY amount DESC, recipient_id) AS rank_desc,
         COUNT(*) OVER (PARTITION BY scope, group_id) AS n
  FROM per_recipient
)
SELECT scope, group_id,
       MAX(n) AS recipients,
       SUM(amount) AS payouts,
       CAST(SUM(CASE WHEN rank_desc = 1 THEN amount ELSE 0 END) AS DOUBLE)
         / NULLIF(CAST(SUM(amount) AS DOUBLE), 0.0) AS top1_share,
       CAST(SUM(CASE WHEN rank_desc <= 5 THEN amount ELSE 0 END) AS DOUBLE)
         / NULLIF(CAST(SUM(amount) AS DOUBLE), 0.0) AS top5_share,
       2.0 * CAST(SUM((n - rank_desc + 1) * amount) AS DOUBLE)
         / NULLIF(CAST(MAX(n) AS DOUBLE) * CAST(SUM(amount) AS DOUBLE), 0.0)
         - (CAST(MAX(n) AS DOUBLE) + 1.0) / CAST(MAX(n) AS DOUBLE) AS gini
FROM ranked
GROUP BY scope, group_id
ORDER BY scope, group_id
