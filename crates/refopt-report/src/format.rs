//! Number formatting shared by the templates (as filters), the charts and the insights, so a
//! value reads the same everywhere it appears.

/// `27701` -> `27,701`; negative numbers keep their sign.
pub fn count(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// USD without cents from $10,000 up, with cents below.
pub fn money(value: f64) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    let v = value.abs();
    if v >= 10_000.0 {
        format!("{sign}${}", count(v))
    } else {
        let cents = format!("{v:.2}");
        let (whole, frac) = cents.split_once('.').unwrap_or((&cents, "00"));
        format!(
            "{sign}${}.{frac}",
            count(whole.parse::<f64>().unwrap_or(0.0))
        )
    }
}

/// A share as a percentage: `0.03455` -> `3.45%` (two significant decimals below 10%).
pub fn pct(value: f64) -> String {
    let p = value * 100.0;
    if p.abs() < 10.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A relative change with its sign: `-0.107` -> `-10.7%`, `0.0` -> `±0.0%`.
pub fn signed_pct(value: f64) -> String {
    let p = value * 100.0;
    if p.abs() < 0.05 {
        "±0.0%".to_string()
    } else {
        format!("{p:+.1}%")
    }
}

/// A plain number: integers without decimals, others with up to two.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        count(value)
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A difference of two rates in percentage points, signed: `0.012` -> `+1.20 pts`.
pub fn signed_points(value: f64) -> String {
    format!("{:+.2} pts", value * 100.0)
}

/// A p-value: three decimals, `<0.001` below that.
pub fn p_value(value: f64) -> String {
    if value < 0.001 {
        "<0.001".to_string()
    } else {
        format!("{value:.3}")
    }
}

pub use refopt_plan::relative_change;

/// Escapes GitHub-flavored Markdown control characters (emphasis, code, links, tables) and
/// HTML so data renders as text: a partner
/// named `*[x](y)*` stays literal. Newlines become spaces (a table cell or list item stays one
/// line).
pub fn markdown_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // No @mentions or #references in PR/issue comments: a zero-width space breaks them.
            '@' | '#' => {
                out.push(c);
                out.push('\u{200b}');
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// [`markdown_text`] cut to at most `max` characters of output (never inside an escape), with
/// `…` when cut: the bound holds whatever the input's markup.
pub fn markdown_clip(value: &str, max: usize) -> String {
    let escaped: Vec<String> = value
        .chars()
        .map(|c| markdown_text(&c.to_string()))
        .collect();
    let total: usize = escaped.iter().map(|e| e.chars().count()).sum();
    if total <= max {
        return escaped.concat();
    }
    let mut out = String::new();
    let mut used = 0;
    for e in escaped {
        let n = e.chars().count();
        if used + n > max.saturating_sub(1) {
            break;
        }
        out.push_str(&e);
        used += n;
    }
    out.push('…');
    out
}

/// At most `max` characters, with `…` when cut.
pub fn clip(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        value.to_string()
    } else {
        let mut s: String = value.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_money_group_thousands() {
        assert_eq!(count(27701.0), "27,701");
        assert_eq!(count(-1234567.0), "-1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(money(1236.0), "$1,236.00");
        assert_eq!(money(309500.34), "$309,500");
        assert_eq!(money(-12.5), "-$12.50");
    }

    #[test]
    fn percentages_keep_sign_and_precision() {
        assert_eq!(pct(0.034548), "3.45%");
        assert_eq!(pct(0.315), "31.5%");
        assert_eq!(signed_pct(-0.107), "-10.7%");
        assert_eq!(signed_pct(0.0001), "±0.0%");
        assert_eq!(
            relative_change(110.0, 100.0).map(|v| (v * 1000.0).round()),
            Some(100.0)
        );
        assert_eq!(relative_change(1.0, 0.0), None);
    }

    #[test]
    fn markdown_text_neutralizes_markup() {
        assert_eq!(
            markdown_text("<script>alert(1)</script> *x* | [a](b)"),
            "&lt;script&gt;alert(1)&lt;/script&gt; \\*x\\* \\| \\[a\\](b)"
        );
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(markdown_clip("a<b", 5), "a&lt…".replace("&lt…", "…"));
        assert_eq!(markdown_clip("a<b", 6), "a&lt;b");
        assert!(markdown_clip(&"&".repeat(100), 50).chars().count() <= 50);
        assert_eq!(
            markdown_text("@org/team #12"),
            "@\u{200b}org/team #\u{200b}12"
        );
        assert_eq!(signed_points(-0.0123), "-1.23 pts");
        assert_eq!(clip("abc", 4), "abc");
    }
}
