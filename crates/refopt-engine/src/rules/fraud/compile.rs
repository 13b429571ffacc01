//! Rule expressions compiled to DataFusion: a Rhai `expression` that is a pure expression over
//! `row` fields and `params` becomes a DataFusion [`Expr`], so the rule runs as a vectorized
//! filter inside the engine (and its sensitivity sweep as extra columns of the same scan)
//! instead of row by row in the interpreter.
//!
//! What compiles: `let` bindings followed by one boolean expression built from literals,
//! `row.<column>`, `params.<name>`, comparisons, arithmetic, `!`, `&&`, `||`, `??`, `in` over a
//! literal list or a string, the string methods `contains`/`starts_with`/`ends_with`, and the
//! sandbox helpers `is_null`, `coalesce`, `ratio` and `ip_network`. Anything else (statements,
//! loops, functions, indexing, timestamps, other helpers) is reported as [`NotCompiled`] and the
//! rule runs in the interpreter, exactly as before.
//!
//! The compiled form gives the interpreter's answer on every row the interpreter can evaluate:
//! columns are read with the types the interpreter sees (decimals as floats, see
//! [`crate::rules::rows`]); `==`/`!=` with a null follow Rhai (`() == ()` is true, a null equals
//! nothing else); ordering comparisons with a null are false. Where the interpreter would stop
//! the rule with an error (arithmetic on a null, an integer divided by zero, a null used as a
//! boolean), the compiled rule treats the value as null and the comparison as false.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::functions::expr_fn::{
    abs, coalesce, ends_with, greatest, isnan, nullif, starts_with, strpos,
};
use datafusion::logical_expr::{BinaryExpr, Operator, ScalarUDF, when};
use datafusion::prelude::{Expr, cast, lit, not};
use rhai::{Expr as RhaiExpr, FnCallExpr, Position, Stmt};

/// Why an expression stays in the interpreter.
#[derive(Debug, Clone, PartialEq)]
pub struct NotCompiled {
    pub reason: String,
    /// Line and column in the rule's expression, when known.
    pub at: Option<(usize, usize)>,
}

impl std::fmt::Display for NotCompiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => {
                write!(
                    f,
                    "{} (expression line {line}, column {column})",
                    self.reason
                )
            }
            None => f.write_str(&self.reason),
        }
    }
}

fn refuse<T>(reason: impl Into<String>, pos: Position) -> Result<T, NotCompiled> {
    Err(NotCompiled {
        reason: reason.into(),
        at: refopt_spec::sandbox::position(pos),
    })
}

/// The type a value has in the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Text,
    /// The literal `()`.
    Unit,
}

impl Kind {
    fn numeric(self) -> bool {
        matches!(self, Kind::Int | Kind::Float)
    }
}

/// A compiled sub-expression: its DataFusion form, its interpreter type, and whether it can be
/// null (`()` in the interpreter) on some row.
#[derive(Debug, Clone)]
struct Value {
    expr: Expr,
    kind: Kind,
    nullable: bool,
}

impl Value {
    fn known(expr: Expr, kind: Kind) -> Self {
        Self {
            expr,
            kind,
            nullable: false,
        }
    }

    fn unit() -> Self {
        Self {
            expr: lit(ScalarValue::Null),
            kind: Kind::Unit,
            nullable: true,
        }
    }

    /// As a float (ints are widened, as the interpreter does in mixed arithmetic).
    fn float(self) -> Expr {
        match self.kind {
            Kind::Int => cast(self.expr, DataType::Float64),
            _ => self.expr,
        }
    }
}

