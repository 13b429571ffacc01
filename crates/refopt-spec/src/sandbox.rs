//! The Rhai sandbox every rule script runs in: bounded operations, call depth, expression depth
//! and string/array/map sizes; no `eval`, no modules, no file or network access (Rhai has none
//! unless a host registers it, and refopt registers only the pure helpers below).

use std::collections::{BTreeMap, BTreeSet};

use rhai::{Dynamic, Engine, EvalAltResult, Position};

/// Limits of the sandbox (documented in `docs/rule-authoring.md`).
pub mod limits {
    /// Operations one evaluation may perform (an infinite loop stops here).
    pub const MAX_OPERATIONS: u64 = 200_000;
    /// Nested function calls.
    pub const MAX_CALL_LEVELS: usize = 32;
    /// Nesting depth of expressions (global, in functions).
    pub const MAX_EXPR_DEPTH: (usize, usize) = (64, 32);
    /// Bytes in one string.
    pub const MAX_STRING_SIZE: usize = 64 * 1024;
    /// Elements in one array.
    pub const MAX_ARRAY_SIZE: usize = 10_000;
    /// Entries in one object map.
    pub const MAX_MAP_SIZE: usize = 10_000;
}

/// A Rhai engine configured as refopt's sandbox, with the documented helper functions.
pub fn engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(limits::MAX_OPERATIONS);
    engine.set_max_call_levels(limits::MAX_CALL_LEVELS);
    engine.set_max_expr_depths(limits::MAX_EXPR_DEPTH.0, limits::MAX_EXPR_DEPTH.1);
    engine.set_max_string_size(limits::MAX_STRING_SIZE);
    engine.set_max_array_size(limits::MAX_ARRAY_SIZE);
    engine.set_max_map_size(limits::MAX_MAP_SIZE);
    engine.set_max_modules(0);
    engine.disable_symbol("eval");
    engine.set_strict_variables(true);
    // Output from scripts goes nowhere: rules have no side effects.
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    // SIGTERM/SIGINT end every evaluation in progress at its next operation.
    engine.on_progress(|_| crate::stop::requested().then(|| Dynamic::from(crate::stop::TOKEN)));

    engine.register_fn("pct_change", pct_change);
    engine.register_fn("zscore", zscore);
    engine.register_fn("ratio", ratio);
    engine.register_fn("is_null", |v: Dynamic| v.is_unit());
    engine.register_fn("units_per_variant", units_per_variant);
    engine.register_fn(
        "coalesce",
        |v: Dynamic, default: Dynamic| if v.is_unit() { default } else { v },
    );
    engine.register_fn("ip_network", |ip: Dynamic, bits: i64| {
        ip.into_immutable_string()
            .ok()
            .and_then(|ip| ip_network(&ip, bits))
            .map_or(Dynamic::UNIT, Dynamic::from)
    });
    engine
}

/// The network an IP address belongs to, as `address/prefix`: `ip_network("203.0.113.57", 24)`
/// is `"203.0.113.0/24"`. IPv6 addresses keep twice the bits (a /24 of IPv4 is compared with a
/// /48 site of IPv6, a /16 with a /32 allocation). `None` for text that is not an address or a
/// prefix outside 0..=32. The same function is `ip_network(ip, bits)` in the pipeline's SQL.
pub fn ip_network(ip: &str, bits: i64) -> Option<String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let bits = u32::try_from(bits).ok().filter(|b| *b <= 32)?;
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            Some(format!("{}/{bits}", Ipv4Addr::from(u32::from(v4) & mask)))
        }
        IpAddr::V6(v6) => {
            let bits = bits * 2;
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            Some(format!("{}/{bits}", Ipv6Addr::from(u128::from(v6) & mask)))
        }
    }
}

/// Relative change `(new - old) / old`; `()` unless `old` is a positive number (see
/// [`refopt_plan::relative_change`]).
pub fn pct_change(old: f64, new: f64) -> Dynamic {
    refopt_plan::relative_change(new, old).map_or(Dynamic::UNIT, Dynamic::from_float)
}

