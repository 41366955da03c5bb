//! Installing one pipeline version's dataflow on a worker, and moving its results
//! into the version's [`ViewStore`].
//!
//! Every view change, data error and source progress record is exchanged to
//! worker 0 and buffered there until the dataflow's frontier (one probe over all of
//! them, on every worker) has passed its time; then [`Installed::apply_ready`]
//! hands everything before the frontier to the version's [`Applier`], which
//! applies it to the store in one step.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kappa_log::Log;
use kappa_sql::plan::Plan;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Exchange, Operator, Probe};
use timely::dataflow::Stream;
use timely::worker::Worker;

use crate::applier::{Applier, Ready};
use crate::error::DataError;
use crate::render::{render_plan, PackedRow};
use crate::source::{now_ms, SourceConfig, SourceControl, SourceProgress};
use crate::store::ViewStore;
use crate::Time;

/// Updates bound for worker 0's store, buffered until the frontier passes them.
#[derive(Default)]
struct Pending {
    views: Vec<(usize, PackedRow, Time, isize)>,
    errors: Vec<(DataError, Time, isize)>,
    progress: Vec<(SourceProgress, Time)>,
}

/// A pipeline version's dataflow on one worker.
pub(crate) struct Installed {
    probe: ProbeHandle<Time>,
    pending: Rc<RefCell<Pending>>,
    /// The dataflow's identifier, for `Worker::drop_dataflow`.
    pub(crate) dataflow: usize,
    /// How its sources are steered (hold at offsets, replay throttling).
    pub(crate) control: Rc<SourceControl>,
    /// Bytes per update of its named arrangements, for size metrics.
    pub(crate) update_bytes: BTreeMap<String, usize>,
    /// The pipeline's name, for the applier thread's.
    pipeline: String,
    /// Applies ready updates to the store; started by the first `apply_ready`.
    applier: RefCell<Option<Applier>>,
    /// The frontier last handed to the applier (`Some(None)`: the end); `None`
    /// before the first hand-over.
    handed: Cell<Option<Option<Time>>>,
}

/// Renders `plan` as a new dataflow on `worker`.
pub(crate) fn install(
    worker: &mut Worker,
    plan: &Plan,
    log: Arc<dyn Log>,
    source_config: &SourceConfig,
    control: Rc<SourceControl>,
) -> Result<Installed, String> {
    let probe = ProbeHandle::<Time>::new();
    let pending = Rc::new(RefCell::new(Pending::default()));
    let dataflow = worker.next_dataflow_index();
    let update_bytes = worker.dataflow_named::<Time, _, _>(&plan.name, |scope| {
        let rendered = render_plan(scope, plan, log, source_config, &probe, control.clone())
            .map_err(|e| e.to_string())?;
        for (view, rows) in rendered.views.into_iter().enumerate() {
            let sink = pending.clone();
            collect(rows.inner.exchange(|_| 0), move |updates| {
                let views = &mut sink.borrow_mut().views;
                views.extend(updates.map(|(row, time, diff)| (view, row, time, diff)));
            })
            .probe_with(&probe);
        }
        let sink = pending.clone();
        collect(rendered.errors.exchange(|_| 0), move |errors| {
            sink.borrow_mut().errors.extend(errors)
        })
        .probe_with(&probe);
        let sink = pending.clone();
        collect(rendered.progress.exchange(|_| 0), move |progress| {
            let progress = progress.map(|(progress, time, _)| (progress, time));
            sink.borrow_mut().progress.extend(progress)
        })
        .probe_with(&probe);
        Ok::<_, String>(rendered.update_bytes)
    })?;
    Ok(Installed {
        probe,
        pending,
        dataflow,
        control,
        update_bytes,
        pipeline: plan.name.clone(),
        applier: RefCell::new(None),
        handed: Cell::new(None),
    })
}

/// Hands every update of `stream` to `sink`, by value, and returns an empty stream
/// whose frontier passes a time only once `sink` has seen all of that time's
/// updates (messages not yet taken hold it back), for the probe.
fn collect<'s, D: Clone + 'static>(
    stream: Stream<'s, Time, Vec<(D, Time, isize)>>,
    mut sink: impl FnMut(std::vec::Drain<'_, (D, Time, isize)>) + 'static,
) -> Stream<'s, Time, Vec<()>> {
    stream.unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "Collect", |_, _| {
        move |input, _output| input.for_each(|_, data| sink(data.drain(..)))
    })
}

/// Removes and returns the items of `items` that are `ready`, keeping the others in
/// order. Usually all are (the frontier passed every pending time): then the vector
/// is taken whole, not copied item by item.
fn take_ready<T>(items: &mut Vec<T>, ready: impl Fn(&T) -> bool) -> Vec<T> {
    if items.iter().all(&ready) {
        std::mem::take(items)
    } else {
        items.extract_if(.., |item| ready(item)).collect()
    }
}

impl Installed {
    /// The dataflow's frontier: every time before it is complete. `None` once the
    /// dataflow has finished.
    pub(crate) fn frontier(&self) -> Option<Time> {
        self.probe.with_frontier(|f| f.first().copied())
    }

    /// Hands every pending update before the frontier (all of them when the
    /// dataflow is complete) to the applier, which applies them to `store` in one
    /// atomic application. Returns whether the dataflow is complete.
    pub(crate) fn apply_ready(&self, store: &Arc<ViewStore>) -> bool {
        let frontier = self.frontier();
        let complete = frontier.is_none();
        let mut pending = self.pending.borrow_mut();
        let nothing_pending =
            pending.views.is_empty() && pending.errors.is_empty() && pending.progress.is_empty();
        if nothing_pending && self.handed.get() == Some(frontier) {
            return complete;
        }
        let ready = |t: &Time| frontier.is_none_or(|f| *t < f);
        let ready = Ready {
            frontier: frontier.unwrap_or(now_ms()),
            complete,
            views: take_ready(&mut pending.views, |u| ready(&u.2)),
            errors: take_ready(&mut pending.errors, |u| ready(&u.1)),
            progress: take_ready(&mut pending.progress, |u| ready(&u.1)),
        };
        self.handed.set(Some(frontier));
        self.applier
            .borrow_mut()
            .get_or_insert_with(|| {
                Applier::spawn(store.clone(), format!("{}-apply", self.pipeline))
            })
            .send(ready);
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::take_ready;

    #[test]
    fn take_ready_keeps_the_rest_in_order() {
        let mut items = vec![1, 5, 2, 7, 3];
        assert_eq!(take_ready(&mut items, |t| *t < 4), vec![1, 2, 3]);
        assert_eq!(items, vec![5, 7]);
        assert_eq!(take_ready(&mut items, |_| true), vec![5, 7]);
        assert!(items.is_empty());
    }
}
