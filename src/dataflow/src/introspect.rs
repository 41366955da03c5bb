//! Introspection: what timely and differential report about each version's operators.
//!
//! Each worker registers two log handlers before it installs any dataflow (loggers
//! are looked up when operators are built). Timely's `Operates` events name every
//! operator and place it in a dataflow (the first element of its address); its
//! `Schedule` events bracket each time a dataflow or an operator runs, so the time
//! between a dataflow's own start and stop is the time its operators took, and each
//! operator's own brackets say which of them took it. Differential's
//! batch, merge and drop events track how many updates each arrangement holds (the
//! accounting Materialize's introspection uses). Both land in the version's
//! [`ViewStore`], from which metrics read them; a retired version's store goes away
//! with its series.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;

use crate::install::Installed;
use crate::store::ViewStore;

/// The dataflows of a worker whose activity is recorded, by dataflow index.
pub(crate) type Observed = Rc<RefCell<HashMap<usize, Arc<ViewStore>>>>;

/// An operator as timely announced it.
struct Operator {
    dataflow: usize,
    name: String,
    /// Whether it is the dataflow itself (its address has one element).
    is_dataflow: bool,
}

/// Starts recording the activity of `installed` into `store`.
pub(crate) fn observe(observed: &Observed, installed: &Installed, store: Arc<ViewStore>) {
    store.update_activity(|a| {
        let sizes = installed.update_bytes.iter();
        a.update_bytes
            .extend(sizes.map(|(name, bytes)| (name.clone(), *bytes)));
    });
    observed.borrow_mut().insert(installed.dataflow, store);
}

/// Registers the log handlers on `worker`; record a dataflow's activity by adding
/// its index and store to the returned map once it is installed.
pub(crate) fn attach(worker: &mut Worker) -> Observed {
    let observed: Observed = Rc::default();
    let operators: Rc<RefCell<HashMap<usize, Operator>>> = Rc::default();
    let index = worker.index();
    let Some(mut registry) = worker.log_register() else {
        return observed;
    };
    {
        let (observed, operators) = (observed.clone(), operators.clone());
        let mut started: HashMap<usize, Duration> = HashMap::new();
        registry.insert::<TimelyEventBuilder, _>("timely", move |_now, events| {
            let Some(events) = events else { return };
            let mut busy: HashMap<usize, Duration> = HashMap::new();
            let mut by_operator: HashMap<(usize, usize), (String, Duration, u64)> = HashMap::new();
            let mut operators = operators.borrow_mut();
            for (at, event) in events.iter() {
                match event {
                    TimelyEvent::Operates(op) => {
                        if let Some(dataflow) = op.addr.first() {
                            operators.insert(
                                op.id,
                                Operator {
                                    dataflow: *dataflow,
                                    name: op.name.clone(),
                                    is_dataflow: op.addr.len() == 1,
                                },
                            );
                        }
                    }
                    TimelyEvent::Schedule(schedule) => {
                        let Some(op) = operators.get(&schedule.id) else {
                            continue;
                        };
                        match schedule.start_stop {
                            StartStop::Start => {
                                started.insert(schedule.id, *at);
                            }
                            StartStop::Stop => {
                                let Some(start) = started.remove(&schedule.id) else {
                                    continue;
                                };
                                let took = at.saturating_sub(start);
                                if op.is_dataflow {
                                    *busy.entry(op.dataflow).or_default() += took;
                                } else {
                                    let entry = by_operator
                                        .entry((op.dataflow, schedule.id))
                                        .or_insert_with(|| (op.name.clone(), Duration::ZERO, 0));
                                    entry.1 += took;
                                    entry.2 += 1;
                                }
                            }
                        }
                    }
                    TimelyEvent::Shutdown(shutdown) => {
                        operators.remove(&shutdown.id);
                    }
                    _ => {}
                }
            }
            let observed = observed.borrow();
            for (dataflow, took) in busy {
                if let Some(store) = observed.get(&dataflow) {
                    store.update_activity(|a| a.busy += took);
                }
            }
            for ((dataflow, id), (name, took, runs)) in by_operator {
                if let Some(store) = observed.get(&dataflow) {
                    store.update_activity(|a| {
                        let entry = a.operators.entry(id).or_insert((name, Duration::ZERO, 0));
                        entry.1 += took;
                        entry.2 += runs;
                    });
                }
            }
        });
    }
    let observed_by_arrangements = observed.clone();
    registry.insert::<DifferentialEventBuilder, _>("differential/arrange", move |_now, events| {
        let Some(events) = events else { return };
        let operators = operators.borrow();
        let observed = observed_by_arrangements.borrow();
        for (_, event) in events.iter() {
            let (operator, delta) = match event {
                DifferentialEvent::Batch(batch) => (batch.operator, batch.length as i64),
                DifferentialEvent::Merge(merge) => match merge.complete {
                    Some(merged) => (
                        merge.operator,
                        merged as i64 - merge.length1 as i64 - merge.length2 as i64,
                    ),
                    None => continue,
                },
                DifferentialEvent::Drop(drop) => (drop.operator, -(drop.length as i64)),
                _ => continue,
            };
            let Some(op) = operators.get(&operator) else {
                continue;
            };
            if let Some(store) = observed.get(&op.dataflow) {
                store.update_activity(|a| {
                    let entry = a
                        .arrangements
                        .entry((index, operator))
                        .or_insert_with(|| (op.name.clone(), 0));
                    entry.1 += delta;
                });
            }
        }
    });
    observed
}