/// `(x - mean) / sd`; `()` when `sd` is zero.
pub fn zscore(x: f64, mean: f64, sd: f64) -> Dynamic {
    if sd == 0.0 {
        Dynamic::UNIT
    } else {
        Dynamic::from_float((x - mean) / sd)
    }
}

/// Units per variant an experiment needs to detect a relative lift `mde` of a rate `baseline`
/// (two-sided test at `alpha`, given power); `()` when the inputs make no sense.
pub fn units_per_variant(baseline: f64, mde: f64, alpha: f64, power: f64) -> Dynamic {
    if !(alpha > 0.0 && alpha < 1.0 && power > 0.0 && power < 1.0) {
        return Dynamic::UNIT;
    }
    match crate::experiments::units_for_proportion(baseline, mde, alpha, power) {
        Some(n) => Dynamic::from_int(i64::try_from(n).unwrap_or(i64::MAX)),
        None => Dynamic::UNIT,
    }
}

/// `num / den`; `()` when `den` is zero.
pub fn ratio(num: f64, den: f64) -> Dynamic {
    if den == 0.0 {
        Dynamic::UNIT
    } else {
        Dynamic::from_float(num / den)
    }
}

/// Line and column of a Rhai position (1-based), if known.
pub fn position(pos: Position) -> Option<(usize, usize)> {
    Some((pos.line()?, pos.position().unwrap_or(1)))
}

