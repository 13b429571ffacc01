//! Connected components for `kind: components` stages: the stage's SQL yields the edges of a
//! graph (string columns `a` and `b`), streamed into a union-find over compact integer ids; the
//! result has one row per node on an edge with its component (the smallest node id in it, so
//! labels do not depend on input order) and the component's size.
//!
//! Memory: each distinct node is held twice as text (the id map and the name list) plus about
//! 40 bytes of map and union-find entries; edges are not kept. Only nodes that are on an edge
//! are held, e.g. referrers sharing a device or card with another referrer.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::DataFrame;
use futures::StreamExt;

/// Nodes by integer id and the union-find forest over them.
#[derive(Default)]
struct Forest {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    parent: Vec<u32>,
}

impl Forest {
    fn node(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        self.parent.push(id);
        id
    }

    fn root(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let up = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = up;
            x = up;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[high as usize] = low;
        }
    }
}

/// The schema of a components stage's table.
pub fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("node", DataType::Utf8, false),
        Field::new("component", DataType::Utf8, false),
        Field::new("component_nodes", DataType::Int64, false),
    ]))
}

/// Checks that an edge query returns columns `a` and `b`.
pub fn check_edges(edges: &DataFrame) -> Result<()> {
    let columns: Vec<&str> = edges
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    if columns.contains(&"a") && columns.contains(&"b") {
        Ok(())
    } else {
        Err(DataFusionError::Plan(format!(
            "a components stage's SQL must return the edges as columns `a` and `b` (got {})",
            columns.join(", ")
        )))
    }
}

/// Runs the edge query and labels every node on an edge with its component.
pub async fn components(edges: DataFrame) -> Result<RecordBatch> {
    check_edges(&edges)?;
    let edges = edges.select_columns(&["a", "b"])?;
    let mut forest = Forest::default();
    let mut stream = edges.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let a = cast(batch.column(0), &DataType::Utf8)?;
        let b = cast(batch.column(1), &DataType::Utf8)?;
        for (a, b) in a.as_string::<i32>().iter().zip(b.as_string::<i32>()) {
            if let (Some(a), Some(b)) = (a, b) {
                let (a, b) = (forest.node(a), forest.node(b));
                forest.union(a, b);
            }
        }
    }
    let n = forest.names.len();
    let roots: Vec<u32> = (0..n as u32).map(|x| forest.root(x)).collect();
    let mut label: HashMap<u32, (usize, i64)> = HashMap::new();
    for (node, root) in roots.iter().enumerate() {
        let entry = label.entry(*root).or_insert((node, 0));
        if forest.names[node] < forest.names[entry.0] {
            entry.0 = node;
        }
        entry.1 += 1;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|x, y| forest.names[*x].cmp(&forest.names[*y]));
    let node: StringArray = order.iter().map(|i| Some(&forest.names[*i])).collect();
    let component: StringArray = order
        .iter()
        .map(|i| Some(&forest.names[label[&roots[*i]].0]))
        .collect();
    let size: Int64Array = order.iter().map(|i| Some(label[&roots[*i]].1)).collect();
    Ok(RecordBatch::try_new(
        output_schema(),
        vec![Arc::new(node), Arc::new(component), Arc::new(size)],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn chains_become_one_component_labelled_by_their_smallest_node() {
        let ctx = SessionContext::new();
        let edges = ctx
            .sql("SELECT * FROM (VALUES ('u3','u2'), ('u2','u1'), ('u9','u8'), ('u5', NULL)) t(a, b)")
            .await
            .unwrap();
        let batch = components(edges).await.unwrap();
        let col = |i: usize| {
            let c = cast(batch.column(i), &DataType::Utf8).unwrap();
            c.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(col(0), ["u1", "u2", "u3", "u8", "u9"]);
        assert_eq!(col(1), ["u1", "u1", "u1", "u8", "u8"]);
        assert_eq!(col(2), ["3", "3", "3", "2", "2"]);
    }

    #[tokio::test]
    async fn edges_need_columns_a_and_b() {
        let ctx = SessionContext::new();
        let edges = ctx.sql("SELECT 'x' AS src, 'y' AS dst").await.unwrap();
        let e = components(edges).await.unwrap_err().to_string();
        assert!(e.contains("`a` and `b`"), "{e}");
    }
}
