//! Updates an operator holds until its input frontier has passed their times.
//!
//! Operators that act on whole times (top-k, running totals) keep what arrives,
//! with capabilities for the times they hold, take the updates of the times their
//! input frontier has passed, and keep capabilities only for the earliest time still
//! held, so frontiers downstream advance as soon as nothing earlier can come out.

use timely::dataflow::operators::{CapabilitySet, InputCapability};
use timely::progress::frontier::AntichainRef;

use crate::Time;

/// Updates of `D` with diffs `R` waiting for their times to complete.
pub(super) struct Pending<D, R> {
    updates: Vec<(D, Time, R)>,
    capabilities: CapabilitySet<Time>,
}

impl<D, R> Pending<D, R> {
    pub(super) fn new() -> Self {
        Pending {
            updates: Vec::new(),
            capabilities: CapabilitySet::new(),
        }
    }

    /// Holds `updates`, which arrived with `capability` (for output port 0).
    pub(super) fn hold(
        &mut self,
        capability: InputCapability<Time>,
        updates: &mut Vec<(D, Time, R)>,
    ) {
        for capability in capability.retain_stamp(0).iter() {
            self.capabilities.insert(capability.clone());
        }
        self.updates.append(updates);
    }

    /// The updates whose times `frontier` has passed, taken out (none, without
    /// moving anything, when no held time is complete).
    pub(super) fn take_complete(&mut self, frontier: AntichainRef<'_, Time>) -> Vec<(D, Time, R)> {
        if !self
            .updates
            .iter()
            .any(|(_, time, _)| !frontier.less_equal(time))
        {
            return Vec::new();
        }
        let (complete, waiting) = std::mem::take(&mut self.updates)
            .into_iter()
            .partition(|(_, time, _)| !frontier.less_equal(time));
        self.updates = waiting;
        complete
    }

    /// Capabilities for the times held (to emit completed times' output at them).
    pub(super) fn capabilities(&self) -> &CapabilitySet<Time> {
        &self.capabilities
    }

    /// Keeps a capability only for the earliest time still held.
    pub(super) fn release(&mut self) {
        match self.updates.iter().map(|(_, time, _)| *time).min() {
            Some(earliest) => self.capabilities.downgrade([earliest]),
            None => self.capabilities = CapabilitySet::new(),
        }
    }
}
