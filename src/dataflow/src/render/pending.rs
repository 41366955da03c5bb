//! Updates an operator holds until its input frontier has passed their times.
//!
//! Operators that act on whole times (top-k, running totals) keep what arrives,
//! with capabilities for the times they hold, take the updates of the times their
//! input frontier has passed, and keep capabilities only for the earliest time still
//! held, so frontiers downstream advance as soon as nothing earlier can come out.
//!
//! Updates are held by time: such an operator is activated for every message it
//! receives, and asking "is any held time complete?" and "which is the earliest?"
//! of one list of every held update cost time in proportion to the list, on every
//! activation (a replay span holds tens of thousands of updates per operator, and
//! with two workers each arrives in more, smaller messages).

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::{CapabilitySet, InputCapability};
use timely::dataflow::Stream;
use timely::progress::frontier::AntichainRef;

use crate::{Diff, Time};

/// An operator named `name` that acts once per complete time: `logic` gets each
/// time the input frontier has passed, in order, with that time's updates (as
/// `pact` brought them to this worker), and returns its output at that time.
pub(super) fn per_complete_time<'s, D, R, O, P>(
    stream: Stream<'s, Time, Vec<(D, Time, R)>>,
    pact: P,
    name: &str,
    mut logic: impl FnMut(Time, &mut [(D, Time, R)]) -> Vec<(O, Diff)> + 'static,
) -> VecCollection<'s, Time, O, Diff>
where
    D: Clone + 'static,
    R: Clone + 'static,
    O: Clone + 'static,
    P: ParallelizationContract<Time, Vec<(D, Time, R)>>,
{
    type Output<O> = CapacityContainerBuilder<Vec<(O, Time, Diff)>>;
    stream
        .unary_frontier::<Output<O>, _, _, _>(pact, name, move |_capability, _info| {
            let mut pending = Pending::new();
            move |(input, frontier), output| {
                input.for_each(|capability, data| pending.hold(capability, data));
                let mut ready = pending.take_complete(frontier.frontier());
                if !ready.is_empty() {
                    let mut session = output.session(pending.capabilities());
                    // In time order already: taken from a map by time.
                    for updates in ready.chunk_by_mut(|a, b| a.1 == b.1) {
                        let time = updates[0].1;
                        for (out, diff) in logic(time, updates) {
                            session.give((out, time, diff));
                        }
                    }
                }
                pending.release();
            }
        })
        .as_collection()
}

/// Updates of `D` with diffs `R` waiting for their times to complete.
pub(super) struct Pending<D, R> {
    /// The updates held, by time.
    by_time: BTreeMap<Time, Vec<(D, Time, R)>>,
    capabilities: CapabilitySet<Time>,
}

impl<D, R> Pending<D, R> {
    pub(super) fn new() -> Self {
        Pending {
            by_time: BTreeMap::new(),
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
        let Some((_, first, _)) = updates.first() else {
            return;
        };
        let first = *first;
        if updates.iter().all(|(_, time, _)| *time == first) {
            // The usual message: one time, moved or appended whole.
            match self.by_time.get_mut(&first) {
                Some(held) => held.append(updates),
                None => {
                    self.by_time.insert(first, std::mem::take(updates));
                }
            }
        } else {
            for update in updates.drain(..) {
                self.by_time.entry(update.1).or_default().push(update);
            }
        }
    }

    /// The updates whose times `frontier` has passed, taken out (none, without
    /// moving anything, when no held time is complete).
    pub(super) fn take_complete(&mut self, frontier: AntichainRef<'_, Time>) -> Vec<(D, Time, R)> {
        let mut complete = Vec::new();
        while let Some(entry) = self.by_time.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let mut updates = entry.remove();
            if complete.is_empty() {
                complete = updates;
            } else {
                complete.append(&mut updates);
            }
        }
        complete
    }

    /// Capabilities for the times held (to emit completed times' output at them).
    pub(super) fn capabilities(&self) -> &CapabilitySet<Time> {
        &self.capabilities
    }

    /// Keeps a capability only for the earliest time still held.
    pub(super) fn release(&mut self) {
        match self.by_time.keys().next() {
            Some(earliest) => self.capabilities.downgrade([*earliest]),
            None => self.capabilities = CapabilitySet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use timely::progress::Antichain;

    use super::*;

    #[test]
    fn takes_complete_times_in_order_and_keeps_the_rest() {
        let checked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = checked.clone();
        timely::execute_directly(move |worker| {
            use timely::container::CapacityContainerBuilder;
            use timely::dataflow::channels::pact::Pipeline;
            use timely::dataflow::operators::{Operator, ToStream};
            worker.dataflow::<Time, _, _>(|scope| {
                let updates = vec![(1u8, 5, 1), (2, 3, 1), (3, 5, -1), (4, 9, 1), (5, 3, 2)];
                type Out = CapacityContainerBuilder<Vec<u8>>;
                updates.to_stream(scope).unary_frontier::<Out, _, _, _>(
                    Pipeline,
                    "test",
                    |_, _| {
                        move |(input, _frontier), _output| {
                            let mut pending: Pending<u8, i64> = Pending::new();
                            input.for_each(|capability, data| {
                                let mut data: Vec<(u8, Time, i64)> = std::mem::take(data);
                                pending.hold(capability, &mut data);
                            });
                            if pending.by_time.is_empty() {
                                return;
                            }
                            let at = |t: Time| Antichain::from_elem(t);
                            assert!(pending.take_complete(at(3).borrow()).is_empty());
                            let mut first = pending.take_complete(at(6).borrow());
                            first.sort();
                            assert_eq!(first, vec![(1, 5, 1), (2, 3, 1), (3, 5, -1), (5, 3, 2)]);
                            pending.release();
                            assert_eq!(pending.capabilities().first().map(|c| *c.time()), Some(9));
                            let rest = pending.take_complete(Antichain::new().borrow());
                            assert_eq!(rest, vec![(4, 9, 1)]);
                            pending.release();
                            assert!(pending.capabilities().is_empty());
                            done.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    },
                );
            });
        });
        assert!(checked.load(std::sync::atomic::Ordering::SeqCst));
    }
}
