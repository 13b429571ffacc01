"""Declared data tests (pipeline `tests:`) computed independently by DuckDB.

  plant ROOT AS_OF      break the data the way the default pipeline's tests should catch:
                        referrals with a null referrer_id, a repeated referral_id and an
                        unaccepted channel; payouts and conversions of referrals that do not
                        exist (orphans), some payouts with an unaccepted recipient_type; and
                        the last 12 days of invites removed (stale and a row-count drop)
  reference ROOT AS_OF WINDOW_DAYS
                        print {dataset: {test id: {rows, failing_rows, previous_rows, observed}}}
                        for the tests the e2e test checks

Semantics (docs/pipeline-authoring.md#data-tests): a test reads the current window's rows by the
dataset's time column (and its `dt` partitions); `unique` fails non-null rows beyond the
distinct values; `relationships` fails rows whose non-null key is in no row of the parent
(any day); freshness is hours from the newest event of the window to its end; row-count change
is (current - previous) / previous. Written independently of the Rust SQL.
"""

import datetime as dt
import json
import math
import os
import shutil
import sys

import duckdb

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET threads = 2")


def table(root, name):
    return f"read_parquet('{root}/{name}/*/*.parquet', hive_partitioning = true, union_by_name = true)"


def plant(root, as_of):
    end = dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.timezone.utc)
    when = end - dt.timedelta(days=5) + dt.timedelta(hours=9)
    day = when.date()
    # One real referral of the window: the template of the planted rows.
    template = f"(SELECT * FROM {table(root, 'referrals')} WHERE dt >= '{end.date() - dt.timedelta(days=20)}' ORDER BY referral_id LIMIT 1)"
    columns = ("referral_id, invite_id, referrer_id, referee_id, partner_id, channel, region, "
               "persona, created_at, ip, device_id, email_domain, payment_fingerprint")
    planted = [
        # (referral_id, referrer_id, channel): None keeps the template's value
        ("planted-null-referrer-1", "NULL", None),
        ("planted-null-referrer-2", "NULL", None),
        (None, None, None),  # a second row of the template's referral_id
        ("planted-pigeon-1", None, "'carrier_pigeon'"),
        ("planted-pigeon-2", None, "'carrier_pigeon'"),
        ("planted-pigeon-3", None, "'carrier_pigeon'"),
    ]
    selects = []
    for rid, referrer, channel in planted:
        values = {c.strip(): c.strip() for c in columns.split(",")}
        if rid:
            values["referral_id"] = f"'{rid}'"
        if referrer:
            values["referrer_id"] = f"CAST({referrer} AS VARCHAR)"
        if channel:
            values["channel"] = channel
        values["created_at"] = f"TIMESTAMPTZ '{when.isoformat()}'"
        selects.append("SELECT " + ", ".join(f"{v} AS {k}" for k, v in values.items()) + f" FROM {template}")
    con.execute(
        f"COPY ({' UNION ALL '.join(selects)}) TO '{root}/referrals/dt={day}/planted-tests.parquet' (FORMAT parquet)"
    )
    # Payouts of four referrals that do not exist, two with an unaccepted recipient_type.
    payouts = " UNION ALL ".join(
        f"""SELECT 'planted-payout-{i}' AS payout_id, 'ghost-referral-{i}' AS referral_id,
                   'someone' AS recipient_id, '{'affiliate' if i < 2 else 'referrer'}' AS recipient_type,
                   50.0::DOUBLE AS amount, 'USD' AS currency, 'pending' AS status,
                   TIMESTAMPTZ '{when.isoformat()}' AS created_at"""
        for i in range(4)
    )
    con.execute(f"COPY ({payouts}) TO '{root}/payouts/dt={day}/planted-tests.parquet' (FORMAT parquet)")
    # Conversions of three referrals that do not exist.
    conversions = " UNION ALL ".join(
        f"""SELECT 'ghost-conversion-{i}' AS referral_id, 'signup' AS stage,
                   TIMESTAMPTZ '{when.isoformat()}' AS occurred_at, NULL::DOUBLE AS amount"""
        for i in range(3)
    )
    con.execute(f"COPY ({conversions}) TO '{root}/conversions/dt={day}/planted-tests.parquet' (FORMAT parquet)")
    # Invites stop 12 days before the window's end.
    removed = 0
    for entry in os.listdir(f"{root}/invites"):
        if entry.startswith("dt=") and entry[3:] >= str(end.date() - dt.timedelta(days=12)):
            shutil.rmtree(f"{root}/invites/{entry}")
            removed += 1
    print(json.dumps({"invite_days_removed": removed}))


