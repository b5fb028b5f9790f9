//! # weir-queries: the SQL front end of Weir
//!
//! A script of Flink SQL statements is parsed by the Flink dialect layer
//! ([`weir_dialect`]), planned by DataFusion against Weir's catalog (tables
//! from `CREATE TABLE`, views, window TVF relations), analyzed (type
//! coercion) and lowered ([`lower`]) to a [`JobGraph`](weir_engine::graph::JobGraph)
//! that the engine runs.
//!
//! ```no_run
//! use weir_queries::{plan_script, PlanOptions};
//! let job = plan_script("CREATE TABLE ...; INSERT INTO ... SELECT ...", &PlanOptions::new())?;
//! println!("{}", job.explain()?);
//! # Ok::<(), weir_engine::WeirError>(())
//! ```

pub mod catalog;
pub mod collect;
pub mod fraud_functions;
pub mod functions;
pub mod lower;
mod match_plan;
pub mod ordering_plan;
pub mod planner;
pub mod source_table;
pub mod table_function;
pub mod types;

pub use planner::{plan_script, PlanOptions, PlannedJob, PlannedStatement};
