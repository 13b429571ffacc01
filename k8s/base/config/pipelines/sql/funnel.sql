-- The funnel per dimension value, from the small funnel_cube and nps_cube: counts, the
-- cohort's fraud-flagged referrals, and NPS answers (promoters and detractors). Dimension names
-- here are the ones declared in the pipeline's `dimensions:` list. Publishes: funnel.
WITH cube AS (
  SELECT period, channel, persona, region, partner_tier, invites, referrals, signups, qualified,
         opportunities, won, revenue, payout_cost, flagged,
         CAST(0 AS BIGINT) AS nps_responses, CAST(0 AS BIGINT) AS nps_promoters,
         CAST(0 AS BIGINT) AS nps_detractors
  FROM funnel_cube
  UNION ALL
  SELECT period, channel, persona, region, partner_tier, CAST(0 AS BIGINT), CAST(0 AS BIGINT),
         CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT),
         CAST(0 AS DECIMAL(18, 2)), CAST(0 AS DECIMAL(18, 2)), CAST(0 AS BIGINT),
         nps_responses, nps_promoters, nps_detractors
  FROM nps_cube
)
SELECT period, 'overall' AS dimension, 'all' AS value,
       SUM(invites) AS invites, SUM(referrals) AS referrals, SUM(signups) AS signups,
       SUM(qualified) AS qualified, SUM(opportunities) AS opportunities, SUM(won) AS won,
       SUM(revenue) AS revenue, SUM(payout_cost) AS payout_cost, SUM(flagged) AS flagged,
       SUM(nps_responses) AS nps_responses, SUM(nps_promoters) AS nps_promoters,
       SUM(nps_detractors) AS nps_detractors
FROM cube GROUP BY period
UNION ALL
SELECT period, 'channel', channel,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost), SUM(flagged),
       SUM(nps_responses), SUM(nps_promoters), SUM(nps_detractors)
FROM cube GROUP BY period, channel
UNION ALL
SELECT period, 'persona', persona,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost), SUM(flagged),
       SUM(nps_responses), SUM(nps_promoters), SUM(nps_detractors)
FROM cube GROUP BY period, persona
UNION ALL
SELECT period, 'region', region,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost), SUM(flagged),
       SUM(nps_responses), SUM(nps_promoters), SUM(nps_detractors)
FROM cube GROUP BY period, region
UNION ALL
SELECT period, 'partner-tier', partner_tier,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost), SUM(flagged),
       SUM(nps_responses), SUM(nps_promoters), SUM(nps_detractors)
FROM cube GROUP BY period, partner_tier
