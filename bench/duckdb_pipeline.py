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
import yaml


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
    for stage in pipeline["stages"]:
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
        con.execute(f"CREATE OR REPLACE TABLE {stage['id']} AS {sql}")
        timings[stage["id"]] = round(time.perf_counter() - began, 3)
    print(json.dumps({"total_s": round(time.perf_counter() - total, 3), "stages": timings}))


if __name__ == "__main__":
    main()