/// Compiles a rule's expression. `params` are the rule's (possibly scaled) params; `schema` is
/// the feature table's; `ip_network` is the UDF of the same name.
pub fn compile(
    ast: &rhai::AST,
    params: &BTreeMap<String, f64>,
    schema: &DFSchema,
    ip_network: &ScalarUDF,
) -> Result<Expr, NotCompiled> {
    if ast.has_functions() {
        return refuse("the expression defines functions", Position::NONE);
    }
    let mut compiler = Compiler {
        params,
        schema,
        ip_network,
        bindings: HashMap::new(),
    };
    let mut last = None;
    for stmt in ast.statements() {
        last = None;
        match stmt {
            Stmt::Noop(_) => {}
            Stmt::Var(binding, _, _) => {
                let (name, value, _) = binding.as_ref();
                let value = compiler.expr(value)?;
                compiler.bindings.insert(name.name.to_string(), value);
            }
            Stmt::Expr(e) => last = Some(compiler.expr(e)?),
            Stmt::FnCall(call, pos) => last = Some(compiler.call(call, *pos)?),
            other => return refuse("a statement other than `let`", other.position()),
        }
    }
    match last {
        Some(value) if value.kind == Kind::Bool => Ok(compiler.truth(value, Position::NONE)?),
        Some(_) => refuse("the expression's value is not a boolean", Position::NONE),
        None => refuse("the expression does not end in a value", Position::NONE),
    }
}

struct Compiler<'a> {
    params: &'a BTreeMap<String, f64>,
    schema: &'a DFSchema,
    ip_network: &'a ScalarUDF,
    bindings: HashMap<String, Value>,
}

