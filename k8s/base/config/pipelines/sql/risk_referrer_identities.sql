-- Per referrer, device and payment fingerprint: referrals whose referee used that device and
-- that card. Several referees of one referrer on one device *and* one card is a self-referral
-- signal; a family sharing a tablet shares the device but not the card.
-- Distinct counts from de-duplicated rows (see risk_devices.sql for why), combined by one
-- grouped aggregate over the three row sets instead of joining three aggregates (an aggregate
-- spills under --memory-limit; a hash join's build side cannot).
WITH identities AS (
  SELECT referrer_id, device_id, payment_fingerprint, referee_id, email_domain
  FROM risk_referrals WHERE payment_fingerprint IS NOT NULL
)
SELECT referrer_id, device_id, payment_fingerprint,
       SUM(referrals) AS referrals,
       SUM(referees) AS referees,
       SUM(email_domains) AS email_domains
FROM (
  SELECT referrer_id, device_id, payment_fingerprint,
         COUNT(*) AS referrals, 0 AS referees, 0 AS email_domains
  FROM identities
  GROUP BY referrer_id, device_id, payment_fingerprint
  UNION ALL
  SELECT referrer_id, device_id, payment_fingerprint, 0, 1, 0
  FROM (SELECT DISTINCT referrer_id, device_id, payment_fingerprint, referee_id
        FROM identities WHERE referee_id IS NOT NULL)
  UNION ALL
  SELECT referrer_id, device_id, payment_fingerprint, 0, 0, 1
  FROM (SELECT DISTINCT referrer_id, device_id, payment_fingerprint, email_domain
        FROM identities WHERE email_domain IS NOT NULL)
) counted
GROUP BY referrer_id, device_id, payment_fingerprint
