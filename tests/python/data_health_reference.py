"""Data-refresh checks (rows, null violations, duplicate keys) computed independently by DuckDB.

  plant ROOT AS_OF      add rows with repeated and missing keys to invites and conversions
  reference ROOT AS_OF WINDOW_DAYS
                        print {dataset: {period: {rows, null_violations, duplicate_keys}}}

Planted rows are copies of existing rows written as extra Parquet files into the `dt=`
partitions, so they exercise what a backfill's shared per-day tables must get right: a key
repeated on one day, a key whose copies straddle the previous/current boundary, a key with
three copies on three days, rows without a key, and a copy whose `dt` partition is not its
event day. Semantics (docs/pipeline-authoring.md): a row belongs to the period its event time
falls in, and is read only when its `dt` partition is inside the window's days too; within a
period, every row of a key beyond the first is a duplicate, and so is every row without a key.

The reference is a plain GROUP BY per period, written independently of pipelines/sql.
"""

import datetime as dt
import json
import sys

import duckdb

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET threads = 2")


def table(root, name):
    return f"read_parquet('{root}/{name}/*/*.parquet', hive_partitioning = true, union_by_name = true)"


def plant(root, as_of):
    end = dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.timezone.utc)

    def at(days_before, hour=10):
        return end - dt.timedelta(days=days_before) + dt.timedelta(hours=hour)

    # (key or None, event time, dt partition or None for the event day)
    invites = [
        ("planted-same-day", at(3, 10), None),
        ("planted-same-day", at(3, 11), None),
        ("planted-straddle", at(31), None),
        ("planted-straddle", at(29), None),
        ("planted-three", at(20), None),
        ("planted-three", at(10), None),
        ("planted-three", at(2), None),
        (None, at(5, 1), None),
        (None, at(5, 2), None),
        (None, at(5, 3), None),
        ("planted-late-partition", at(2, 9), None),
        ("planted-late-partition", at(2, 8), (end - dt.timedelta(days=1)).date()),
    ]
    referrer_id, channel, partner_id, region, persona = con.sql(
        f"SELECT referrer_id, channel, partner_id, region, persona FROM {table(root, 'invites')} LIMIT 1"
    ).fetchall()[0]
    written = 0
    for i, (key, when, partition) in enumerate(invites):
        row = {"invite_id": key, "referrer_id": referrer_id, "channel": channel,
               "partner_id": partner_id, "region": region, "persona": persona, "sent_at": when}
        day = partition or when.date()
        con.execute(
            f"""COPY (SELECT $invite_id::VARCHAR AS invite_id, $referrer_id::VARCHAR AS referrer_id,
                         $channel::VARCHAR AS channel, $partner_id::VARCHAR AS partner_id,
                         $region::VARCHAR AS region, $persona::VARCHAR AS persona,
                         $sent_at::TIMESTAMPTZ AS sent_at)
                TO '{root}/invites/dt={day}/planted-{i}.parquet' (FORMAT parquet)""",
            row,
        )
        written += 1
    # conversions: one (referral_id, stage) pair of the previous period copied twice more, 4 and
    # 12 days before as_of (one repeated key in the current period).
    pair = con.sql(
        f"SELECT referral_id, stage, amount FROM {table(root, 'conversions')} "
        f"WHERE stage = 'signup' AND occurred_at < TIMESTAMPTZ '{at(40).isoformat()}' "
        f"AND occurred_at >= TIMESTAMPTZ '{at(58).isoformat()}' ORDER BY referral_id LIMIT 1"
    ).fetchall()[0]
    for i, days in enumerate([4, 12]):
        when = at(days, 7)
        con.execute(
            f"""COPY (SELECT $r::VARCHAR AS referral_id, $s::VARCHAR AS stage,
                         $t::TIMESTAMPTZ AS occurred_at, $a::DOUBLE AS amount)
                TO '{root}/conversions/dt={when.date()}/planted-{i}.parquet' (FORMAT parquet)""",
            {"r": pair[0], "s": pair[1], "t": when, "a": pair[2]},
        )
        written += 1
    print(json.dumps({"planted_files": written}))


def reference(root, as_of, days):
    end = dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.timezone.utc)
    start = end - dt.timedelta(days=days)
    prev = start - dt.timedelta(days=days)
    specs = {
        "invites": ("invite_id", "sent_at",
                    "invite_id IS NULL OR referrer_id IS NULL OR channel IS NULL OR region IS NULL "
                    "OR persona IS NULL OR sent_at IS NULL"),
        "conversions": ("referral_id || '/' || stage", "occurred_at",
                        "referral_id IS NULL OR stage IS NULL OR occurred_at IS NULL "
                        "OR (stage = 'won' AND amount IS NULL)"),
    }
    out = {}
    for name, (key, ts, nulls) in specs.items():
        rows = con.execute(
            f"""WITH t AS (
                  SELECT {key} AS k, ({nulls}) AS broken,
                         CASE WHEN {ts} >= $start THEN 'current' ELSE 'previous' END AS period
                  FROM {table(root, name)}
                  WHERE {ts} >= $prev AND {ts} < $end
                    AND dt >= $prev_day AND dt < $end_day)
                SELECT period, COUNT(*) AS rows_, COUNT(*) FILTER (WHERE broken) AS null_violations,
                       (SELECT COUNT(*) FROM t u WHERE u.period = t.period AND u.k IS NULL)
                       + (SELECT COALESCE(SUM(n - 1), 0) FROM
                            (SELECT COUNT(*) AS n FROM t u WHERE u.period = t.period AND u.k IS NOT NULL
                             GROUP BY u.k) g) AS duplicate_keys
                FROM t GROUP BY period""",
            {"start": start, "end": end, "prev": prev,
             "prev_day": str(prev.date()), "end_day": str(end.date())},
        ).fetchall()
        out[name] = {p: {"rows": r, "null_violations": n, "duplicate_keys": d} for p, r, n, d in rows}
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "plant":
        plant(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "reference":
        reference(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