impl Compiler<'_> {
    fn expr(&mut self, e: &RhaiExpr) -> Result<Value, NotCompiled> {
        match e {
            RhaiExpr::BoolConstant(b, _) => Ok(Value::known(lit(*b), Kind::Bool)),
            RhaiExpr::IntegerConstant(i, _) => Ok(Value::known(lit(*i), Kind::Int)),
            RhaiExpr::FloatConstant(f, _) => Ok(Value::known(lit(**f), Kind::Float)),
            RhaiExpr::StringConstant(s, _) => Ok(Value::known(lit(s.to_string()), Kind::Text)),
            RhaiExpr::CharConstant(c, _) => Ok(Value::known(lit(c.to_string()), Kind::Text)),
            RhaiExpr::Unit(_) => Ok(Value::unit()),
            RhaiExpr::DynamicConstant(d, pos) => constant(d, *pos),
            RhaiExpr::Variable(v, _, pos) => match self.bindings.get(v.1.as_str()) {
                Some(value) => Ok(value.clone()),
                None => refuse(format!("`{}` used other than as `.field`", v.1), *pos),
            },
            RhaiExpr::Dot(binary, _, pos) => self.dot(&binary.lhs, &binary.rhs, *pos),
            RhaiExpr::And(terms, pos) | RhaiExpr::Or(terms, pos) => {
                let and = matches!(e, RhaiExpr::And(..));
                let mut out: Option<Expr> = None;
                for term in terms.iter() {
                    let term = self.expr(term)?;
                    let term = self.truth(term, *pos)?;
                    out = Some(match out {
                        None => term,
                        Some(acc) if and => acc.and(term),
                        Some(acc) => acc.or(term),
                    });
                }
                match out {
                    Some(expr) => Ok(Value::known(expr, Kind::Bool)),
                    None => refuse("an empty `&&`/`||`", *pos),
                }
            }
            RhaiExpr::Coalesce(terms, pos) => {
                let mut values = terms.iter().map(|t| self.expr(t));
                let first = values.next().transpose()?;
                let mut acc = first.unwrap_or_else(Value::unit);
                for value in values {
                    acc = coalesce_values(acc, value?, *pos)?;
                }
                Ok(acc)
            }
            RhaiExpr::FnCall(call, pos) => self.call(call, *pos),
            other => refuse(
                "an expression form the compiler does not know",
                other.position(),
            ),
        }
    }

    /// `lhs.rhs`: `row.column`, `params.name`, or a method call on a value.
    fn dot(&mut self, lhs: &RhaiExpr, rhs: &RhaiExpr, pos: Position) -> Result<Value, NotCompiled> {
        if let RhaiExpr::Variable(v, _, _) = lhs
            && matches!(v.1.as_str(), "row" | "params")
            && !self.bindings.contains_key(v.1.as_str())
        {
            let from_row = v.1.as_str() == "row";
            return match rhs {
                RhaiExpr::Property(p, pos) => self.field(from_row, &p.2, *pos),
                // `row.email.contains("x")`: the chain nests to the right.
                RhaiExpr::Dot(inner, _, pos) => match &inner.lhs {
                    RhaiExpr::Property(p, ppos) => {
                        let base = self.field(from_row, &p.2, *ppos)?;
                        self.method(base, &inner.rhs, *pos)
                    }
                    _ => refuse("an indexed or computed field", *pos),
                },
                _ => refuse(format!("`{}` used other than as `.field`", v.1), pos),
            };
        }
        let base = self.expr(lhs)?;
        self.method(base, rhs, pos)
    }

    fn field(&self, from_row: bool, name: &str, pos: Position) -> Result<Value, NotCompiled> {
        if !from_row {
            return match self.params.get(name) {
                Some(v) => Ok(Value::known(lit(*v), Kind::Float)),
                None => refuse(format!("unknown param `{name}`"), pos),
            };
        }
        let column = Column::from_name(name);
        let Ok(field) = self.schema.field_with_unqualified_name(name) else {
            return refuse(format!("the table has no column `{name}`"), pos);
        };
        let expr = Expr::Column(column);
        let (expr, kind) = match field.data_type() {
            DataType::Boolean => (expr, Kind::Bool),
            DataType::Float16 | DataType::Float32 | DataType::Decimal128(_, _) => {
                (cast(expr, DataType::Float64), Kind::Float)
            }
            DataType::Float64 => (expr, Kind::Float),
            DataType::Int64 => (expr, Kind::Int),
            t if t.is_integer() => (cast(expr, DataType::Int64), Kind::Int),
            DataType::Utf8 => (expr, Kind::Text),
            DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                (cast(expr, DataType::Utf8), Kind::Text)
            }
            other => return refuse(format!("column `{name}` has type {other}"), pos),
        };
        Ok(Value {
            expr,
            kind,
            nullable: field.is_nullable(),
        })
    }

    /// `base.method(args)`.
    fn method(&mut self, base: Value, rhs: &RhaiExpr, pos: Position) -> Result<Value, NotCompiled> {
        let RhaiExpr::MethodCall(call, pos) = rhs else {
            return refuse("a property of a computed value", pos);
        };
        let mut args = vec![base];
        for a in call.args.iter() {
            args.push(self.expr(a)?);
        }
        self.function(&call.name, args, *pos)
    }

    fn call(&mut self, call: &FnCallExpr, pos: Position) -> Result<Value, NotCompiled> {
        let name = call.name.as_str();
        // `x in [a, b]` is `contains([a, b], x)`.
        if name == "contains"
            && let [list, needle] = call.args.as_slice()
        {
            // The list as written, or as the optimizer folded it into one constant.
            let items = match list {
                RhaiExpr::Array(items, _) => Some(
                    items
                        .iter()
                        .map(|i| self.expr(i))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                RhaiExpr::DynamicConstant(d, pos) if d.is_array() => Some(
                    d.clone()
                        .into_array()
                        .unwrap_or_default()
                        .iter()
                        .map(|i| constant(i, *pos))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => None,
            };
            if let Some(items) = items {
                let needle = self.expr(needle)?;
                return in_list(needle, items, pos);
            }
        }
        let args = call
            .args
            .iter()
            .map(|a| self.expr(a))
            .collect::<Result<Vec<_>, _>>()?;
        self.function(name, args, pos)
    }

    /// An operator or helper applied to compiled arguments.
    fn function(
        &mut self,
        name: &str,
        mut args: Vec<Value>,
        pos: Position,
    ) -> Result<Value, NotCompiled> {
        match (name, args.len()) {
            ("==" | "!=" | "<" | "<=" | ">" | ">=", 2) => {
                let b = args.pop().unwrap_or_else(Value::unit);
                let a = args.pop().unwrap_or_else(Value::unit);
                compare(name, a, b, pos)
            }
            ("+" | "-" | "*" | "/" | "%", 2) => {
                let b = args.pop().unwrap_or_else(Value::unit);
                let a = args.pop().unwrap_or_else(Value::unit);
                arithmetic(name, a, b, pos)
            }
            ("-", 1) => {
                let a = args.pop().unwrap_or_else(Value::unit);
                if !a.kind.numeric() {
                    return refuse("`-` of a non-number", pos);
                }
                Ok(Value {
                    expr: Expr::Negative(Box::new(a.expr)),
                    ..a
                })
            }
            ("!", 1) => {
                let a = args.pop().unwrap_or_else(Value::unit);
                let truth = self.truth(a, pos)?;
                Ok(Value::known(not(truth), Kind::Bool))
            }
            ("is_null", 1) => {
                let a = args.pop().unwrap_or_else(Value::unit);
                let expr = match (a.kind, a.nullable) {
                    (Kind::Unit, _) => lit(true),
                    (_, false) => lit(false),
                    (_, true) => a.expr.is_null(),
                };
                Ok(Value::known(expr, Kind::Bool))
            }
            ("coalesce", 2) => {
                let b = args.pop().unwrap_or_else(Value::unit);
                let a = args.pop().unwrap_or_else(Value::unit);
                coalesce_values(a, b, pos)
            }
            ("ratio", 2) => {
                let den = args.pop().unwrap_or_else(Value::unit);
                let num = args.pop().unwrap_or_else(Value::unit);
                // The helper takes floats; the interpreter finds no `ratio` for other types.
                if num.kind != Kind::Float || den.kind != Kind::Float {
                    return refuse("`ratio` of values that are not both floats", pos);
                }
                let expr = when(
                    den.expr.clone().eq(lit(0.0)),
                    lit(ScalarValue::Float64(None)),
                )
                .otherwise(num.expr / den.expr)
                .map_err(|e| NotCompiled {
                    reason: e.to_string(),
                    at: None,
                })?;
                Ok(Value {
                    expr,
                    kind: Kind::Float,
                    nullable: true,
                })
            }
            ("ip_network", 2) => {
                let bits = args.pop().unwrap_or_else(Value::unit);
                let ip = args.pop().unwrap_or_else(Value::unit);
                if bits.kind != Kind::Int || !matches!(ip.kind, Kind::Text | Kind::Unit) {
                    return refuse("`ip_network` of something other than (text, integer)", pos);
                }
                if ip.kind == Kind::Unit {
                    return Ok(Value::unit());
                }
                Ok(Value {
                    expr: self.ip_network.call(vec![ip.expr, bits.expr]),
                    kind: Kind::Text,
                    nullable: true,
                })
            }
            ("contains" | "starts_with" | "ends_with", 2) => {
                let needle = args.pop().unwrap_or_else(Value::unit);
                let haystack = args.pop().unwrap_or_else(Value::unit);
                if haystack.kind != Kind::Text || needle.kind != Kind::Text {
                    return refuse(format!("`{name}` of something other than text"), pos);
                }
                let nullable = haystack.nullable || needle.nullable;
                let expr = match name {
                    "contains" => strpos(haystack.expr, needle.expr).gt(lit(0i64)),
                    "starts_with" => starts_with(haystack.expr, needle.expr),
                    _ => ends_with(haystack.expr, needle.expr),
                };
                Ok(Value {
                    expr,
                    kind: Kind::Bool,
                    nullable,
                })
            }
            _ => refuse(
                format!(
                    "`{name}` with {} argument(s) has no compiled form",
                    args.len()
                ),
                pos,
            ),
        }
    }

    /// A value used as a condition. A null (where the interpreter would stop with an error) is
    /// false.
    fn truth(&self, value: Value, pos: Position) -> Result<Expr, NotCompiled> {
        if value.kind != Kind::Bool {
            return refuse("a condition that is not a boolean", pos);
        }
        Ok(if value.nullable {
            coalesce(vec![value.expr, lit(false)])
        } else {
            value.expr
        })
    }
}

fn constant(d: &rhai::Dynamic, pos: Position) -> Result<Value, NotCompiled> {
    if let Ok(b) = d.as_bool() {
        Ok(Value::known(lit(b), Kind::Bool))
    } else if let Ok(i) = d.as_int() {
        Ok(Value::known(lit(i), Kind::Int))
    } else if let Ok(f) = d.as_float() {
        Ok(Value::known(lit(f), Kind::Float))
    } else if d.is_string() {
        Ok(Value::known(lit(d.to_string()), Kind::Text))
    } else if d.is_unit() {
        Ok(Value::unit())
    } else {
        refuse(format!("a constant of type {}", d.type_name()), pos)
    }
}

/// Comparison with Rhai's rules: numbers compare as floats when mixed; `()` equals only `()`;
/// ordering with `()` is false.
fn compare(op: &str, a: Value, b: Value, pos: Position) -> Result<Value, NotCompiled> {
    let comparable = (a.kind == b.kind && a.kind != Kind::Unit)
        || (a.kind.numeric() && b.kind.numeric())
        || a.kind == Kind::Unit
        || b.kind == Kind::Unit;
    if !comparable {
        return refuse("a comparison of values of different types", pos);
    }
    if a.kind == Kind::Bool && !matches!(op, "==" | "!=") {
        return refuse("an ordering of booleans", pos);
    }
    // With `()` on one side the answer is known from the other side's nullness.
    if a.kind == Kind::Unit || b.kind == Kind::Unit {
        let other = if a.kind == Kind::Unit { &b } else { &a };
        let both_unit = a.kind == Kind::Unit && b.kind == Kind::Unit;
        let is_unit = if both_unit {
            lit(true)
        } else if other.nullable {
            other.expr.clone().is_null()
        } else {
            lit(false)
        };
        let expr = match op {
            "==" => is_unit,
            "!=" => not(is_unit),
            _ => lit(false),
        };
        return Ok(Value::known(expr, Kind::Bool));
    }
    let nullable = a.nullable || b.nullable;
    let both_null = a.expr.clone().is_null().and(b.expr.clone().is_null());
    let expr = if a.kind == Kind::Float || b.kind == Kind::Float {
        float_comparison(op, a.float(), b.float())
    } else {
        let operator = match op {
            "==" => Operator::Eq,
            "!=" => Operator::NotEq,
            "<" => Operator::Lt,
            "<=" => Operator::LtEq,
            ">" => Operator::Gt,
            _ => Operator::GtEq,
        };
        Expr::BinaryExpr(BinaryExpr::new(
            Box::new(a.expr),
            operator,
            Box::new(b.expr),
        ))
    };
    // With a null on either side: `()` equals only `()`; orderings are false.
    let expr = match (nullable, op) {
        (false, _) => expr,
        (true, "==") => coalesce(vec![expr, both_null]),
        (true, "!=") => coalesce(vec![expr, not(both_null)]),
        (true, _) => coalesce(vec![expr, lit(false)]),
    };
    Ok(Value::known(expr, Kind::Bool))
}

/// Rhai's float comparison (checked build): two numbers within a relative `f64::EPSILON` of
/// each other are equal. With `m = 1` when `x * y == 0`, else `max(|x|, |y|)`: `x == y` is
/// `|x - y| / m <= ε`, `x > y` is `(x - y) / m > ε`, `x >= y` is `(x - y) / m > -ε` (`<`, `<=`
/// mirrored). A NaN difference compares false, as in Rust (Arrow orders NaN above every number).
fn float_comparison(op: &str, x: Expr, y: Expr) -> Expr {
    let scale = when((x.clone() * y.clone()).eq(lit(0.0)), lit(1.0))
        .otherwise(greatest(vec![abs(x.clone()), abs(y.clone())]))
        .unwrap_or_else(|_| lit(1.0));
    let difference = match op {
        "==" | "!=" => abs(x - y) / scale,
        ">" | ">=" => (x - y) / scale,
        _ => (y - x) / scale,
    };
    let epsilon = lit(f64::EPSILON);
    let outcome = match op {
        "==" => difference.clone().lt_eq(epsilon),
        "!=" | ">" | "<" => difference.clone().gt(epsilon),
        _ => difference.clone().gt(lit(-f64::EPSILON)),
    };
    outcome.and(not(isnan(difference)))
}

/// `+ - * / %` on numbers: integers stay integers (division truncates), mixed operands are
/// floats. An integer division or remainder by zero is null.
fn arithmetic(op: &str, a: Value, b: Value, pos: Position) -> Result<Value, NotCompiled> {
    if !a.kind.numeric() || !b.kind.numeric() {
        return refuse(format!("`{op}` of something other than numbers"), pos);
    }
    let kind = if a.kind == Kind::Int && b.kind == Kind::Int {
        Kind::Int
    } else {
        Kind::Float
    };
    let nullable = a.nullable || b.nullable || (kind == Kind::Int && matches!(op, "/" | "%"));
    let (l, r) = (a.float_if(kind), b.float_if(kind));
    let r = if kind == Kind::Int && matches!(op, "/" | "%") {
        nullif(r, lit(0i64))
    } else {
        r
    };
    let operator = match op {
        "+" => Operator::Plus,
        "-" => Operator::Minus,
        "*" => Operator::Multiply,
        "/" => Operator::Divide,
        _ => Operator::Modulo,
    };
    Ok(Value {
        expr: Expr::BinaryExpr(BinaryExpr::new(Box::new(l), operator, Box::new(r))),
        kind,
        nullable,
    })
}

impl Value {
    fn float_if(self, kind: Kind) -> Expr {
        if kind == Kind::Float {
            self.float()
        } else {
            self.expr
        }
    }
}

/// `coalesce(a, b)` / `a ?? b`: `b` where `a` is `()`. Both must have one type (the interpreter
/// returns either, so a mixed result has no single compiled type).
fn coalesce_values(a: Value, b: Value, pos: Position) -> Result<Value, NotCompiled> {
    if a.kind == Kind::Unit {
        return Ok(b);
    }
    if !a.nullable {
        return Ok(a);
    }
    if b.kind != a.kind && b.kind != Kind::Unit {
        return refuse("`coalesce` of values of different types", pos);
    }
    Ok(Value {
        expr: coalesce(vec![a.expr, b.expr]),
        kind: a.kind,
        nullable: b.nullable,
    })
}

/// `needle in [items]`: true when an item equals the needle (`==` rules; a null is in no list of
/// literals).
fn in_list(needle: Value, items: Vec<Value>, pos: Position) -> Result<Value, NotCompiled> {
    if items.iter().any(|i| i.nullable) {
        return refuse("`in` a list holding `()` or computed values", pos);
    }
    if needle.kind == Kind::Unit || items.is_empty() {
        return Ok(Value::known(lit(false), Kind::Bool));
    }
    let numeric = needle.kind.numeric() && items.iter().all(|i| i.kind.numeric());
    let same = items.iter().all(|i| i.kind == needle.kind);
    if !same && !numeric {
        return refuse("`in` a list of values of another type", pos);
    }
    let nullable = needle.nullable;
    let floats = needle.kind == Kind::Float || items.iter().any(|i| i.kind == Kind::Float);
    let expr = if floats {
        // Rhai's `in` compares with `==`, which for floats is tolerant.
        let x = needle.float();
        items
            .into_iter()
            .map(|i| float_comparison("==", x.clone(), i.float()))
            .reduce(Expr::or)
            .unwrap_or(lit(false))
    } else {
        needle
            .expr
            .in_list(items.into_iter().map(|i| i.expr).collect(), false)
    };
    let expr = if nullable {
        coalesce(vec![expr, lit(false)])
    } else {
        expr
    };
    Ok(Value::known(expr, Kind::Bool))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, RecordBatch,
        StringArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;
    use refopt_spec::sandbox;

    use super::*;
    use crate::rules::rows::RowReader;

    /// Rows with nulls, zeros, values a float-epsilon apart, NaN and infinities.
    fn batch() -> RecordBatch {
        let i = [
            Some(4),
            None,
            Some(0),
            Some(5),
            Some(-3),
            Some(2),
            Some(1),
            Some(4),
        ];
        let f = [
            Some(4.000000000000001),
            Some(0.5),
            None,
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(0.0),
            Some(1.0),
            Some(3.2),
        ];
        let d = [
            Some(150),
            Some(0),
            None,
            Some(-25),
            Some(1_000_000),
            Some(151),
            Some(1),
            Some(320),
        ];
        let s = [
            Some("abc"),
            None,
            Some(""),
            Some("xab"),
            Some("x"),
            Some("ab"),
            Some("AB"),
            Some("b"),
        ];
        let b = [
            Some(true),
            None,
            Some(false),
            Some(true),
            Some(false),
            Some(true),
            None,
            Some(false),
        ];
        let ip = [
            Some("10.0.0.7"),
            Some("not an ip"),
            None,
            Some("10.0.1.7"),
            Some("2001:db8:abcd:12::1"),
            Some("10.0.0.200"),
            Some("192.168.1.1"),
            Some("10.0.0.1"),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, true),
                Field::new("f", DataType::Float64, true),
                Field::new("d", DataType::Decimal128(18, 2), true),
                Field::new("s", DataType::Utf8, true),
                Field::new("b", DataType::Boolean, true),
                Field::new("ip", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(i.to_vec())),
                Arc::new(Float64Array::from(f.to_vec())),
                Arc::new(
                    Decimal128Array::from(d.to_vec())
                        .with_precision_and_scale(18, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(s.to_vec())),
                Arc::new(BooleanArray::from(b.to_vec())),
                Arc::new(StringArray::from(ip.to_vec())),
            ],
        )
        .unwrap()
    }

    fn params() -> BTreeMap<String, f64> {
        [("p".to_string(), 0.8), ("q".to_string(), 1.5)].into()
    }

    /// Every row's answer from the compiled expression (null as false) and from the
    /// interpreter (`None` where the interpreter stops with an error).
    async fn both(text: &str) -> Result<Vec<(bool, Option<bool>)>, NotCompiled> {
        let engine = sandbox::engine();
        let mut names = rhai::Scope::new();
        names.push("row", rhai::Map::new());
        names.push("params", rhai::Map::new());
        let ast = engine
            .compile_with_scope(&names, text)
            .expect("the test expression parses");
        let batch = batch();
        let ctx = SessionContext::new();
        ctx.register_batch("t", batch.clone()).unwrap();
        let df = ctx.table("t").await.unwrap();
        let udf = crate::execution::functions::ip_network();
        let expr = compile(&ast, &params(), df.schema(), &udf)?;
        let out = df.select(vec![expr.alias("r")]).unwrap().collect().await;
        let out = out.unwrap_or_else(|e| panic!("`{text}` failed in DataFusion: {e}"));
        let compiled: Vec<bool> = out
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_boolean().clone();
                (0..c.len()).map(move |r| c.is_valid(r) && c.value(r))
            })
            .collect();
        let reader = RowReader::new(&batch, None);
        let rhai_params: rhai::Map = params()
            .into_iter()
            .map(|(k, v)| (k.into(), rhai::Dynamic::from_float(v)))
            .collect();
        let interpreted = (0..batch.num_rows()).map(|row| {
            let mut scope = rhai::Scope::new();
            scope.push("params", rhai_params.clone());
            scope.push("row", reader.map(row));
            engine.eval_ast_with_scope::<bool>(&mut scope, &ast).ok()
        });
        Ok(compiled.into_iter().zip(interpreted).collect())
    }

    #[tokio::test]
    async fn compiled_expressions_agree_with_the_interpreter_on_every_row_it_evaluates() {
        let expressions = [
            "row.i > 3",
            "row.i >= 4 && row.i <= 4",
            "row.i == ()",
            "() != row.s",
            "row.f == 4.0",
            "row.f >= params.p * row.i",
            "row.f < row.i",
            "row.f != row.i",
            "row.d > params.q",
            "row.d * 2.0 >= 3.0 || row.d < 0.0",
            "!(row.d > 1.5)",
            "row.i / 2 == 1",
            "row.i % 3 == 0",
            "row.i > 100 && row.i / 0 == 1",
            "row.i != 0 && 10 / row.i > 2",
            "row.f / 0.0 > 1.0",
            "-row.f < 0.0",
            "row.i + 0.5 > 4",
            "is_null(row.s) || row.s.contains(\"ab\")",
            "!is_null(row.s) && row.s.starts_with(\"a\")",
            "!is_null(row.s) && row.s.ends_with(\"b\")",
            "row.s in [\"x\", \"ab\"]",
            "!(row.s in [\"x\", \"ab\"])",
            "\"ab\" in row.s",
            "row.i in [1, 2, 3]",
            "row.f in [0.5, 1]",
            "row.b == true",
            "row.b != false",
            "!is_null(row.b) && row.b",
            "ratio(row.f, row.d) > 0.5",
            "is_null(ratio(row.f, row.d))",
            "coalesce(row.i, 0) >= 2",
            "(row.i ?? 7) > 6",
            "ip_network(row.ip, 24) == \"10.0.0.0/24\"",
            "is_null(ip_network(row.ip, 16))",
            "let x = row.i * 2; let y = x + 1; y > 4 && row.s != \"b\"",
            "let big = !is_null(row.f) && row.f > 3.0;\n// a comment\nbig || row.i < 0",
            "row.s > \"a\"",
        ];
        for text in expressions {
            let rows = both(text)
                .await
                .unwrap_or_else(|e| panic!("`{text}` did not compile: {e}"));
            let evaluated = rows.iter().filter(|(_, i)| i.is_some()).count();
            assert!(
                evaluated > 0,
                "`{text}`: the interpreter failed on every row"
            );
            for (row, (compiled, interpreted)) in rows.iter().enumerate() {
                if let Some(interpreted) = interpreted {
                    assert_eq!(
                        compiled, interpreted,
                        "`{text}` row {row}: compiled {compiled}, interpreted {interpreted}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn where_the_interpreter_stops_the_compiled_rule_is_false() {
        // `params.p * ()` has no function in Rhai; the compiled form treats it as null.
        let rows = both("row.f >= params.p * row.i").await.unwrap();
        assert_eq!(rows[1].1, None, "row 1 has a null `i`");
        assert!(!rows[1].0);
    }

    #[tokio::test]
    async fn what_has_no_compiled_form_is_named() {
        for (text, reason) in [
            ("if row.i > 1 { true } else { false }", "a statement"),
            ("row.s.len() > 2", "`len`"),
            ("row.missing > 1", "no column `missing`"),
            ("params.nope > 1", "unknown param `nope`"),
            ("row.i > \"a\"", "different types"),
            ("row.i + 1", "not a boolean"),
            ("fn f(x) { x > 1 } f(row.i)", "defines functions"),
            ("let m = row; m.i > 1", "`row` used other than"),
            ("row.i > 1 && row.f", "not a boolean"),
        ] {
            match both(text).await {
                Ok(_) => panic!("`{text}` compiled"),
                Err(e) => assert!(e.reason.contains(reason), "`{text}`: {e}"),
            }
        }
    }
}
