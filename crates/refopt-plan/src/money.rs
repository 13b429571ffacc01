//! Exact money: an amount in the currency's minor units (cents), written to plan JSON as a
//! decimal string with two places (`"4788033.73"`), so a plan says to the cent what the data
//! sums to, whatever the order the engine added it in.
//!
//! Plans before schema 1.2 wrote money as JSON numbers; those still read (rounded to the cent).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Minor units per major unit (cents per dollar): refopt's money has two decimal places.
pub const MINOR_UNITS: i64 = 100;

/// An exact amount of money, in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    /// Cents from a wider integer (a decimal sum's unscaled value), saturating at the range
    /// of [`Money`] (±9.2·10^16 in major units).
    pub fn from_cents_saturating(cents: i128) -> Money {
        Money(cents.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    /// The amount as a float, for ratios and charts (not for sums).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / MINOR_UNITS as f64
    }

    /// The nearest cent of a float amount; `None` when it is not finite or out of range.
    pub fn from_f64_rounded(amount: f64) -> Option<Money> {
        let cents = (amount * MINOR_UNITS as f64).round();
        // i64::MAX as f64 rounds up to 2^63, which is out of range itself.
        (cents.is_finite() && cents.abs() < 9.2e18).then_some(Money(cents as i64))
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        self.0 += other.0;
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        Money(self.0 - other.0)
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    /// `-12.30`: always two decimal places.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let unit = MINOR_UNITS as u64;
        write!(f, "{sign}{}.{:02}", abs / unit, abs % unit)
    }
}

/// Why a money string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an amount with at most two decimal places (e.g. \"12.30\")")]
pub struct MoneyParseError(String);

impl FromStr for Money {
    type Err = MoneyParseError;

    fn from_str(text: &str) -> Result<Money, MoneyParseError> {
        let error = || MoneyParseError(text.to_string());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || fraction.len() > 2 || !all_digits(whole) || !all_digits(fraction) {
            return Err(error());
        }
        let whole: i128 = whole.parse().map_err(|_| error())?;
        let fraction: i128 = format!("{fraction:0<2}").parse().map_err(|_| error())?;
        let cents = whole * i128::from(MINOR_UNITS) + fraction;
        let cents = if negative { -cents } else { cents };
        i64::try_from(cents).map(Money).map_err(|_| error())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// A decimal string (schema 1.2 on), or a number: an older plan's float money, or a
    /// decimal the engine read from a stage's output (rounded to the cent).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Number(f64),
        }
        match Written::deserialize(deserializer)? {
            Written::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Written::Number(n) => Money::from_f64_rounded(n)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not an amount of money"))),
        }
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An exact amount in the currency's major unit with two decimal places, as a string (\"4788033.73\"). Plans before schema 1.2 wrote a JSON number.",
            "type": "string",
            "pattern": "^-?[0-9]+\\.[0-9]{2}$"
        })
    }
}

/// The names of the plan's money fields, read from its JSON Schema (every property whose
/// schema is [`Money`]).
fn money_field_names() -> &'static std::collections::BTreeSet<String> {
    static NAMES: std::sync::OnceLock<std::collections::BTreeSet<String>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        fn walk(schema: &serde_json::Value, names: &mut std::collections::BTreeSet<String>) {
            match schema {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                        for (name, property) in properties {
                            if property.to_string().contains("#/$defs/Money") {
                                names.insert(name.clone());
                            }
                        }
                    }
                    map.values().for_each(|v| walk(v, names));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, names)),
                _ => {}
            }
        }
        let mut names = std::collections::BTreeSet::new();
        walk(&crate::plan_json_schema(), &mut names);
        names
    })
}

/// The plan as JSON with its money fields as numbers (major units) instead of strings: how
/// scripts (the playbook) see money, so `revenue * 0.1` works as it always did.
pub fn plan_with_money_as_numbers(plan: &crate::Plan) -> serde_json::Value {
    fn walk(value: &mut serde_json::Value, names: &std::collections::BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if let serde_json::Value::String(text) = v
                        && names.contains(key)
                        && let Ok(money) = text.parse::<Money>()
                        && let Some(number) = serde_json::Number::from_f64(money.to_f64())
                    {
                        *v = serde_json::Value::Number(number);
                    } else {
                        walk(v, names);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, names)),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(plan).expect("a plan serializes");
    walk(&mut value, money_field_names());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_to_the_cent() {
        for (text, cents) in [
            ("0.00", 0),
            ("12.30", 1230),
            ("-0.05", -5),
            ("4788033.73", 478803373),
        ] {
            let money: Money = text.parse().unwrap();
            assert_eq!(money.cents(), cents);
            assert_eq!(money.to_string(), text);
            let json = serde_json::to_string(&money).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), money);
        }
        assert_eq!("7".parse::<Money>().unwrap().to_string(), "7.00");
        assert_eq!("7.5".parse::<Money>().unwrap().to_string(), "7.50");
        for bad in [
            "",
            "-",
            "1.234",
            "1,00",
            "abc",
            "1e3",
            ".5",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad}");
        }
    }

    #[test]
    fn older_float_money_reads_rounded_to_the_cent() {
        let money: Money = serde_json::from_str("4788033.729999999").unwrap();
        assert_eq!(money.to_string(), "4788033.73");
        assert!(serde_json::from_str::<Money>("1e300").is_err());
    }

    #[test]
    fn scripts_see_every_money_field_as_a_number() {
        let names = money_field_names();
        for name in [
            "revenue",
            "payout_cost",
            "payouts",
            "amount",
            "unpaid",
            "paid",
        ] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        let mut plan = crate::Plan::default();
        plan.risk.payouts_at_risk.unpaid = Money::from_cents(1234);
        let value = plan_with_money_as_numbers(&plan);
        assert_eq!(
            value["risk"]["payouts_at_risk"]["unpaid"],
            serde_json::json!(12.34)
        );
        assert_eq!(
            value["risk"]["payouts_at_risk"]["paid"],
            serde_json::json!(0.0)
        );
    }

    proptest::proptest! {
        #[test]
        fn every_amount_reads_back(cents in proptest::num::i64::ANY) {
            let money = Money::from_cents(cents);
            let json = serde_json::to_string(&money).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), money);
        }
    }
}
