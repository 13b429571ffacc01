"""Independent reference for refopt's funnel, KPIs and row counts, computed by DuckDB.

Reads the same Parquet files as refopt (Hive `dt=` partitions) and prints JSON. The SQL is
written independently of pipelines/sql: correlated per-referral aggregates over explicit
period bounds instead of refopt's bucket joins. Semantics (docs/pipeline-authoring.md):
a referral belongs to the window it was created in; its conversions and payouts count when they
happen inside that same window; invites count in the window they were sent. Money is summed as
DECIMAL(18, 2) and printed with two decimals, so refopt must match it to the cent.

usage: funnel_reference.py ROOT AS_OF WINDOW_DAYS
"""

import datetime as dt
import json
import sys

import duckdb

root, as_of, days = sys.argv[1], sys.argv[2], int(sys.argv[3])
end = dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.timezone.utc)
start = end - dt.timedelta(days=days)
prev = start - dt.timedelta(days=days)

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET threads = 2")


def table(name, partitioned=True):
    pattern = f"{root}/{name}/*/*.parquet" if partitioned else f"{root}/{name}/*.parquet"
    return f"read_parquet('{pattern}', hive_partitioning = {str(partitioned).lower()})"


params = {"prev": prev, "start": start, "end": end}
periods = """
  (SELECT 'previous' AS period, $prev::TIMESTAMPTZ AS p_start, $start::TIMESTAMPTZ AS p_end
   UNION ALL SELECT 'current', $start::TIMESTAMPTZ, $end::TIMESTAMPTZ)
"""

con.execute(
    f"""
CREATE TEMP TABLE ref AS
SELECT r.referral_id, r.referrer_id, r.referee_id, r.channel, r.persona, r.region, w.period,
       w.p_start, w.p_end,
       CASE WHEN r.partner_id IS NULL THEN 'none' ELSE coalesce(p.tier, 'unknown') END AS partner_tier
FROM {table('referrals')} r
JOIN {periods} w ON r.created_at >= w.p_start AND r.created_at < w.p_end
LEFT JOIN {table('partners', False)} p USING (partner_id)
""",
    params,
)
con.execute(
    f"""
CREATE TEMP TABLE conv AS
SELECT ref.referral_id,
       bool_or(c.stage = 'signup') AS s1, bool_or(c.stage = 'qualified') AS s2,
       bool_or(c.stage = 'opportunity') AS s3, bool_or(c.stage = 'won') AS s4,
       sum(CASE WHEN c.stage = 'won' THEN coalesce(CAST(c.amount AS DECIMAL(18, 2)), 0) ELSE 0 END) AS revenue
FROM ref JOIN {table('conversions')} c
  ON c.referral_id = ref.referral_id AND c.occurred_at >= ref.p_start AND c.occurred_at < ref.p_end
GROUP BY ref.referral_id
"""
)
con.execute(
    f"""
CREATE TEMP TABLE pay AS
SELECT ref.referral_id, sum(CAST(y.amount AS DECIMAL(18, 2))) AS payout_cost
FROM ref JOIN {table('payouts')} y
  ON y.referral_id = ref.referral_id AND y.created_at >= ref.p_start AND y.created_at < ref.p_end
WHERE y.status <> 'reversed'
GROUP BY ref.referral_id
"""
)
# Fraud flags raised on a referral inside the window it was created in.
con.execute(
    f"""
CREATE TEMP TABLE flg AS
SELECT DISTINCT ref.referral_id
FROM ref JOIN {table('fraud_flags')} f
  ON f.referral_id = ref.referral_id AND f.flagged_at >= ref.p_start AND f.flagged_at < ref.p_end
"""
)
# NPS answers, attributed like their respondent: the answer's channel ('unknown' without one)
# and region, the tier of its partner, and the persona of the respondent's referrals in either
# window (a referrer's own, a referee's referrer's).
con.execute(
    f"""
CREATE TEMP TABLE answers AS
SELECT w.period, coalesce(n.channel, 'unknown') AS channel, n.region,
       CASE WHEN n.partner_id IS NULL THEN 'none' ELSE coalesce(p.tier, 'unknown') END AS partner_tier,
       coalesce(CASE n.respondent_type
                  WHEN 'referrer' THEN (SELECT max(persona) FROM ref WHERE ref.referrer_id = n.respondent_id)
                  WHEN 'referee' THEN (SELECT max(persona) FROM ref WHERE ref.referee_id = n.respondent_id)
                END, 'unknown') AS persona,
       n.score
FROM {table('nps_responses')} n
JOIN {periods} w ON n.responded_at >= w.p_start AND n.responded_at < w.p_end
LEFT JOIN {table('partners', False)} p USING (partner_id)
""",
    params,
)
con.execute(
    f"""
CREATE TEMP TABLE inv AS
SELECT i.channel, i.persona, i.region, w.period,
       CASE WHEN i.partner_id IS NULL THEN 'none' ELSE coalesce(p.tier, 'unknown') END AS partner_tier
FROM {table('invites')} i
JOIN {periods} w ON i.sent_at >= w.p_start AND i.sent_at < w.p_end
LEFT JOIN {table('partners', False)} p USING (partner_id)
""",
    params,
)

