//! Executing the pipeline: the DataFusion session, the declared datasets registered as tables,
//! run parameters bound into the SQL, the stage DAG executor and the role contracts that stage
//! outputs are read through, the scratch folder stage outputs spill to, and
//! the join rule that keeps small sides out of sort-merge joins under a memory limit.

pub(crate) mod column_types;
pub mod components;
pub(crate) mod currency;
pub mod datasets;
pub mod executor;
pub mod functions;
pub mod params;
pub(crate) mod roles;
pub mod scratch;
pub mod session;
pub(crate) mod small_side_join;
pub mod spilled;
