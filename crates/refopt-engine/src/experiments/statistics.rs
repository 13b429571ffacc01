//! The statistics behind experiment decisions, as pure functions over summary numbers:
//! two-proportion z-test, Welch's t-test, chi-square sample-ratio check, Holm and
//! Benjamini–Hochberg adjustments, and sample sizes. Distributions come from `statrs`.
//! docs/experiments.md states each method and its assumptions; tests/e2e/experiments.rs checks
//! them against statsmodels and scipy.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// A treatment-vs-control test result.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    pub control_value: f64,
    pub variant_value: f64,
    pub absolute_lift: f64,
    pub absolute_ci: [f64; 2],
    pub relative_lift: Option<f64>,
    pub relative_ci: Option<[f64; 2]>,
    pub statistic: f64,
    pub degrees_of_freedom: Option<f64>,
    pub p_value: f64,
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// The two-sided critical value z_{1-alpha/2}.
pub fn z_critical(alpha: f64) -> f64 {
    standard_normal().inverse_cdf(1.0 - alpha / 2.0)
}

/// Two-sided p-value of a standard normal statistic.
fn normal_p_value(z: f64) -> f64 {
    2.0 * standard_normal().cdf(-z.abs())
}

/// Units with the event out of units, control then variant.
///
/// p-value: pooled two-proportion z-test. Absolute CI: unpooled Wald. Relative CI: log of the
/// ratio (Katz), exponentiated, minus 1 (needs events in both groups).
pub fn two_proportions(
    control_events: u64,
    control_units: u64,
    variant_events: u64,
    variant_units: u64,
    alpha: f64,
) -> Option<TestResult> {
    if control_units == 0 || variant_units == 0 {
        return None;
    }
    let (xc, nc, xt, nt) = (
        control_events as f64,
        control_units as f64,
        variant_events as f64,
        variant_units as f64,
    );
    let (pc, pt) = (xc / nc, xt / nt);
    let diff = pt - pc;
    let pooled = (xc + xt) / (nc + nt);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt)).sqrt();
    let (statistic, p_value) = if se_pooled > 0.0 {
        let z = diff / se_pooled;
        (z, normal_p_value(z))
    } else {
        (0.0, 1.0)
    };
    let z = z_critical(alpha);
    let se = (pc * (1.0 - pc) / nc + pt * (1.0 - pt) / nt).sqrt();
    let (relative_lift, relative_ci) = if xc > 0.0 && xt > 0.0 {
        let log_ratio = (pt / pc).ln();
        let se_log = (1.0 / xt - 1.0 / nt + 1.0 / xc - 1.0 / nc).sqrt();
        (
            Some(pt / pc - 1.0),
            Some([
                (log_ratio - z * se_log).exp() - 1.0,
                (log_ratio + z * se_log).exp() - 1.0,
            ]),
        )
    } else if xc > 0.0 {
        (Some(pt / pc - 1.0), None)
    } else {
        (None, None)
    };
    Some(TestResult {
        control_value: pc,
        variant_value: pt,
        absolute_lift: diff,
        absolute_ci: [diff - z * se, diff + z * se],
        relative_lift,
        relative_ci,
        statistic,
        degrees_of_freedom: None,
        p_value,
    })
}

/// Per-unit mean and sample variance of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSummary {
    pub units: u64,
    pub mean: f64,
    pub variance: f64,
}

/// Welch's t-test of variant vs control means, with the Welch–Satterthwaite degrees of freedom.
/// Absolute CI from the t distribution; relative CI by the delta method (normal).
pub fn welch(control: MeanSummary, variant: MeanSummary, alpha: f64) -> Option<TestResult> {
    if control.units < 2 || variant.units < 2 {
        return None;
    }
    let (nc, nt) = (control.units as f64, variant.units as f64);
    let (wc, wt) = (control.variance / nc, variant.variance / nt);
    let se = (wc + wt).sqrt();
    let diff = variant.mean - control.mean;
    let (statistic, degrees_of_freedom, p_value, half_width) = if se > 0.0 {
        let t = diff / se;
        let df = (wc + wt).powi(2) / (wc.powi(2) / (nc - 1.0) + wt.powi(2) / (nt - 1.0));
        let dist = StudentsT::new(0.0, 1.0, df).ok()?;
        let p = 2.0 * dist.cdf(-t.abs());
        let t_crit = dist.inverse_cdf(1.0 - alpha / 2.0);
        (t, Some(df), p, t_crit * se)
    } else {
        (0.0, None, 1.0, 0.0)
    };
    let (relative_lift, relative_ci) = if control.mean != 0.0 {
        let (mc, mt) = (control.mean, variant.mean);
        let rel = mt / mc - 1.0;
        let se_rel = (variant.variance / (nt * mc.powi(2))
            + mt.powi(2) * control.variance / (nc * mc.powi(4)))
        .sqrt();
        let z = z_critical(alpha);
        (Some(rel), Some([rel - z * se_rel, rel + z * se_rel]))
    } else {
        (None, None)
    };
    Some(TestResult {
        control_value: control.mean,
        variant_value: variant.mean,
        absolute_lift: diff,
        absolute_ci: [diff - half_width, diff + half_width],
        relative_lift,
        relative_ci,
        statistic,
        degrees_of_freedom,
        p_value,
    })
}

