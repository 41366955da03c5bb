//! The size of state that operators keep outside arrangements.
//!
//! Some operators hold their state in hash maps rather than in differential's
//! arrangements ([`super::totals`], [`super::distinct`]). Their entries are
//! reported on differential's own arrangement log, as batches added and dropped by
//! the operator, so that the arrangement metrics (`kappa_dataflow_arrangement_records`
//! and `_bytes`, [`crate::introspect`]) count them under the operator's name like
//! an arrangement's updates: a view's memory is visible whatever holds it.

use differential_dataflow::logging::{BatchEvent, DifferentialEventBuilder, DropEvent, Logger};
use timely::dataflow::operators::generic::OperatorInfo;
use timely::dataflow::Scope;

use crate::Time;

/// Reports how many entries one operator holds.
pub(super) struct StateSize {
    logger: Option<Logger>,
    operator: usize,
    reported: usize,
}

impl StateSize {
    /// For the operator `info` of `scope`.
    pub(super) fn new(scope: Scope<'_, Time>, info: &OperatorInfo) -> Self {
        let logger = scope
            .worker()
            .logger_for::<DifferentialEventBuilder>("differential/arrange")
            .map(Into::into);
        StateSize {
            logger,
            operator: info.global_id,
            reported: 0,
        }
    }

    /// The operator now holds `entries`.
    pub(super) fn set(&mut self, entries: usize) {
        let Some(logger) = &self.logger else { return };
        let operator = self.operator;
        if entries > self.reported {
            let length = entries - self.reported;
            logger.log(BatchEvent { operator, length });
        } else if entries < self.reported {
            let length = self.reported - entries;
            logger.log(DropEvent { operator, length });
        }
        self.reported = entries;
    }
}

impl Drop for StateSize {
    fn drop(&mut self) {
        // The operator's state goes with it.
        self.set(0);
    }
}
