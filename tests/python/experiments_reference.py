"""Independent reference for refopt's experiment statistics.

Reads the generated Parquet files with DuckDB (plain row selects), builds every unit's outcomes
in Python, and computes the tests with statsmodels and scipy:
  proportions: pooled two-proportion z-test (statsmodels proportions_ztest), Wald CI of the
               difference and log (Katz) CI of the ratio (statsmodels confint_proportions_2indep)
  means:       Welch's t-test and its CI (scipy ttest_ind(equal_var=False)); relative lift CI by
               the delta method with scipy's normal quantile
  SRM:         chi-square goodness of fit against the declared shares (scipy chisquare)
  correction:  Holm or Benjamini-Hochberg over each experiment's comparisons
               (statsmodels multipletests)

Usage: experiments_reference.py DATA_ROOT WINDOW_START WINDOW_END SPEC_JSON
SPEC_JSON: [{"id", "control", "variants": {name: share}, "metrics": [...], "alpha",
             "correction"}]
Prints JSON: {experiment_id: {"units": {variant: n}, "multi_exposed", "srm_chi_square",
              "srm_p_value", "comparisons": [{variant, metric, control_value, variant_value,
              absolute_lift, absolute_ci, relative_lift, relative_ci, statistic, p_value,
              p_adjusted}]}}
"""

import json
import math
import sys
from collections import defaultdict
from datetime import datetime, timezone

import duckdb
import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

PROPORTIONS = {"referred", "qualified", "won", "fraud_flag_rate"}


def rows(con, root, table, columns):
    path = f"{root}/{table}/*/*.parquet"
    return con.execute(
        f"SELECT {', '.join(columns)} FROM read_parquet('{path}', hive_partitioning = false)"
    ).fetchall()


def main():
    root, start, end, spec_json = sys.argv[1:5]
    # Timestamps are compared as epoch microseconds (UTC).
    start = int(datetime.fromisoformat(start).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000
    end = int(datetime.fromisoformat(end).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000
    spec = json.loads(spec_json)
    con = duckdb.connect()

    exposures = defaultdict(lambda: {"variants": set(), "at": None})
    for exp, unit, variant, at in rows(
        con, root, "experiment_assignments", ["experiment_id", "unit_id", "variant", "epoch_us(assigned_at)"]
    ):
        if at >= end:
            continue
        e = exposures[(exp, unit)]
        e["variants"].add(variant)
        e["at"] = at if e["at"] is None else min(e["at"], at)

    referrals_by_referrer = defaultdict(list)
    for rid, referrer, created in rows(con, root, "referrals", ["referral_id", "referrer_id", "epoch_us(created_at)"]):
        if start <= created < end:
            referrals_by_referrer[referrer].append((rid, created))

    qualified, won, revenue = set(), set(), defaultdict(float)
    for rid, stage, at, amount in rows(con, root, "conversions", ["referral_id", "stage", "epoch_us(occurred_at)", "amount"]):
        if at >= end or at < start:
            continue
        if stage in ("qualified", "opportunity", "won"):
            qualified.add(rid)
        if stage == "won":
            won.add(rid)
            revenue[rid] += amount or 0.0
    payout = defaultdict(float)
    for rid, kind, status, amount, at in rows(
        con, root, "payouts", ["referral_id", "recipient_type", "status", "amount", "epoch_us(created_at)"]
    ):
        if start <= at < end and kind == "referrer" and status != "reversed":
            payout[rid] += amount
    flagged = set(
        rid for rid, at in rows(con, root, "fraud_flags", ["referral_id", "epoch_us(flagged_at)"]) if start <= at < end
    )

    out = {}
    for s in spec:
        exp_id, control = s["id"], s["control"]
        per_variant = defaultdict(lambda: defaultdict(list))
        multi = 0
        for (exp, unit), e in exposures.items():
            if exp != exp_id:
                continue
            if len(e["variants"]) > 1:
                multi += 1
                continue
            variant = next(iter(e["variants"]))
            mine = [rid for rid, created in referrals_by_referrer.get(unit, []) if created >= e["at"]]
            values = per_variant[variant]
            values["referred"].append(1.0 if mine else 0.0)
            values["qualified"].append(1.0 if any(r in qualified for r in mine) else 0.0)
            values["won"].append(1.0 if any(r in won for r in mine) else 0.0)
            values["fraud_flag_rate"].append(1.0 if any(r in flagged for r in mine) else 0.0)
            values["qualified_per_unit"].append(float(sum(1 for r in mine if r in qualified)))
            values["revenue_per_unit"].append(sum(revenue[r] for r in mine))
            values["payout_cost_per_unit"].append(sum(payout[r] for r in mine))

        names = sorted(s["variants"])
        observed = [len(per_variant[v]["referred"]) for v in names]
        total = sum(observed)
        expected = [total * s["variants"][v] for v in names]
        chi = stats.chisquare(observed, expected)

        alpha = s["alpha"]
        comparisons = []
        for variant in names:
            if variant == control:
                continue
            for metric in s["metrics"]:
                c = np.array(per_variant[control][metric])
                t = np.array(per_variant[variant][metric])
                if metric in PROPORTIONS:
                    xc, nc, xt, nt = int(c.sum()), len(c), int(t.sum()), len(t)
                    z, p = proportions_ztest([xt, xc], [nt, nc])
                    lo, hi = confint_proportions_2indep(xt, nt, xc, nc, method="wald", compare="diff", alpha=alpha)
                    rlo, rhi = confint_proportions_2indep(xt, nt, xc, nc, method="log", compare="ratio", alpha=alpha)
                    cv, tv = xc / nc, xt / nt
                    comparisons.append(
                        dict(variant=variant, metric=metric, control_value=cv, variant_value=tv,
                             absolute_lift=tv - cv, absolute_ci=[lo, hi], relative_lift=tv / cv - 1,
                             relative_ci=[rlo - 1, rhi - 1], statistic=z, p_value=p)
                    )
                else:
                    res = stats.ttest_ind(t, c, equal_var=False)
                    ci = res.confidence_interval(confidence_level=1 - alpha)
                    mc, mt = c.mean(), t.mean()
                    vc, vt = c.var(ddof=1), t.var(ddof=1)
                    rel = mt / mc - 1
                    se_rel = math.sqrt(vt / (len(t) * mc**2) + mt**2 * vc / (len(c) * mc**4))
                    zq = stats.norm.ppf(1 - alpha / 2)
                    comparisons.append(
                        dict(variant=variant, metric=metric, control_value=mc, variant_value=mt,
                             absolute_lift=mt - mc, absolute_ci=[ci.low, ci.high], relative_lift=rel,
                             relative_ci=[rel - zq * se_rel, rel + zq * se_rel],
                             statistic=res.statistic, p_value=res.pvalue)
                    )
        method = {"holm": "holm", "benjamini_hochberg": "fdr_bh"}[s["correction"]]
        adjusted = multipletests([c["p_value"] for c in comparisons], method=method)[1]
        for c, a in zip(comparisons, adjusted):
            c["p_adjusted"] = a
        out[exp_id] = {
            "units": dict(zip(names, observed)),
            "multi_exposed": multi,
            "srm_chi_square": chi.statistic,
            "srm_p_value": chi.pvalue,
            "comparisons": comparisons,
        }
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