/// Chi-square goodness of fit of observed counts against expected shares: (statistic, df,
/// p-value).
pub fn chi_square_goodness_of_fit(observed: &[u64], expected_shares: &[f64]) -> (f64, u32, f64) {
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    let share_total: f64 = expected_shares.iter().sum();
    let statistic: f64 = observed
        .iter()
        .zip(expected_shares)
        .map(|(&o, &s)| {
            let e = total * s / share_total;
            if e > 0.0 {
                (o as f64 - e).powi(2) / e
            } else {
                0.0
            }
        })
        .sum();
    let df = observed.len().saturating_sub(1) as u32;
    let p = match ChiSquared::new(f64::from(df.max(1))) {
        Ok(dist) if total > 0.0 => dist.sf(statistic),
        _ => 1.0,
    };
    (statistic, df, p)
}

/// Holm–Bonferroni adjusted p-values, in the input order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the input order.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running
            .min(p_values[i] * m as f64 / (rank + 1) as f64)
            .min(1.0);
        adjusted[i] = running;
    }
    adjusted
}

pub use refopt_spec::experiments::units_for_proportion;

/// Units per variant to detect a relative lift `mde` of a mean `baseline` whose per-unit
/// variance is `variance` (normal approximation, equal groups and variances).
pub fn units_for_mean(
    baseline: f64,
    variance: f64,
    mde: f64,
    alpha: f64,
    power: f64,
) -> Option<u64> {
    let delta = baseline * mde;
    if delta == 0.0 || variance.is_nan() || variance <= 0.0 {
        return None;
    }
    let za = z_critical(alpha);
    let zb = standard_normal().inverse_cdf(power);
    Some((2.0 * (za + zb).powi(2) * variance / delta.powi(2)).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
    }

    #[test]
    fn two_proportions_matches_textbook_numbers() {
        // 200/1000 vs 250/1000: pooled p = 0.225, se = sqrt(.225*.775*.002) = 0.018675...
        let r = two_proportions(200, 1000, 250, 1000, 0.05).unwrap();
        assert!(close(r.absolute_lift, 0.05));
        let z = 0.05 / (0.225f64 * 0.775 * 0.002).sqrt();
        assert!(close(r.statistic, z));
        assert!(r.p_value < 0.01 && r.p_value > 0.005, "{}", r.p_value);
        let [lo, hi] = r.relative_ci.unwrap();
        assert!(lo < 0.25 && 0.25 < hi);
    }

    #[test]
    fn welch_equal_groups_is_not_significant() {
        let g = MeanSummary {
            units: 500,
            mean: 10.0,
            variance: 4.0,
        };
        let r = welch(g, g, 0.05).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert!(close(r.degrees_of_freedom.unwrap(), 998.0));
    }

    #[test]
    fn corrections_keep_order_and_bounds() {
        let p = [0.01, 0.04, 0.03, 0.5];
        assert_eq!(holm(&p), vec![0.04, 0.09, 0.09, 0.5]);
        let bh = benjamini_hochberg(&p);
        assert!(close(bh[0], 0.04) && close(bh[1], 0.16 / 3.0) && close(bh[2], 0.16 / 3.0));
        assert_eq!(bh[3], 0.5);
    }

    #[test]
    fn srm_flags_a_55_45_split_of_a_50_50_design() {
        let (_, df, p) = chi_square_goodness_of_fit(&[5500, 4500], &[0.5, 0.5]);
        assert_eq!(df, 1);
        assert!(p < 1e-20);
        let (_, _, p) = chi_square_goodness_of_fit(&[5010, 4990], &[0.5, 0.5]);
        assert!(p > 0.5);
    }

    #[test]
    fn sample_size_grows_as_the_effect_shrinks() {
        let big = units_for_proportion(0.2, 0.2, 0.05, 0.8).unwrap();
        let small = units_for_proportion(0.2, 0.05, 0.05, 0.8).unwrap();
        assert!(small > 10 * big, "{small} vs {big}");
        // Classic figure: 0.20 -> 0.24 needs about 1,680 per group.
        assert!((1600..1800).contains(&units_for_proportion(0.2, 0.2, 0.05, 0.8).unwrap()));
    }
}
