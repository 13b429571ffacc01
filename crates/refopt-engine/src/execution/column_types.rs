//! Column types and their Arrow types: the one [`ColumnType`] serves the types datasets declare
//! (`name: type` in a pipeline's `required_columns`) and the role contracts of stage outputs.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use refopt_spec::ColumnType;

/// Whether data of Arrow type `found` satisfies a declared type (any width or encoding of the
/// same kind: `string` accepts Utf8, LargeUtf8, Utf8View and dictionaries of them).
pub fn matches(declared: ColumnType, found: &DataType) -> bool {
    match (declared, found) {
        (_, DataType::Dictionary(_, value)) => matches(declared, value),
        (ColumnType::String, t) => {
            matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        }
        (ColumnType::Int64, t) => t.is_integer(),
        (ColumnType::Float64 | ColumnType::Money, t) => {
            t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
        }
        (ColumnType::Bool, t) => *t == DataType::Boolean,
        (ColumnType::Timestamp, t) => matches!(t, DataType::Timestamp(..)),
        (ColumnType::Date, t) => matches!(t, DataType::Date32 | DataType::Date64),
    }
}

/// How stages read a money column: exact cents, summed without rounding in any order (a
/// `SUM` widens it to `DECIMAL(28, 2)`).
pub const MONEY: DataType = DataType::Decimal128(18, 2);

/// `array` (a money column or sum: decimal, or float rounded to the cent) as exact amounts;
/// null rows are `None`. Beyond the range of [`Money`] (±9.2·10^16) an amount saturates.
pub fn money_values(
    array: &datafusion::arrow::array::ArrayRef,
) -> Result<Vec<Option<refopt_plan::Money>>, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Decimal128Type;
    let cents = datafusion::arrow::compute::cast(array, &role_type(ColumnType::Money))?;
    let cents = cents.as_primitive::<Decimal128Type>();
    Ok((0..cents.len())
        .map(|i| {
            cents
                .is_valid(i)
                .then(|| refopt_plan::Money::from_cents_saturating(cents.value(i)))
        })
        .collect())
}

/// The Arrow type `refopt validate` plans SQL with for a declared type: what DataFusion reads
/// from Parquet (strings as `Utf8View`), so planning sees the same coercions as a run.
pub fn arrow_type(declared: ColumnType) -> DataType {
    match declared {
        ColumnType::String => DataType::Utf8View,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Money => MONEY,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Date => DataType::Date32,
    }
}

/// The Arrow type a role column is cast to when the engine reads a stage's output.
pub fn role_type(column: ColumnType) -> DataType {
    match column {
        ColumnType::String => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        // Sums of money: the widest decimal with the money scale.
        ColumnType::Money => DataType::Decimal128(38, 2),
        other => arrow_type(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_any_width() {
        assert!(matches(ColumnType::String, &DataType::Utf8View));
        assert!(matches(ColumnType::Int64, &DataType::Int32));
        assert!(!matches(ColumnType::Int64, &DataType::Utf8));
        assert!(matches(
            ColumnType::Timestamp,
            &DataType::Timestamp(TimeUnit::Nanosecond, None)
        ));
        assert!(!matches(
            ColumnType::Date,
            &arrow_type(ColumnType::Timestamp)
        ));
        assert!(matches(
            ColumnType::String,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        ));
    }
}
