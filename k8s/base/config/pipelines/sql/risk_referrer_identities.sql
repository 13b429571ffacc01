-- Per referrer, device and payment fingerprint: referrals whose referee used that device and
-- that card. Several referees of one referrer on one device *and* one card is a self-referral
-- signal; a family sharing a tablet shares the device but not the card.
-- Distinct counts from de-duplicated rows (see risk_devices.sql for why).
WITH identities AS (
  SELECT referrer_id, device_id, payment_fingerprint, referee_id, email_domain
  FROM risk_referrals WHERE payment_fingerprint IS NOT NULL
),
referees AS (
  SELECT referrer_id, device_id, payment_fingerprint, COUNT(referee_id) AS referees
  FROM (SELECT DISTINCT referrer_id, device_id, payment_fingerprint, referee_id FROM identities)
  GROUP BY referrer_id, device_id, payment_fingerprint
),
domains AS (
  SELECT referrer_id, device_id, payment_fingerprint, COUNT(email_domain) AS email_domains
  FROM (SELECT DISTINCT referrer_id, device_id, payment_fingerprint, email_domain FROM identities)
  GROUP BY referrer_id, device_id, payment_fingerprint
),
base AS (
  SELECT referrer_id, device_id, payment_fingerprint, COUNT(*) AS referrals
  FROM identities GROUP BY referrer_id, device_id, payment_fingerprint
)
SELECT b.referrer_id, b.device_id, b.payment_fingerprint, b.referrals,
       r.referees, d.email_domains
FROM base b
JOIN referees r ON (r.referrer_id IS NOT DISTINCT FROM b.referrer_id)
  AND (r.device_id IS NOT DISTINCT FROM b.device_id)
  AND (r.payment_fingerprint = b.payment_fingerprint)
JOIN domains d ON (d.referrer_id IS NOT DISTINCT FROM b.referrer_id)
  AND (d.device_id IS NOT DISTINCT FROM b.device_id)
  AND (d.payment_fingerprint = b.payment_fingerprint)