/// A one-line description of a Rhai error, without its position (reported separately).
pub fn describe(e: &EvalAltResult) -> String {
    let text = e.to_string();
    match text.rfind(" (line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A compiled script file.
#[derive(Debug, Clone)]
pub struct Script {
    pub file: std::path::PathBuf,
    pub ast: std::sync::Arc<rhai::AST>,
}

/// Compiles a `.rhai` file in the sandbox with `variables` in scope (as empty maps), turning a
/// syntax error into a located error.
pub fn compile_file(
    file: &std::path::Path,
    variables: &[&str],
) -> Result<Script, crate::Diagnostic> {
    use crate::diagnostic::{Diagnostic, Location};
    let text = std::fs::read_to_string(file).map_err(|e| {
        Diagnostic::new(
            Location::file_start(file),
            format!("cannot read script: {e}"),
        )
        .code(crate::diagnostic::Code::Unreadable)
    })?;
    let mut scope = rhai::Scope::new();
    for v in variables {
        scope.push(*v, rhai::Map::new());
    }
    let ast = engine().compile_with_scope(&scope, &text).map_err(|e| {
        let (line, column) = position(e.position()).unwrap_or((1, 1));
        Diagnostic::new(
            Location {
                file: file.to_path_buf(),
                line: line as u64,
                column: column as u64,
            },
            format!("Rhai syntax error: {}", e.0),
        )
        .code(crate::diagnostic::Code::Script)
    })?;
    Ok(Script {
        file: file.to_path_buf(),
        ast: std::sync::Arc::new(ast),
    })
}

/// Where a runtime error happened in a script file: `file:line:column`.
pub fn runtime_location(script: &Script, e: &EvalAltResult) -> String {
    match position(e.position()) {
        Some((line, column)) => format!("{}:{line}:{column}", script.file.display()),
        None => script.file.display().to_string(),
    }
}

/// What a script reads and calls, each with the (line, column) of its first use in the script.
#[derive(Debug, Default)]
pub struct ScriptUsage {
    /// `row.<field>` reads.
    pub row_fields: BTreeMap<String, (u64, u64)>,
    /// `params.<field>` reads.
    pub params_fields: BTreeMap<String, (u64, u64)>,
    /// Functions and methods called (operators and the script's own functions excluded).
    pub calls: BTreeMap<String, (u64, u64)>,
    /// `row` is used other than as `row.<field>` (indexed, passed or copied): every column is
    /// needed.
    pub row_whole: bool,
}

/// What a compiled script reads from `row` and `params` and which functions it calls.
pub fn usage(ast: &rhai::AST) -> ScriptUsage {
    use rhai::{ASTNode, Expr};
    let defined: BTreeSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut usage = ScriptUsage::default();
    let at = |p: rhai::Position| {
        (
            p.line().unwrap_or(0) as u64,
            p.position().unwrap_or(0) as u64,
        )
    };
    let record_call = |call: &rhai::FnCallExpr, pos: rhai::Position, usage: &mut ScriptUsage| {
        let name = call.name.to_string();
        let is_operator = call.op_token.is_some()
            || !name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_');
        if !is_operator && !defined.contains(&name) {
            usage.calls.entry(name).or_insert(at(pos));
        }
    };
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) = path.last() {
            record_call(call, *pos, &mut usage);
        }
        if let Some(ASTNode::Expr(Expr::Variable(var, _, _))) = path.last()
            && var.1.as_str() == "row"
        {
            let under_property = matches!(
                path.len().checked_sub(2).and_then(|i| path.get(i)),
                Some(ASTNode::Expr(Expr::Dot(b, _, _)))
                    if matches!(&b.lhs, Expr::Variable(v, _, _) if v.1.as_str() == "row")
                        && matches!(&b.rhs, Expr::Property(..))
            );
            if !under_property {
                usage.row_whole = true;
            }
        }
        if let Some(ASTNode::Expr(expr)) = path.last() {
            match expr {
                Expr::Dot(binary, _, _) => {
                    if let (Expr::Variable(var, _, _), Expr::Property(prop, pos)) =
                        (&binary.lhs, &binary.rhs)
                    {
                        let field = prop.2.to_string();
                        match var.1.as_str() {
                            "row" => {
                                usage.row_fields.entry(field).or_insert(at(*pos));
                            }
                            "params" => {
                                usage.params_fields.entry(field).or_insert(at(*pos));
                            }
                            _ => {}
                        }
                    }
                }
                Expr::FnCall(call, pos) | Expr::MethodCall(call, pos) => {
                    record_call(call, *pos, &mut usage);
                }
                _ => {}
            }
        }
        true
    });
    usage
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn ip_network_masks_both_families() {
        assert_eq!(ip_network("203.0.113.57", 24).unwrap(), "203.0.113.0/24");
        assert_eq!(ip_network("203.0.113.57", 16).unwrap(), "203.0.0.0/16");
        assert_eq!(ip_network("203.0.113.57", 32).unwrap(), "203.0.113.57/32");
        assert_eq!(ip_network("203.0.113.57", 0).unwrap(), "0.0.0.0/0");
        assert_eq!(
            ip_network("2001:db8:abcd:12::1", 24).unwrap(),
            "2001:db8:abcd::/48"
        );
        assert_eq!(ip_network("not an ip", 24), None);
        assert_eq!(ip_network("203.0.113.57", 33), None);
        let engine = engine();
        let r: String = engine.eval(r#"ip_network("198.51.100.7", 24)"#).unwrap();
        assert_eq!(r, "198.51.100.0/24");
        assert!(
            engine
                .eval::<Dynamic>("ip_network((), 24)")
                .unwrap()
                .is_unit()
        );
    }

    fn usage_of(script: &str) -> ScriptUsage {
        let mut scope = rhai::Scope::new();
        scope.push("row", rhai::Map::new());
        usage(&engine().compile_with_scope(&scope, script).unwrap())
    }

    #[test]
    fn row_fields_and_whole_row_use() {
        let u = usage_of("row.a > 1 && is_null(row.b)");
        assert_eq!(u.row_fields.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(!u.row_whole);
        assert!(usage_of("row[\"a\"] > 1").row_whole);
        assert!(usage_of("let r = row; r.a > 1").row_whole);
    }
}
