-- Per payment fingerprint: referrals, distinct referrers and devices; for cards shared by two or
-- more referrers, also their referees' most common mail domain, its share of the card's
-- referrals and how many referrers' referees use that domain across the program (a company's
-- own domain is used by a few colleagues, a free-mail domain by everyone). A corporate card
-- paying for coworkers on the company domain is shared, not fraudulent.
-- Distinct counts from de-duplicated triples (see risk_devices.sql for why).
WITH cards AS (
  SELECT payment_fingerprint, referrer_id, device_id, email_domain
  FROM risk_referrals WHERE payment_fingerprint IS NOT NULL
),
triples AS (
  SELECT DISTINCT payment_fingerprint, kind, v FROM (
    SELECT payment_fingerprint, 'referrer' AS kind, referrer_id AS v FROM cards
    UNION ALL SELECT payment_fingerprint, 'device', device_id FROM cards
  ) WHERE v IS NOT NULL
),
distinct_counts AS (
  SELECT payment_fingerprint,
         SUM(CASE WHEN kind = 'referrer' THEN 1 ELSE 0 END) AS referrers,
         SUM(CASE WHEN kind = 'device' THEN 1 ELSE 0 END) AS devices
  FROM triples GROUP BY payment_fingerprint
),
base AS (
  SELECT payment_fingerprint, COUNT(*) AS referrals FROM cards GROUP BY payment_fingerprint
),
shared_domains AS (
  SELECT c.payment_fingerprint, c.email_domain, COUNT(*) AS referrals
  FROM cards c
  JOIN distinct_counts d ON d.payment_fingerprint = c.payment_fingerprint AND d.referrers >= 2
  GROUP BY c.payment_fingerprint, c.email_domain
),
top_domains AS (
  SELECT payment_fingerprint, email_domain, referrals FROM (
    SELECT payment_fingerprint, email_domain, referrals,
           ROW_NUMBER() OVER (PARTITION BY payment_fingerprint
                              ORDER BY referrals DESC, email_domain) AS rank
    FROM shared_domains
  ) WHERE rank = 1
)
SELECT b.payment_fingerprint, b.referrals,
       COALESCE(d.referrers, 0) AS referrers,
       COALESCE(d.devices, 0) AS devices,
       t.email_domain AS top_email_domain,
       CAST(t.referrals AS DOUBLE) / b.referrals AS top_domain_share,
       e.referrers AS top_domain_referrers
FROM base b
LEFT JOIN distinct_counts d ON d.payment_fingerprint = b.payment_fingerprint
LEFT JOIN top_domains t ON t.payment_fingerprint = b.payment_fingerprint
LEFT JOIN risk_email_domains e ON e.email_domain = t.email_domain
