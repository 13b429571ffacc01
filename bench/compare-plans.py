#!/usr/bin/env python3
# usage: bench/compare-plans.py BEFORE.json AFTER.json   (exit 1 when a section differs)
"""Compares two plans section by section. Ignored: what differs between any two runs (run id,
creation and task times, the flagged-referrals URL named after the run id). Floats may differ
by 1e-9 relative: refopt's money is f64 summed in scan order, so two runs of the *same* binary
differ in the last digits (issue 28). Everything else must be equal."""
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
VOLATILE = {"run_id", "created_at", "started_at", "finished_at", "duration_ms", "flagged_referrals_url"}
def walk(x, y, path, st):
    if isinstance(x, float) or isinstance(y, float):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1.0):
            st["close" if x != y else "equal"] += 1
        else:
            st["bad"].append(f"{path}: {x} != {y}")
    elif isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if k in VOLATILE: continue
            if k not in x or k not in y: st["bad"].append(f"{path}.{k}: only in one plan")
            else: walk(x[k], y[k], f"{path}.{k}", st)
    elif isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y): st["bad"].append(f"{path}: {len(x)} items != {len(y)}")
        else:
            for i, (u, v) in enumerate(zip(x, y)): walk(u, v, f"{path}[{i}]", st)
    elif x == y: st["equal"] += 1
    else: st["bad"].append(f"{path}: {str(x)[:80]} != {str(y)[:80]}")
total_bad = 0
for key in [k for k in a if k not in VOLATILE]:
    st = {"equal": 0, "close": 0, "bad": []}
    walk(a[key], b.get(key), key, st)
    verdict = "identical" if not st["bad"] and not st["close"] else ("same (floats within 1e-9)" if not st["bad"] else "DIFFERS")
    print(f"  {key:16} {verdict:28} {st['equal']} values equal, {st['close']} floats within 1e-9, {len(st['bad'])} differ")
    for l in st["bad"][:10]: print("     ", l)
    total_bad += len(st["bad"])
sys.exit(1 if total_bad else 0)
