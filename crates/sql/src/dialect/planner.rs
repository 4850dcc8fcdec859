//! DataFusion's physical planner with the dialect's plan nodes
//! (`SampleBy`, `LatestOn`, `TimeJoin`): each has an extension planner
//! here.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::internal_err;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::latest_on::LatestOnNode;
use super::latest_on::exec::LatestOnExec;
use super::sample_by::node::SampleByPlanner;
use super::time_joins::TimeJoinNode;
use super::time_joins::exec::{TimeJoinColumns, TimeJoinExec};

/// Plans [`LatestOnNode`]s.
#[derive(Debug)]
struct LatestOnPlanner;

#[async_trait]
impl ExtensionPlanner for LatestOnPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<LatestOnNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("LatestOn has one input");
        };
        let columns = node.column_indices()?;
        Ok(Some(Arc::new(LatestOnExec::try_new(
            Arc::clone(input),
            columns[0],
            columns[1..].to_vec(),
        )?)))
    }
}

/// Plans [`TimeJoinNode`]s.
#[derive(Debug)]
struct TimeJoinPlanner;

#[async_trait]
impl ExtensionPlanner for TimeJoinPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<TimeJoinNode>() else {
            return Ok(None);
        };
        let [left, right] = physical_inputs else {
            return internal_err!("a time join has two inputs");
        };
        let (left_time, right_time, left_keys, right_keys) = node.column_indices()?;
        Ok(Some(Arc::new(TimeJoinExec::try_new(
            Arc::clone(left),
            Arc::clone(right),
            node.kind(),
            node.tolerance(),
            TimeJoinColumns {
                left_time,
                right_time,
                left_keys,
                right_keys,
            },
            Arc::new(node.schema().as_arrow().clone()),
        )?)))
    }
}

/// DataFusion's planner with Quiver's plan nodes.
#[derive(Debug)]
pub struct QuiverQueryPlanner;

#[async_trait]
impl QueryPlanner for QuiverQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(SampleByPlanner),
            Arc::new(LatestOnPlanner),
            Arc::new(TimeJoinPlanner),
        ])
        .create_physical_plan(logical_plan, session)
        .await
    }
}
