//! Table functions: operators called from SQL as
//! `FROM TABLE(NAME(TABLE t, DESCRIPTOR(col, …), literal, INTERVAL …, …))`.
//!
//! This is how a data engineer exposes an operator written in Rust to
//! analysts: implement [`TableFunction`] (check the arguments, say what the
//! output looks like, hand back an [`OperatorFactory`]), register it in
//! [`PlanOptions::table_functions`](crate::PlanOptions), and call it by name.
//! Weir's own rules (the fraud operators) are registered the same way.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::datatypes::{DataType, Field, Schema};
//! use arrow::record_batch::RecordBatch;
//! use weir_engine::operator::{Collector, Operator, OperatorContext};
//! use weir_queries::table_function::{TableFunction, TableFunctionCall, TableFunctionPlan};
//! use weir_queries::{plan_script, PlanOptions};
//!
//! /// Passes rows through unchanged (a real operator would keep state).
//! struct Identity;
//! impl Operator for Identity {
//!     fn process_batch(
//!         &mut self,
//!         batch: RecordBatch,
//!         _ctx: &mut OperatorContext,
//!         out: &mut Collector,
//!     ) -> weir_engine::Result<()> {
//!         out.collect(batch);
//!         Ok(())
//!     }
//! }
//!
//! struct IdentityFunction;
//! impl TableFunction for IdentityFunction {
//!     fn name(&self) -> &str {
//!         "IDENTITY_BY_KEY"
//!     }
//!     fn plan(&self, call: &TableFunctionCall) -> weir_engine::Result<TableFunctionPlan> {
//!         call.expect_args(1, 1)?;
//!         let keys = call.columns(0)?.to_vec();
//!         Ok(TableFunctionPlan {
//!             schema: call.input_schema.clone(),
//!             keys,
//!             operator: Arc::new(|_s: usize, _p: usize| {
//!                 Ok(Box::new(Identity) as Box<dyn Operator>)
//!             }),
//!             description: "identity".into(),
//!         })
//!     }
//! }
//!
//! let mut options = PlanOptions::new();
//! options.register_table_function(Arc::new(IdentityFunction));
//! let job = plan_script(
//!     "CREATE TABLE bid (auction BIGINT, price BIGINT)
//!        WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '10');
//!      SELECT auction FROM TABLE(IDENTITY_BY_KEY(TABLE bid, DESCRIPTOR(auction)));",
//!     &options,
//! )?;
//! assert!(job.explain()?.contains("IDENTITY_BY_KEY"));
//! # Ok::<(), weir_engine::WeirError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion_common::ScalarValue;
use sqlparser::ast::{Expr as SqlExpr, UnaryOperator, Value};
use weir_dialect::TableFunctionArg;
use weir_engine::operator::OperatorFactory;
use weir_engine::{Result, WeirError};

/// An operator callable from SQL as a table function.
pub trait TableFunction: Send + Sync {
    /// The name SQL calls it by (matched case-insensitively).
    fn name(&self) -> &str;

    /// Plans one call: checks the arguments against the input, returns the
    /// output schema, the operator and how the input is partitioned. Errors
    /// are [`WeirError::Plan`]; [`TableFunctionCall`]'s accessors already
    /// name the function, the argument and the line.
    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan>;
}

/// What a table function makes of one call.
#[derive(Clone)]
pub struct TableFunctionPlan {
    /// The schema of the rows the operator emits (the relation SQL sees).
    pub schema: SchemaRef,
    /// Input columns to hash-partition on, so one subtask sees all rows of a
    /// key; empty: the whole input goes to a single subtask.
    pub keys: Vec<usize>,
    /// Creates the operator of each subtask.
    pub operator: Arc<dyn OperatorFactory>,
    /// A one-line description for `weir explain`.
    pub description: String,
}

impl std::fmt::Debug for TableFunctionPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableFunctionPlan")
            .field("schema", &self.schema)
            .field("keys", &self.keys)
            .field("description", &self.description)
            .finish()
    }
}

/// One argument after `TABLE t`, resolved against the input.
#[derive(Debug, Clone, PartialEq)]
pub enum CallArg {
    /// `DESCRIPTOR(a, b)`: the columns' indices in the input.
    Columns(Vec<usize>),
    /// A literal: number, string or boolean.
    Literal(ScalarValue),
    /// A day-time interval, in milliseconds.
    IntervalMs(i64),
}

/// A call of a table function, as the planner hands it to
/// [`TableFunction::plan`].
#[derive(Debug, Clone)]
pub struct TableFunctionCall {
    /// The function name as written.
    pub name: String,
    /// The schema of `TABLE t`.
    pub input_schema: SchemaRef,
    /// The arguments after `TABLE t`.
    pub args: Vec<CallArg>,
    /// 1-based line of the call.
    pub line: usize,
}

