//! Running one operator of packed keys on a few workers, for the operators' tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use differential_dataflow::{AsCollection, Data, VecCollection};
use kappa_sql::Value;
use timely::dataflow::operators::{Inspect, ToStream};

use super::packed::PackedRow;
use crate::{Diff, Time};

/// An operator under test: packed keys in, records of `D` out.
pub(super) type Render<D> =
    for<'s> fn(VecCollection<'s, Time, PackedRow, Diff>) -> VecCollection<'s, Time, D, Diff>;

/// Runs `updates` of one-integer keys (update `i` on worker `i % workers`, all sent
/// at time 0, each carrying its own time) through `render` on `workers` workers;
/// returns what it emits, each record seen through `observe` (which gets the record
/// and its key's integer), summed per `(observation, time)`, zeros dropped.
pub(super) fn run_keyed<K, D: Data, O: Ord + Send + 'static>(
    updates: Vec<(K, Time, Diff)>,
    workers: usize,
    render: Render<D>,
    observe: fn(&D) -> O,
) -> BTreeMap<(O, Time), Diff>
where
    K: Copy + Into<i64> + Send + Sync + 'static,
{
    let out = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = out.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let mine: Vec<_> = updates
            .iter()
            .enumerate()
            .filter(|(i, _)| i % worker.peers() == worker.index())
            .map(|(_, (k, t, d))| (PackedRow::pack(&[Value::Int((*k).into())]), *t, *d))
            .collect();
        let sink = sink.clone();
        worker.dataflow::<Time, _, _>(|scope| {
            render(mine.to_stream(scope).as_collection()).inner.inspect(
                move |(record, time, diff)| {
                    let mut sink = sink.lock().expect("sink lock");
                    *sink.entry((observe(record), *time)).or_insert(0) += diff;
                },
            );
        });
    })
    .expect("timely runs");
    let mut out = std::mem::take(&mut *out.lock().expect("sink lock"));
    out.retain(|_, d| *d != 0);
    out
}

/// The integer of a one-integer packed key.
pub(super) fn int_key(key: &PackedRow) -> u8 {
    match key.unpack()[0] {
        Value::Int(k) => k as u8,
        ref other => unreachable!("a test key is an integer, not {other:?}"),
    }
}
