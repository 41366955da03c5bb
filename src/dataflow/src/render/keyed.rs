//! The input stage of a reduce: rows to packed keys, pre-aggregated within a batch.
//!
//! Every row entering a `GROUP BY` is turned, in one pass, into its packed grouping
//! key and its aggregates' arguments. What happens next depends on the aggregate:
//!
//! - the accumulable part (row counts, sums) is summed per `(key, time)` in a hash
//!   map before it leaves the operator, so a batch of 16k clicks over 2k pages
//!   sends 2k updates, not 16k, through the exchange and the arrangement's
//!   batcher — the batcher sorts what it receives, and sorting is the largest
//!   per-update cost of an arrangement;
//! - each `DISTINCT` aggregate's `(key, value)` pairs are likewise consolidated;
//! - rows for `MIN`/`MAX` pass through as `(key, arguments)`, only when such an
//!   aggregate exists.
//!
//! Nothing is held across activations: the maps are flushed at the end of every
//! activation, at the times of the batches they summed, so the operator adds no
//! latency and holds no capability. An argument that fails to evaluate sends its
//! row to the error stream once, and the row contributes nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use differential_dataflow::difference::{Multiply, Semigroup};
use differential_dataflow::{AsCollection, VecCollection};
use kappa_sql::expr::Expr;
use kappa_sql::{Row, Value};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::{Capability, Operator};

use super::packed::PackedRow;
use super::{scalar, Errors, Rows};
use crate::{Diff, Time};

/// What the key stage computes for one reduce.
pub(super) struct KeyPlan {
    /// Grouping columns of the input row.
    pub(super) key: Vec<usize>,
    /// Every aggregate's argument, in aggregate order; evaluated only when
    /// `evaluate_args` is set (a plain row count needs none).
    pub(super) args: Vec<Expr>,
    pub(super) evaluate_args: bool,
    /// Whether the accumulable part (sums) is needed at all.
    pub(super) sums: bool,
    /// For each `DISTINCT` aggregate, the index of its argument.
    pub(super) distinct_args: Vec<usize>,
    /// Whether `(key, arguments)` rows are needed (for `MIN`/`MAX`).
    pub(super) rows: bool,
}

/// The key stage's outputs.
pub(super) struct Keyed<'s, R: Semigroup + 'static> {
    /// Per key, the summed contributions of its rows (diff `R`).
    pub(super) sums: VecCollection<'s, Time, PackedRow, R>,
    /// Per `DISTINCT` aggregate, its `(key, value)` pairs packed together (NULLs left out).
    pub(super) distinct: Vec<VecCollection<'s, Time, PackedRow, Diff>>,
    /// `(key, arguments)` per row, when asked for.
    pub(super) rows: VecCollection<'s, Time, (PackedRow, Row), Diff>,
    /// Rows whose arguments failed to evaluate.
    pub(super) errors: Errors<'s>,
}

/// Hashes a [`PackedRow`] by the hash it already carries.
#[derive(Default)]
struct CarriedHash(u64);

impl Hasher for CarriedHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `PackedRow`; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PackedMap<R> = HashMap<PackedRow, R, BuildHasherDefault<CarriedHash>>;

/// Adds `add` to `key`'s sum, copying the key only when it is new.
fn add_to<R: Semigroup>(sums: &mut PackedMap<R>, key: &PackedRow, add: R) {
    match sums.get_mut(key) {
        Some(sum) => sum.plus_equals(&add),
        None => {
            sums.insert(key.clone(), add);
        }
    }
}

/// What one activation has summed for one time.
struct Pending<R> {
    time: Time,
    /// Capabilities at `time` for the sums output (first) and each distinct output.
    capabilities: Vec<Capability<Time>>,
    sums: PackedMap<R>,
    distinct: Vec<PackedMap<Diff>>,
}

