-- Per referrer linked to others (risk_referrer_links), over the current and the previous
-- period (risk_link_referrals): its component's size and shape. A ring
-- that rotates devices, cards or addresses keeps every key below a per-key threshold, but its
-- accounts still form one component held together by many shared keys; colleagues paid with
-- one company card, behind their office's address, form a component held together by one or
-- two keys, and the referrals carrying those keys are on their company's own mail domain.
--   component_referrers      referrers in the component
--   component_link_keys      devices and cards shared by two or more of its referrers
--   component_link_addresses addresses shared by two or three of its referrers
--   component_referrals / component_referees / component_payouts   over the two periods
--   component_recent_share   share of its referrals in the window's last 7 days (growth)
--   link_top_domain_share / link_top_domain_referrers   the most common mail domain of the
--     referrals that carry a shared key, its share of them, and how many referrers' referees
--     use that domain program-wide (a company's domain: a few; free mail: everyone)
WITH members AS (
  SELECT node AS referrer_id, component, component_nodes FROM risk_referrer_links
),
refs AS (
  SELECT m.component, r.referral_id, r.referrer_id, r.referee_id, r.device_id,
         r.payment_fingerprint, r.ip, r.email_domain, r.created_at
  FROM risk_link_referrals r JOIN members m ON m.referrer_id = r.referrer_id
),
keyed AS (
  SELECT component, referral_id, referrer_id, email_domain, 'device' AS kind, device_id AS k
  FROM refs WHERE device_id IS NOT NULL
  UNION ALL
  SELECT component, referral_id, referrer_id, email_domain, 'card', payment_fingerprint
  FROM refs WHERE payment_fingerprint IS NOT NULL
  UNION ALL
  SELECT component, referral_id, referrer_id, email_domain, 'address', ip
  FROM refs WHERE ip IS NOT NULL
),
shared_keys AS (
  SELECT component, kind, k FROM (SELECT DISTINCT component, kind, k, referrer_id FROM keyed)
  GROUP BY component, kind, k
  HAVING COUNT(*) >= 2 AND (kind <> 'address' OR COUNT(*) <= 3)
),
link_keys AS (
  SELECT component,
         SUM(CASE WHEN kind = 'address' THEN 0 ELSE 1 END) AS link_keys,
         SUM(CASE WHEN kind = 'address' THEN 1 ELSE 0 END) AS link_addresses
  FROM shared_keys GROUP BY component
),
link_referrals AS (
  SELECT DISTINCT keyed.component, keyed.referral_id, keyed.email_domain
  FROM keyed JOIN shared_keys s
    ON s.component = keyed.component AND s.kind = keyed.kind AND s.k = keyed.k
),
link_domains AS (
  SELECT component, email_domain, COUNT(*) AS referrals,
         SUM(COUNT(*)) OVER (PARTITION BY component) AS link_referrals
  FROM link_referrals GROUP BY component, email_domain
),
top_link_domains AS (
  SELECT component, email_domain, referrals, link_referrals FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY component ORDER BY referrals DESC, email_domain)
             AS rank
    FROM link_domains
  ) WHERE rank = 1
),
-- Payouts on the component's referrals, without a join: payouts and the component's referrals
-- grouped together by referral (a grouped aggregate spills under a memory limit).
paid AS (
  SELECT MAX(owner) AS component, SUM(amount) AS amount
  FROM (
    SELECT component AS owner, referral_id, CAST(NULL AS DECIMAL(18, 2)) AS amount FROM refs
    UNION ALL
    SELECT NULL, referral_id, amount FROM payouts
    WHERE dt >= $previous_start_day AND dt < $window_end_day
      AND created_at >= $previous_start AND created_at < $window_end
  )
  GROUP BY referral_id HAVING MAX(owner) IS NOT NULL
),
totals AS (
  SELECT component, COUNT(*) AS referrals, COUNT(DISTINCT referee_id) AS referees,
         AVG(CASE WHEN created_at >= $window_end - INTERVAL '7 days' THEN 1.0 ELSE 0.0 END)
           AS recent_share
  FROM refs GROUP BY component
),
component_payouts AS (
  SELECT component, SUM(amount) AS payouts FROM paid GROUP BY component
)
SELECT m.referrer_id, m.component, m.component_nodes AS component_referrers,
       COALESCE(l.link_keys, 0) AS component_link_keys,
       COALESCE(l.link_addresses, 0) AS component_link_addresses,
       t.referrals AS component_referrals, t.referees AS component_referees,
       COALESCE(cp.payouts, 0) AS component_payouts, t.recent_share AS component_recent_share,
       CAST(d.referrals AS DOUBLE) / d.link_referrals AS link_top_domain_share,
       e.referrers AS link_top_domain_referrers
FROM members m
JOIN totals t ON t.component = m.component
LEFT JOIN link_keys l ON l.component = m.component
LEFT JOIN component_payouts cp ON cp.component = m.component
LEFT JOIN top_link_domains d ON d.component = m.component
LEFT JOIN risk_email_domains e ON e.email_domain = d.email_domain