def reference(root, as_of, days):
    end = dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.timezone.utc)
    start = end - dt.timedelta(days=days)
    prev = start - dt.timedelta(days=days)

    def window(name, ts, since):
        return (f"(SELECT * FROM {table(root, name)} WHERE {ts} >= TIMESTAMPTZ '{since.isoformat()}' "
                f"AND {ts} < TIMESTAMPTZ '{end.isoformat()}' AND dt >= '{since.date()}' AND dt < '{end.date()}')")

    def one(sql):
        return con.sql(sql).fetchone()[0]

    def rows(name, ts):
        return one(f"SELECT COUNT(*) FROM {window(name, ts, start)}")

    def failing(name, ts, where):
        return one(f"SELECT COUNT(*) FROM {window(name, ts, start)} t WHERE {where}")

    def orphans(name, ts, column):
        return one(
            f"SELECT COUNT(*) FROM {window(name, ts, start)} c WHERE c.{column} IS NOT NULL "
            f"AND c.{column} NOT IN (SELECT referral_id FROM {table(root, 'referrals')} WHERE referral_id IS NOT NULL)"
        )

    out = {}
    n = rows("referrals", "created_at")
    prev_n = one(f"SELECT COUNT(*) FROM {window('referrals', 'created_at', prev)} WHERE created_at < TIMESTAMPTZ '{start.isoformat()}'")
    out["referrals"] = {
        "not_null:referral_id": {"rows": n, "failing_rows": failing("referrals", "created_at", "referral_id IS NULL")},
        "not_null:referrer_id": {"rows": n, "failing_rows": failing("referrals", "created_at", "referrer_id IS NULL")},
        "unique:referral_id": {"rows": n, "failing_rows": one(
            f"SELECT COUNT(referral_id) - COUNT(DISTINCT referral_id) FROM {window('referrals', 'created_at', start)}")},
        "accepted_values:channel": {"rows": n, "failing_rows": failing(
            "referrals", "created_at", "channel NOT IN ('email', 'social', 'in_app', 'partner', 'events')")},
        "row_count_change": {"rows": n, "previous_rows": prev_n, "observed": (n - prev_n) / prev_n},
    }
    n = rows("payouts", "created_at")
    out["payouts"] = {
        "relationships:referral_id->referrals.referral_id": {"rows": n, "failing_rows": orphans("payouts", "created_at", "referral_id")},
        "accepted_values:recipient_type": {"rows": n, "failing_rows": failing(
            "payouts", "created_at", "recipient_type NOT IN ('referrer', 'partner')")},
    }
    n = rows("conversions", "occurred_at")
    out["conversions"] = {
        "relationships:referral_id->referrals.referral_id": {"rows": n, "failing_rows": orphans("conversions", "occurred_at", "referral_id")},
    }
    n = rows("invites", "sent_at")
    prev_n = one(f"SELECT COUNT(*) FROM {window('invites', 'sent_at', prev)} WHERE sent_at < TIMESTAMPTZ '{start.isoformat()}'")
    # Whole seconds from the newest event to the window's end (no Python timestamps: no pytz).
    age_seconds = one(f"SELECT FLOOR(epoch(TIMESTAMPTZ '{end.isoformat()}') - epoch(MAX(sent_at))) "
                      f"FROM {window('invites', 'sent_at', start)}")
    out["invites"] = {
        "freshness": {"rows": n, "observed": math.floor(age_seconds / 3600 * 100 + 0.5) / 100},
        "row_count_change": {"rows": n, "previous_rows": prev_n, "observed": (n - prev_n) / prev_n},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "plant":
        plant(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "reference":
        reference(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