impl TableFunctionCall {
    /// Resolves the parsed arguments of a call against its input.
    pub fn resolve(
        name: &str,
        input_schema: SchemaRef,
        args: &[TableFunctionArg],
        line: usize,
    ) -> Result<Self> {
        let err = |m: String| WeirError::Plan(format!("line {line}: {name}: {m}"));
        let mut out = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            out.push(match a {
                TableFunctionArg::Descriptor(cols) => {
                    let mut idx = Vec::with_capacity(cols.len());
                    for c in cols {
                        idx.push(input_schema.index_of(c).map_err(|_| {
                            err(format!(
                                "argument {}: DESCRIPTOR({c}): the input has no such column",
                                i + 2
                            ))
                        })?);
                    }
                    CallArg::Columns(idx)
                }
                TableFunctionArg::Expr(e) => literal(e).ok_or_else(|| {
                    err(format!(
                        "argument {}: expected DESCRIPTOR(...), a literal or an INTERVAL, found {e}",
                        i + 2
                    ))
                })?,
            });
        }
        Ok(Self {
            name: name.to_string(),
            input_schema,
            args: out,
            line,
        })
    }

    /// A plan error naming the line and the function.
    pub fn error(&self, message: impl std::fmt::Display) -> WeirError {
        WeirError::Plan(format!("line {}: {}: {message}", self.line, self.name))
    }

    /// Checks the number of arguments after `TABLE t`.
    pub fn expect_args(&self, min: usize, max: usize) -> Result<()> {
        let n = self.args.len();
        if n < min || n > max {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.error(format!("expected {want} arguments after TABLE t, got {n}")));
        }
        Ok(())
    }

    fn arg(&self, i: usize) -> Result<&CallArg> {
        self.args
            .get(i)
            .ok_or_else(|| self.error(format!("argument {} is missing", i + 2)))
    }

    /// The columns of a `DESCRIPTOR` argument (0 = the first after `TABLE t`).
    pub fn columns(&self, i: usize) -> Result<&[usize]> {
        match self.arg(i)? {
            CallArg::Columns(c) => Ok(c),
            other => Err(self.error(format!(
                "argument {} must be DESCRIPTOR(column, ...), found {other:?}",
                i + 2
            ))),
        }
    }

    /// The single column of a `DESCRIPTOR(col)` argument.
    pub fn column(&self, i: usize) -> Result<usize> {
        match self.columns(i)? {
            [c] => Ok(*c),
            _ => Err(self.error(format!("argument {} must name exactly one column", i + 2))),
        }
    }

    /// An `INTERVAL` argument, in milliseconds.
    pub fn interval_ms(&self, i: usize) -> Result<i64> {
        match self.arg(i)? {
            CallArg::IntervalMs(ms) => Ok(*ms),
            other => Err(self.error(format!(
                "argument {} must be an INTERVAL, found {other:?}",
                i + 2
            ))),
        }
    }

    /// A numeric argument as `f64`.
    pub fn number(&self, i: usize) -> Result<f64> {
        match self.arg(i)? {
            CallArg::Literal(ScalarValue::Int64(Some(v))) => Ok(*v as f64),
            CallArg::Literal(ScalarValue::Float64(Some(v))) => Ok(*v),
            other => Err(self.error(format!(
                "argument {} must be a number, found {other:?}",
                i + 2
            ))),
        }
    }

    /// A non-negative integer argument.
    pub fn count(&self, i: usize) -> Result<u64> {
        match self.arg(i)? {
            CallArg::Literal(ScalarValue::Int64(Some(v))) if *v >= 0 => Ok(*v as u64),
            other => Err(self.error(format!(
                "argument {} must be a non-negative integer, found {other:?}",
                i + 2
            ))),
        }
    }

    /// A string argument.
    pub fn string(&self, i: usize) -> Result<&str> {
        match self.arg(i)? {
            CallArg::Literal(ScalarValue::Utf8(Some(s))) => Ok(s),
            other => Err(self.error(format!(
                "argument {} must be a string, found {other:?}",
                i + 2
            ))),
        }
    }
}

/// A literal argument (numbers, strings, booleans, day-time intervals).
fn literal(e: &SqlExpr) -> Option<CallArg> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(|i| CallArg::Literal(ScalarValue::Int64(Some(i))))
                .ok()
                .or_else(|| {
                    n.parse::<f64>()
                        .ok()
                        .map(|f| CallArg::Literal(ScalarValue::Float64(Some(f))))
                }),
            Value::SingleQuotedString(s) => {
                Some(CallArg::Literal(ScalarValue::Utf8(Some(s.clone()))))
            }
            Value::Boolean(b) => Some(CallArg::Literal(ScalarValue::Boolean(Some(*b)))),
            _ => None,
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            CallArg::Literal(ScalarValue::Int64(Some(i))) => {
                Some(CallArg::Literal(ScalarValue::Int64(Some(-i))))
            }
            CallArg::Literal(ScalarValue::Float64(Some(f))) => {
                Some(CallArg::Literal(ScalarValue::Float64(Some(-f))))
            }
            _ => None,
        },
        SqlExpr::Nested(inner) => literal(inner),
        SqlExpr::Interval(_) => weir_dialect::interval_ms(e).ok().map(CallArg::IntervalMs),
        _ => None,
    }
}

/// Table functions by (upper-case) name.
#[derive(Clone, Default)]
pub struct TableFunctionRegistry {
    functions: BTreeMap<String, Arc<dyn TableFunction>>,
}

impl std::fmt::Debug for TableFunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.functions.keys()).finish()
    }
}

impl TableFunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a function, replacing one of the same name.
    pub fn register(&mut self, f: Arc<dyn TableFunction>) {
        self.functions.insert(f.name().to_ascii_uppercase(), f);
    }

    /// The function called `name` (any case).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn TableFunction>> {
        self.functions.get(&name.to_ascii_uppercase())
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }
}