/// Renders the key stage of a reduce. `contribution` is what one row adds to its
/// key's sum, given the row's arguments (empty unless `plan.evaluate_args`).
pub(super) fn keyed<'s, R>(
    rows: Rows<'s>,
    node: usize,
    plan: KeyPlan,
    contribution: impl Fn(&[Value]) -> R + 'static,
) -> Keyed<'s, R>
where
    R: Semigroup + Multiply<Diff, Output = R> + Clone + 'static,
{
    let scope = rows.inner.scope();
    let mut builder = OperatorBuilder::new(format!("Key %{node}"), scope);
    let mut input = builder.new_input(rows.inner, Pipeline);
    let (sums_output, sums) = builder.new_output::<Vec<(PackedRow, Time, R)>>();
    let mut sums_output = OutputBuilder::from(sums_output);
    let mut distinct_outputs = Vec::new();
    let mut distinct = Vec::new();
    for _ in &plan.distinct_args {
        let (output, stream) = builder.new_output::<Vec<(PackedRow, Time, Diff)>>();
        distinct_outputs.push(OutputBuilder::from(output));
        distinct.push(stream.as_collection());
    }
    let (rows_output, keyed_rows) = builder.new_output::<Vec<((PackedRow, Row), Time, Diff)>>();
    let mut rows_output = OutputBuilder::from(rows_output);
    let (errors_output, errors) = builder.new_output();
    let mut errors_output = OutputBuilder::from(errors_output);

    let distinct_ports = plan.distinct_args.len();
    builder.build(move |_| {
        let mut pending: Vec<Pending<R>> = Vec::new();
        let mut args: Row = Row::new();
        move |_frontiers| {
            let mut rows_handle = rows_output.activate();
            let mut errors_handle = errors_output.activate();
            input.for_each(|cap, data| {
                let mut slot = usize::MAX;
                let mut keyed_rows = rows_handle.session(&cap);
                let mut errors = errors_handle.session(&cap);
                for (row, time, diff) in data.drain(..) {
                    // Updates may carry times later than their message's capability;
                    // each is summed at its own time.
                    if pending.get(slot).is_none_or(|p| p.time != time) {
                        slot = match pending.iter().position(|p| p.time == time) {
                            Some(slot) => slot,
                            None => {
                                pending.push(Pending {
                                    time,
                                    capabilities: (0..=distinct_ports)
                                        .map(|port| cap.delayed(&time, port))
                                        .collect(),
                                    sums: PackedMap::default(),
                                    distinct: vec![PackedMap::default(); distinct_ports],
                                });
                                pending.len() - 1
                            }
                        };
                    }
                    let sums = &mut pending[slot];
                    // One buffer for every row's arguments: no allocation per row.
                    args.clear();
                    if plan.evaluate_args {
                        if let Err(error) = plan
                            .args
                            .iter()
                            .try_for_each(|e| e.eval(&row).map(|v| args.push(v)))
                        {
                            errors.give((scalar::eval_error(node, &error, &row), time, diff));
                            continue;
                        }
                    }
                    let key = PackedRow::pack(plan.key.iter().map(|c| &row[*c]));
                    for (map, arg) in sums.distinct.iter_mut().zip(&plan.distinct_args) {
                        if !args[*arg].is_null() {
                            *map.entry(key.with(&args[*arg])).or_insert(0) += diff;
                        }
                    }
                    if plan.sums {
                        let add = contribution(&args).multiply(&diff);
                        add_to(&mut sums.sums, &key, add);
                    }
                    if plan.rows {
                        keyed_rows.give(((key, args.clone()), time, diff));
                    }
                }
            });
            // Flush what this activation summed, at the times it was summed for.
            let mut sums_handle = sums_output.activate();
            let mut distinct_handles: Vec<_> =
                distinct_outputs.iter_mut().map(|o| o.activate()).collect();
            for done in pending.drain(..) {
                let time = done.time;
                let mut session = sums_handle.session(&done.capabilities[0]);
                for (key, sum) in done.sums {
                    if !sum.is_zero() {
                        session.give((key, time, sum));
                    }
                }
                for ((handle, pairs), capability) in distinct_handles
                    .iter_mut()
                    .zip(done.distinct)
                    .zip(&done.capabilities[1..])
                {
                    let mut session = handle.session(capability);
                    for (pair, diff) in pairs {
                        if diff != 0 {
                            session.give((pair, time, diff));
                        }
                    }
                }
            }
        }
    });
    Keyed {
        sums: sums.as_collection(),
        distinct,
        rows: keyed_rows.as_collection(),
        errors,
    }
}

