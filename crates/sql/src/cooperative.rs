//! A physical optimizer rule that makes every operator of a plan yield to
//! the runtime regularly, not only the leaves.
//!
//! DataFusion wraps leaf scans in `CooperativeExec`, which spends tokio's
//! task budget per batch and yields when it runs out. An operator that
//! emits many batches per input batch (a cross join, `unnest`) never
//! reaches its leaf for long stretches and so never yields: its task
//! cannot be aborted promptly. Wrapping every operator costs one budget
//! check per batch per operator.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;

/// See the module docs.
#[derive(Debug, Default)]
pub struct CooperativeEverywhere;

impl PhysicalOptimizerRule for CooperativeEverywhere {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let wrapped = node.name() == "CooperativeExec" || node.children().is_empty();
            Ok(match wrapped {
                // Leaves are DataFusion's job (it wraps them already).
                true => Transformed::no(node),
                false => Transformed::yes(Arc::new(CooperativeExec::new(node)) as _),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "cooperative_everywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
