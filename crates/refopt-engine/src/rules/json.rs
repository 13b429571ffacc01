//! Arrow record batches to JSON objects (for plan sections that carry table rows).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::json::ArrayWriter;

use crate::error::EngineError;

/// Every row of `batches` as a JSON object keyed by column name (nulls omitted).
pub fn batches_to_objects(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, EngineError> {
    let mut buffer = Vec::new();
    {
        let mut writer = ArrayWriter::new(&mut buffer);
        for b in batches {
            writer
                .write(b)
                .map_err(|e| EngineError::DataFusion(e.into()))?;
        }
        writer
            .finish()
            .map_err(|e| EngineError::DataFusion(e.into()))?;
    }
    if buffer.is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value = serde_json::from_slice(&buffer).map_err(|e| {
        EngineError::DataFusion(datafusion::error::DataFusionError::External(Box::new(e)))
    })?;
    Ok(match value {
        serde_json::Value::Array(rows) => rows,
        other => vec![other],
    })
}
