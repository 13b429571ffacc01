"""Runs a refopt pipeline's SQL stages with DuckDB on the same Parquet files: the "same SQL in
another engine" leg of bench/compare.sh. Placeholders are bound as literals; each SQL stage
becomes a table named after it, in pipeline order. Prints per-stage and total seconds as JSON.

usage: duckdb_pipeline.py DATA_ROOT PIPELINE_YAML AS_OF WINDOW_DAYS THREADS
"""

import json
import re
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import yaml
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# refopt's `ip_network(ip, bits)` SQL function for IPv4 (the generator writes IPv4 only; other
# text is NULL here as in refopt): the address masked to `bits`, as 'a.b.c.d/bits'.
IP_NETWORK_MACROS = [
    r"""CREATE MACRO ipv4_int(ip) AS
        (CAST(split_part(ip, '.', 1) AS BIGINT) << 24) | (CAST(split_part(ip, '.', 2) AS BIGINT) << 16)
        | (CAST(split_part(ip, '.', 3) AS BIGINT) << 8) | CAST(split_part(ip, '.', 4) AS BIGINT)""",
    r"""CREATE MACRO ipv4_text(n, bits) AS
        concat_ws('.', n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255) || '/' || bits""",
    r"""CREATE MACRO ip_network(ip, bits) AS
        CASE WHEN regexp_full_match(ip, '[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}')
        THEN ipv4_text(ipv4_int(ip) & ((4294967295 >> (32 - bits)) << (32 - bits)), bits) END""",
]


def in_dependency_order(stages):
    """The stages with each after its dependencies (file order otherwise), as refopt's DAG
    executor runs them one at a time."""
    done, ordered, waiting = set(), [], list(stages)
    while waiting:
        ready = next(s for s in waiting if set(s.get("depends_on", [])) <= done)
        waiting.remove(ready)
        ordered.append(ready)
        done.add(ready["id"])
    return ordered


def components(con, sql):
    """A `kind: components` stage: the SQL's edges (a, b) labelled by connected component (the
    smallest node id in it) with the component's size, as refopt's union-find does; scipy's
    connected_components over integer ids."""
    edges = con.execute(sql).fetchnumpy()
    a = np.asarray(edges["a"], dtype=str)
    b = np.asarray(edges["b"], dtype=str)
    names, ids = np.unique(np.concatenate([a, b]), return_inverse=True)
    n = len(names)
    graph = coo_matrix((np.ones(len(a)), (ids[: len(a)], ids[len(a) :])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    # Names are sorted, so a component's smallest index is its smallest id.
    smallest = np.full(label.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, label, np.arange(n))
    size = np.bincount(label) if n else np.array([], dtype=np.int64)
    return {
        "node": names,
        "component": names[smallest[label]] if n else names,
        "component_nodes": size[label].astype(np.int64) if n else size.astype(np.int64),
    }


def main():
    root, pipeline_file, as_of, window_days, threads = sys.argv[1:6]
    window_days = int(window_days)
    pipeline = yaml.safe_load(Path(pipeline_file).read_text())
    end = date.fromisoformat(as_of)
    start = end - timedelta(days=window_days)
    previous = start - timedelta(days=window_days)
    params = {
        "$previous_start_day": f"'{previous}'",
        "$window_start_day": f"'{start}'",
        "$window_end_day": f"'{end}'",
        "$previous_start": f"TIMESTAMPTZ '{previous} 00:00:00+00'",
        "$window_start": f"TIMESTAMPTZ '{start} 00:00:00+00'",
        "$window_end": f"TIMESTAMPTZ '{end} 00:00:00+00'",
        "$window_days": str(window_days),
        # A single run's range stages cover its own days: [previous_start, window_end).
        "$range_start_day": f"'{previous}'",
        "$range_end_day": f"'{end}'",
        "$range_start": f"TIMESTAMPTZ '{previous} 00:00:00+00'",
        "$range_end": f"TIMESTAMPTZ '{end} 00:00:00+00'",
    }
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET TimeZone = 'UTC'")
    for macro in IP_NETWORK_MACROS:
        con.execute(macro)
    for d in pipeline["datasets"]:
        folder = Path(root) / d["path"]
        if d.get("partitioned_by_day"):
            source = f"read_parquet('{folder}/*/*.parquet', hive_partitioning = true, hive_types = {{'dt': VARCHAR}})"
        else:
            source = f"read_parquet('{folder}/*.parquet')"
        # Money columns read as DECIMAL(18, 2), as refopt's dataset views do.
        money = [
            name
            for column in d.get("required_columns", [])
            if isinstance(column, dict)
            for name, kind in column.items()
            if kind == "money"
        ]
        select = "*"
        if money:
            casts = ", ".join(f"TRY_CAST({m} AS DECIMAL(18, 2)) AS {m}" for m in money)
            select = f"* REPLACE ({casts})"
        con.execute(f"CREATE VIEW {d['name']} AS SELECT {select} FROM {source}")
    timings = {}
    total = time.perf_counter()
    base = Path(pipeline_file).parent
    for stage in in_dependency_order(pipeline["stages"]):
        if stage.get("kind") == "gate":
            continue
        sql = stage.get("sql") or (base / stage["sql_file"]).read_text()
        for name in sorted(params, key=len, reverse=True):
            sql = sql.replace(name, params[name])
        # UTC days (`CAST(arrow_cast(ts, UTC) AS DATE)`) and hours (`date_bin`) in the form that
        # is fastest in DuckDB:
        # epoch arithmetic. Its time_bucket/date_trunc over TIMESTAMPTZ go through ICU time
        # zones (time_bucket ~50x, date_trunc ~8x slower on 5 M rows), which would slow the
        # reference leg for nothing.
        sql = re.sub(
            r"CAST\(arrow_cast\(([^,]+), 'Timestamp\(Microsecond, Some\(\"UTC\"\)\)'\) AS DATE\)",
            r"(DATE '1970-01-01' + CAST(epoch_us(\1) // 86400000000 AS INTEGER))",
            sql,
        )
        sql = re.sub(r"date_bin\(INTERVAL '1 hour', ([^)]+)\)", r"(epoch_us(\1) // 3600000000)", sql)
        # DataFusion's make_array is DuckDB's list_value.
        sql = sql.replace("make_array(", "list_value(")
        if "date_bin(" in sql or "arrow_cast(" in sql:
            sys.exit(f"stage {stage['id']}: a DataFusion function this script does not translate")
        began = time.perf_counter()
        if stage.get("kind") == "components":
            con.register("labelled", components(con, sql))
            con.execute(f"CREATE OR REPLACE TABLE {stage['id']} AS SELECT * FROM labelled")
            con.unregister("labelled")
        else:
            con.execute(f"CREATE OR REPLACE TABLE {stage['id']} AS {sql}")
        timings[stage["id"]] = round(time.perf_counter() - began, 3)
    print(json.dumps({"total_s": round(time.perf_counter() - total, 3), "stages": timings}))


if __name__ == "__main__":
    main()