rows = []
for dimension, column in [
    ("overall", "'all'"),
    ("channel", "channel"),
    ("persona", "persona"),
    ("region", "region"),
    ("partner-tier", "partner_tier"),
]:
    funnel = con.execute(
        f"""
        SELECT ref.period, {column} AS value, count(*) AS referrals,
               count(*) FILTER (WHERE conv.s1) AS signups,
               count(*) FILTER (WHERE conv.s2) AS qualified,
               count(*) FILTER (WHERE conv.s3) AS opportunities,
               count(*) FILTER (WHERE conv.s4) AS won,
               coalesce(sum(conv.revenue), 0) AS revenue,
               coalesce(sum(pay.payout_cost), 0) AS payout_cost,
               count(flg.referral_id) AS flagged
        FROM ref LEFT JOIN conv USING (referral_id) LEFT JOIN pay USING (referral_id)
             LEFT JOIN flg USING (referral_id)
        GROUP BY ALL
        """
    ).fetchall()
    invites = dict(
        ((p, v), n)
        for p, v, n in con.execute(
            f"SELECT period, {column} AS value, count(*) FROM inv GROUP BY ALL"
        ).fetchall()
    )
    nps = dict(
        ((p, v), (n, promoters, detractors))
        for p, v, n, promoters, detractors in con.execute(
            f"""SELECT period, {column} AS value, count(*),
                       count(*) FILTER (WHERE score >= 9), count(*) FILTER (WHERE score <= 6)
                FROM answers GROUP BY ALL"""
        ).fetchall()
    )
    by_key = {}
    for period, value, referrals, s1, s2, s3, s4, revenue, payout, flagged in funnel:
        by_key[(period, value)] = dict(
            referrals=referrals, signups=s1, qualified=s2, opportunities=s3, won=s4,
            revenue=f"{revenue:.2f}", payout_cost=f"{payout:.2f}", flagged=flagged)
    empty = dict(referrals=0, signups=0, qualified=0, opportunities=0, won=0, revenue="0.00",
                 payout_cost="0.00", flagged=0)
    for key in set(by_key) | set(invites) | set(nps):
        period, value = key
        answers, promoters, detractors = nps.get(key, (0, 0, 0))
        rows.append(dict(period=period, dimension=dimension, value=value,
                         invites=invites.get(key, 0), **by_key.get(key, empty),
                         nps_responses=answers, nps_promoters=promoters,
                         nps_detractors=detractors))

nps = con.execute(
    f"""
    SELECT respondent_type || '_nps', w.period,
           100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6)) / count(*)
    FROM {table('nps_responses')} n
    JOIN {periods} w ON n.responded_at >= w.p_start AND n.responded_at < w.p_end
    GROUP BY ALL
    """,
    params,
).fetchall()
flags = con.execute(
    f"""
    SELECT w.period, count(DISTINCT f.referral_id)
    FROM {table('fraud_flags')} f
    JOIN {periods} w ON f.flagged_at >= w.p_start AND f.flagged_at < w.p_end
    GROUP BY ALL
    """,
    params,
).fetchall()
referrals_per_period = dict(con.execute("SELECT period, count(*) FROM ref GROUP BY ALL").fetchall())
kpis = [dict(metric=m, period=p, value=v) for m, p, v in nps]
for period, n in flags:
    kpis.append(dict(metric="fraud_flags", period=period, value=float(n)))
    kpis.append(dict(metric="fraud_flag_rate", period=period, value=n / referrals_per_period[period]))

print(json.dumps({"funnel": rows, "kpis": kpis}))