/// Maps each update to a packed key and a diff with `f`, and sums the diffs of equal
/// keys per time within each activation: the pre-aggregation of [`keyed`], for a
/// stream that is keyed already (the new distinct values of a `DISTINCT` aggregate,
/// which become per-key counts).
pub(super) fn sum_by_key<'s, D, R>(
    collection: VecCollection<'s, Time, D, Diff>,
    name: &str,
    mut f: impl FnMut(D) -> (PackedRow, R) + 'static,
) -> VecCollection<'s, Time, PackedRow, R>
where
    D: Clone + 'static,
    R: Semigroup + Multiply<Diff, Output = R> + Clone + 'static,
{
    let summed = collection
        .inner
        .unary::<CapacityContainerBuilder<Vec<(PackedRow, Time, R)>>, _, _, _>(
            Pipeline,
            name,
            |_, _| {
                let mut pending: Vec<(Capability<Time>, PackedMap<R>)> = Vec::new();
                move |input, output| {
                    input.for_each(|cap, data| {
                        for (item, time, diff) in data.drain(..) {
                            let slot = match pending.iter().position(|(c, _)| *c.time() == time) {
                                Some(slot) => slot,
                                None => {
                                    pending.push((cap.delayed(&time, 0), PackedMap::default()));
                                    pending.len() - 1
                                }
                            };
                            let (key, add) = f(item);
                            let add = add.multiply(&diff);
                            add_to(&mut pending[slot].1, &key, add);
                        }
                    });
                    for (capability, sums) in pending.drain(..) {
                        let time = *capability.time();
                        let mut session = output.session(&capability);
                        for (key, sum) in sums {
                            if !sum.is_zero() {
                                session.give((key, time, sum));
                            }
                        }
                    }
                }
            },
        );
    summed.as_collection()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::{Inspect, ToStream};

    use super::*;

    type Sums = BTreeMap<(Row, Time), Diff>;

    /// Runs `keyed` (key: column 0; one DISTINCT aggregate of column 1) over updates
    /// sent in one message at capability 0 but carrying different times, and returns
    /// the sums and the distinct pairs it emitted, summed per `(row, time)`.
    fn run(updates: Vec<(Row, Time, Diff)>) -> (Sums, Sums) {
        let sums = Arc::new(Mutex::new(Sums::new()));
        let pairs = Arc::new(Mutex::new(Sums::new()));
        let (s, p) = (sums.clone(), pairs.clone());
        timely::execute_directly(move |worker| {
            worker.dataflow::<Time, _, _>(|scope| {
                let rows = updates.to_stream(scope).as_collection();
                let plan = KeyPlan {
                    key: vec![0],
                    args: vec![Expr::Column(1)],
                    evaluate_args: true,
                    sums: true,
                    distinct_args: vec![0],
                    rows: false,
                };
                let keyed = keyed(rows, 0, plan, |_| 1 as Diff);
                let sink = |into: Arc<Mutex<Sums>>| {
                    move |(key, time, diff): &(PackedRow, Time, Diff)| {
                        *into
                            .lock()
                            .unwrap()
                            .entry((key.unpack(), *time))
                            .or_default() += diff;
                    }
                };
                keyed.sums.inner.inspect(sink(s.clone()));
                let pairs = keyed.distinct.into_iter().next().expect("one DISTINCT");
                pairs.inner.inspect(sink(p.clone()));
            });
        });
        let take = |m: Arc<Mutex<Sums>>| {
            let mut m = std::mem::take(&mut *m.lock().unwrap());
            m.retain(|_, d| *d != 0);
            m
        };
        (take(sums), take(pairs))
    }

    #[test]
    fn sums_each_key_at_each_time_of_its_updates() {
        let row = |k: &str, v: &str| vec![Value::text(k), Value::text(v)];
        let (sums, pairs) = run(vec![
            (row("a", "x"), 0, 1),
            (row("a", "x"), 5, 1),
            (row("a", "y"), 5, 1),
            (row("b", "x"), 5, -1),
            (row("a", "x"), 0, 1),
            (row("b", "x"), 7, 1),
            (row("b", "x"), 7, -1),
        ]);
        let key = |k: &str| vec![Value::text(k)];
        assert_eq!(
            sums,
            Sums::from([((key("a"), 0), 2), ((key("a"), 5), 2), ((key("b"), 5), -1),])
        );
        assert_eq!(
            pairs,
            Sums::from([
                ((row("a", "x"), 0), 2),
                ((row("a", "x"), 5), 1),
                ((row("a", "y"), 5), 1),
                ((row("b", "x"), 5), -1),
            ])
        );
    }

    #[test]
    fn sum_by_key_sums_per_key_and_time() {
        let sums = Arc::new(Mutex::new(Sums::new()));
        let into = sums.clone();
        let row = |k: &str, v: i64| vec![Value::text(k), Value::Int(v)];
        let updates = vec![
            (row("a", 1), 3, 1),
            (row("a", 2), 3, 1),
            (row("b", 1), 4, 1),
            (row("a", 1), 4, -1),
            (row("b", 2), 4, -1),
        ];
        timely::execute_directly(move |worker| {
            worker.dataflow::<Time, _, _>(|scope| {
                let rows = updates.to_stream(scope).as_collection();
                // Each row adds its second column to its key's sum.
                let summed = sum_by_key(rows, "test", |row: Row| {
                    let Value::Int(n) = row[1] else {
                        unreachable!()
                    };
                    (PackedRow::pack(&row[..1]), n as Diff)
                });
                summed.inner.inspect(move |(key, time, diff)| {
                    *into
                        .lock()
                        .unwrap()
                        .entry((key.unpack(), *time))
                        .or_default() += diff;
                });
            });
        });
        let key = |k: &str| vec![Value::text(k)];
        assert_eq!(
            *sums.lock().unwrap(),
            Sums::from([((key("a"), 3), 3), ((key("b"), 4), -1), ((key("a"), 4), -1)])
        );
    }
}
