-- NPS answers by period x channel x persona x region x partner tier: the funnel's breakdown, so
-- funnel.sql can give NPS per dimension value. An answer counts in the period it was given.
-- It is attributed like its respondent: channel and region are the answer's own columns
-- ('unknown' where the answer has no channel); partner tier comes through the answer's
-- partner_id ('none' without one, as for referrals); persona is the persona of the respondent's
-- referrals in the run's two windows (a referrer's own, a referee's referrer's), 'unknown' when
-- the respondent has none there (partners, and people outside the windows).
WITH answers AS (
  SELECT respondent_type, respondent_id, partner_id,
         COALESCE(channel, 'unknown') AS channel, region, score,
         CASE WHEN responded_at >= $window_start THEN 'current' ELSE 'previous' END AS period
  FROM nps_responses
  WHERE dt >= $previous_start_day AND dt < $window_end_day
    AND responded_at >= $previous_start AND responded_at < $window_end
),
-- One narrow scan of the windows' referrals, kept only for people who answered.
people AS (
  SELECT person, MAX(persona) AS persona
  FROM (SELECT persona,
               unnest(make_array(concat('referrer:', referrer_id),
                                 concat('referee:', referee_id))) AS person
        FROM referrals
        WHERE dt >= $previous_start_day AND dt < $window_end_day
          AND created_at >= $previous_start AND created_at < $window_end) r
  WHERE person IN (SELECT concat(respondent_type, ':', respondent_id) FROM answers
                   WHERE respondent_type IN ('referrer', 'referee'))
  GROUP BY person
)
SELECT a.period, a.channel, COALESCE(p.persona, 'unknown') AS persona, a.region,
       CASE WHEN a.partner_id IS NULL THEN 'none' ELSE COALESCE(t.tier, 'unknown') END AS partner_tier,
       COUNT(*) AS nps_responses,
       CAST(SUM(CASE WHEN a.score >= 9 THEN 1 ELSE 0 END) AS BIGINT) AS nps_promoters,
       CAST(SUM(CASE WHEN a.score <= 6 THEN 1 ELSE 0 END) AS BIGINT) AS nps_detractors
FROM answers a
LEFT JOIN people p ON p.person = concat(a.respondent_type, ':', a.respondent_id)
LEFT JOIN partners t ON t.partner_id = a.partner_id
GROUP BY a.period, a.channel, COALESCE(p.persona, 'unknown'), a.region,
         CASE WHEN a.partner_id IS NULL THEN 'none' ELSE COALESCE(t.tier, 'unknown') END
