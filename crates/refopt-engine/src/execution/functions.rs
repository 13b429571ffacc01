//! SQL functions refopt adds to DataFusion, so pipeline SQL and rule scripts share helpers:
//! `ip_network(ip, bits)` (the sandbox's function of the same name, see
//! [`refopt_spec::sandbox::ip_network`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers refopt's SQL functions with a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ip_network());
}

/// The `ip_network(ip, bits)` function.
pub fn ip_network() -> ScalarUDF {
    ScalarUDF::from(IpNetwork::new())
}

/// `ip_network(ip, bits)`: the network of an address as `address/prefix` (NULL for text that is
/// not an address).
#[derive(Debug, PartialEq, Eq, Hash)]
struct IpNetwork {
    signature: Signature,
}

impl IpNetwork {
    fn new() -> Self {
        let strings = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8];
        Self {
            signature: Signature::one_of(
                strings
                    .into_iter()
                    .map(|s| TypeSignature::Exact(vec![s, DataType::Int64]))
                    .collect(),
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for IpNetwork {
    fn name(&self) -> &str {
        "ip_network"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [ip, bits] = args.args.as_slice() else {
            return exec_err!("ip_network takes two arguments (ip, bits)");
        };
        let ColumnarValue::Scalar(ScalarValue::Int64(bits)) = bits else {
            return exec_err!("ip_network: bits must be a constant integer such as 24");
        };
        let Some(bits) = *bits else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        match ip {
            ColumnarValue::Scalar(s) => {
                let text = match s {
                    ScalarValue::Utf8(v) | ScalarValue::Utf8View(v) | ScalarValue::LargeUtf8(v) => {
                        v.as_deref()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                    text.and_then(|t| refopt_spec::sandbox::ip_network(t, bits)),
                )))
            }
            ColumnarValue::Array(array) => {
                let strings = cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 16);
                for v in strings {
                    out.append_option(v.and_then(|t| refopt_spec::sandbox::ip_network(t, bits)));
                }
                Ok(ColumnarValue::Array(
                    Arc::new(out.finish()) as Arc<dyn Array>
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_network_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql("SELECT ip_network(ip, 24) AS n FROM (VALUES ('10.1.2.3'), ('x'), (NULL)) t(ip)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let n = batches[0].column(0).as_string::<i32>();
        assert_eq!(n.value(0), "10.1.2.0/24");
        assert!(n.is_null(1) && n.is_null(2));
    }
}
