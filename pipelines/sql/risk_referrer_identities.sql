-- Per referrer, device and payment fingerprint: referrals whose referee used that device and
-- that card. Several referees of one referrer on one device *and* one card is a self-referral
-- signal; a family sharing a tablet shares the device but not the card.
SELECT referrer_id, device_id, payment_fingerprint,
       COUNT(*) AS referrals,
       COUNT(DISTINCT referee_id) AS referees,
       COUNT(DISTINCT email_domain) AS email_domains
FROM risk_referrals
WHERE payment_fingerprint IS NOT NULL
GROUP BY referrer_id, device_id, payment_fingerprint
