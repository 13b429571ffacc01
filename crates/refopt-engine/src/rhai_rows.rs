//! Arrow rows as Rhai values: what rule scripts see as `row`.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use rhai::{Dynamic, Map};

/// A row as a Rhai object map: strings, integers, floats, booleans; null as `()`.
pub fn row_map(batch: &RecordBatch, row: usize) -> Map {
    let mut map = Map::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        map.insert(field.name().as_str().into(), value(array, row));
    }
    map
}

fn value(array: &ArrayRef, row: usize) -> Dynamic {
    if array.is_null(row) {
        return Dynamic::UNIT;
    }
    match array.data_type() {
        DataType::Boolean => Dynamic::from_bool(array.as_boolean().value(row)),
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            match cast(&array.slice(row, 1), &DataType::Float64) {
                Ok(a) => Dynamic::from_float(a.as_primitive::<Float64Type>().value(0)),
                Err(_) => Dynamic::UNIT,
            }
        }
        t if t.is_integer() || matches!(t, DataType::Timestamp(_, _) | DataType::Date32) => {
            match cast(&array.slice(row, 1), &DataType::Int64) {
                Ok(a) => Dynamic::from_int(a.as_primitive::<Int64Type>().value(0)),
                Err(_) => Dynamic::UNIT,
            }
        }
        _ => match cast(&array.slice(row, 1), &DataType::Utf8) {
            Ok(a) => Dynamic::from(a.as_string::<i32>().value(0).to_string()),
            Err(_) => Dynamic::UNIT,
        },
    }
}
