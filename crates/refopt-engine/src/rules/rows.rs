//! Arrow rows as Rhai values: what rule scripts see as `row`.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use rhai::{Dynamic, Map};

/// The columns of one batch, each cast once to the type scripts see (float, integer —
/// timestamps as microseconds —, boolean or string), ready to turn rows into Rhai maps.
pub struct RowReader {
    columns: Vec<(rhai::ImmutableString, Column)>,
}

enum Column {
    Float(ArrayRef),
    Int(ArrayRef),
    Bool(ArrayRef),
    Text(ArrayRef),
    Unsupported,
}

impl RowReader {
    /// Prepares `batch`; with `only`, rows carry just those columns (the ones a script reads),
    /// which is much cheaper for wide tables.
    pub fn new(batch: &RecordBatch, only: Option<&std::collections::BTreeSet<String>>) -> Self {
        let columns = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| only.is_none_or(|o| o.contains(f.name())))
            .map(|(f, array)| (f.name().as_str().into(), Column::of(array)))
            .collect();
        Self { columns }
    }

    /// Row `row` as a Rhai object map; null as `()`.
    pub fn map(&self, row: usize) -> Map {
        let mut map = Map::new();
        for (name, column) in &self.columns {
            map.insert(name.clone().into(), column.value(row));
        }
        map
    }
}

impl Column {
    fn of(array: &ArrayRef) -> Column {
        let to = |t: &DataType| cast(array, t).ok();
        match array.data_type() {
            DataType::Boolean => Column::Bool(array.clone()),
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _) => {
                to(&DataType::Float64).map_or(Column::Unsupported, Column::Float)
            }
            t if t.is_integer() || matches!(t, DataType::Timestamp(_, _) | DataType::Date32) => {
                to(&DataType::Int64).map_or(Column::Unsupported, Column::Int)
            }
            _ => to(&DataType::Utf8).map_or(Column::Unsupported, Column::Text),
        }
    }

    fn value(&self, row: usize) -> Dynamic {
        match self {
            Column::Unsupported => Dynamic::UNIT,
            Column::Float(a) | Column::Int(a) | Column::Bool(a) | Column::Text(a)
                if a.is_null(row) =>
            {
                Dynamic::UNIT
            }
            Column::Float(a) => Dynamic::from_float(a.as_primitive::<Float64Type>().value(row)),
            Column::Int(a) => Dynamic::from_int(a.as_primitive::<Int64Type>().value(row)),
            Column::Bool(a) => Dynamic::from_bool(a.as_boolean().value(row)),
            Column::Text(a) => Dynamic::from(a.as_string::<i32>().value(row).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn rows_carry_typed_values_and_nulls() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Float64, true),
                Field::new("c", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![Some(2.5), Some(3.0)])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        let reader = RowReader::new(&batch, None);
        let row = reader.map(0);
        assert_eq!(row["a"].as_int().unwrap(), 1);
        assert_eq!(row["b"].as_float().unwrap(), 2.5);
        assert_eq!(row["c"].clone().into_string().unwrap(), "x");
        assert!(reader.map(1)["a"].is_unit());
        let only: std::collections::BTreeSet<String> = ["b".to_string()].into();
        let narrow = RowReader::new(&batch, Some(&only)).map(1);
        assert_eq!(narrow.len(), 1);
    }
}
