-- The funnel per dimension value, from the small funnel_cube. Dimension names here are the
-- ones declared in the pipeline's `dimensions:` list. Publishes: funnel.
SELECT period, 'overall' AS dimension, 'all' AS value,
       SUM(invites) AS invites, SUM(referrals) AS referrals, SUM(signups) AS signups,
       SUM(qualified) AS qualified, SUM(opportunities) AS opportunities, SUM(won) AS won,
       SUM(revenue) AS revenue, SUM(payout_cost) AS payout_cost
FROM funnel_cube GROUP BY period
UNION ALL
SELECT period, 'channel', channel,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost)
FROM funnel_cube GROUP BY period, channel
UNION ALL
SELECT period, 'persona', persona,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost)
FROM funnel_cube GROUP BY period, persona
UNION ALL
SELECT period, 'region', region,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost)
FROM funnel_cube GROUP BY period, region
UNION ALL
SELECT period, 'partner-tier', partner_tier,
       SUM(invites), SUM(referrals), SUM(signups), SUM(qualified), SUM(opportunities), SUM(won),
       SUM(revenue), SUM(payout_cost)
FROM funnel_cube GROUP BY period, partner_tier
