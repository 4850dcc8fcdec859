//! The `SampleBy` plan node: over a SAMPLE BY query's grouped rows, it
//! orders them by bucket and key and fills empty buckets. The logical node
//! names the bucket, key and value columns of its input; the physical plan
//! is [`SampleByExec`]. [`wrap_plan`] puts the node into a planned
//! statement; [`SampleByPlanner`] plans it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

use super::bucketing::Bucketing;
use super::clause::Fill;
use super::fill::{FillLayout, SampleByExec};
use super::{PreparedSampleBy, bucket_function_name, hidden_bucket_name};
use crate::error::QueryError;

/// The logical `SampleBy` node (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleByNode {
    input: LogicalPlan,
    layout: Arc<FillLayout>,
    schema: DFSchemaRef,
}

impl PartialOrd for SampleByNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.layout == other.layout {
            true => self.input.partial_cmp(&other.input),
            false => None,
        }
    }
}

impl SampleByNode {
    fn new(input: LogicalPlan, layout: FillLayout) -> Result<Self> {
        // Filled aggregates can be NULL whatever their input was.
        let fields = input
            .schema()
            .iter()
            .enumerate()
            .map(|(i, (q, f))| {
                let nullable = f.is_nullable() || layout.values.iter().any(|(c, _)| *c == i);
                (
                    q.cloned(),
                    Arc::new(f.as_ref().clone().with_nullable(nullable)),
                )
            })
            .collect();
        let schema = DFSchema::new_with_metadata(fields, input.schema().metadata().clone())?;
        Ok(SampleByNode {
            input,
            layout: Arc::new(layout),
            schema: Arc::new(schema),
        })
    }
}

impl UserDefinedLogicalNodeCore for SampleByNode {
    fn name(&self) -> &str {
        "SampleBy"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SampleBy: {}", self.layout)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(SampleByNode {
                input,
                layout: Arc::clone(&self.layout),
                schema: Arc::clone(&self.schema),
            }),
            _ => internal_err!("SampleBy has one input"),
        }
    }
}

/// Whether `expr` calls the bucket function named `name`.
fn calls(expr: &Expr, name: &str) -> bool {
    matches!(expr.clone().unalias(), Expr::ScalarFunction(f) if f.name() == name)
}

/// Puts a [`SampleByNode`] over each SAMPLE BY's grouped result in `plan`
/// (the projection right above its aggregate).
pub fn wrap_plan(
    plan: LogicalPlan,
    prepared: &[(PreparedSampleBy, Bucketing)],
) -> Result<LogicalPlan, QueryError> {
    let mut placed = 0usize;
    let plan = plan
        .transform_up(|node| {
            let LogicalPlan::Projection(projection) = &node else {
                return Ok(Transformed::no(node));
            };
            let mut below = projection.input.as_ref();
            if let LogicalPlan::Filter(f) = below {
                below = f.input.as_ref();
            }
            let LogicalPlan::Aggregate(aggregate) = below else {
                return Ok(Transformed::no(node));
            };
            let Some((p, bucketing)) = prepared.iter().find(|(p, _)| {
                let name = bucket_function_name(p.index);
                aggregate.group_expr.iter().any(|g| calls(g, &name))
            }) else {
                return Ok(Transformed::no(node));
            };
            let name = bucket_function_name(p.index);
            let group_of = |e: &Expr| -> Option<usize> {
                let Expr::Column(c) = e.clone().unalias() else {
                    return None;
                };
                let j = aggregate.schema.index_of_column(&c).ok()?;
                (j < aggregate.group_expr.len()).then_some(j)
            };
            let mut bucket = None;
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for (i, e) in projection.expr.iter().enumerate() {
                match group_of(e) {
                    Some(j) if calls(&aggregate.group_expr[j], &name) => bucket = Some(i),
                    Some(_) => keys.push(i),
                    None => values.push(i),
                }
            }
            let Some(bucket) = bucket else {
                return internal_err!("SAMPLE BY lost its bucket column");
            };
            let fills = p
                .fills(values.len())
                .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
            let layout = FillLayout {
                bucket,
                keys,
                values: values.into_iter().zip(fills).collect(),
                bucketing: *bucketing,
                range: p.range,
                text: p.clause.text.clone(),
            };
            let hidden = p.hidden.then(|| hidden_bucket_name(p.index));
            let wrapped = LogicalPlan::Extension(Extension {
                node: Arc::new(SampleByNode::new(node, layout)?),
            });
            placed += 1;
            let Some(hidden) = hidden else {
                return Ok(Transformed::yes(wrapped));
            };
            // Drop the bucket column the query did not select.
            let keep: Vec<Expr> = wrapped
                .schema()
                .columns()
                .into_iter()
                .filter(|c| c.name != hidden)
                .map(Expr::Column)
                .collect();
            Ok(Transformed::yes(
                LogicalPlanBuilder::from(wrapped).project(keep)?.build()?,
            ))
        })?
        .data;
    if placed != prepared.len() {
        return Err(QueryError::new(
            crate::error::QueryErrorKind::Unsupported,
            "this SAMPLE BY query's shape is not supported (expected plain columns and aggregates)",
        ));
    }
    Ok(plan)
}

/// Plans [`SampleByNode`]s.
#[derive(Debug)]
pub struct SampleByPlanner;

#[async_trait]
impl ExtensionPlanner for SampleByPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<SampleByNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("SampleBy has one input");
        };
        Ok(Some(Arc::new(SampleByExec::try_new(
            Arc::clone(input),
            Arc::clone(&node.layout),
            Arc::new(node.schema.as_arrow().clone()),
        )?)))
    }
}

/// Fill options, for display.
impl fmt::Display for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fill::None => write!(f, "NONE"),
            Fill::Null => write!(f, "NULL"),
            Fill::Prev => write!(f, "PREV"),
            Fill::Linear => write!(f, "LINEAR"),
            Fill::Value(v) => write!(f, "{v}"),
        }
    }
}
