-- Referrals of the current and the previous period with the keys that link referrers (device,
-- card, address) and what component features read: rings are judged over two periods, so
-- one that formed before the window's start is still one component inside it.
SELECT referral_id, referrer_id, referee_id, device_id, payment_fingerprint, ip, email_domain,
       created_at
FROM referrals
WHERE dt >= $previous_start_day AND dt < $window_end_day
  AND created_at >= $previous_start AND created_at < $window_end
  AND referrer_id IS NOT NULL
