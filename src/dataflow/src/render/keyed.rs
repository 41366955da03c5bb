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
//! - each `DISTINCT` aggregate's `(key, value)` pairs are packed and sent as they
//!   are: pairs repeat little within a batch (most are a user's first visit of a
//!   page), so a map would cost more than it saves; the arrangement's batcher
//!   consolidates what does repeat;
//! - rows for `MIN`/`MAX` pass through as `(key, arguments)`, only when such an
//!   aggregate exists.
//!
//! The work is a [`KeyStage`]: rows in, one at a time, by reference; its outputs
//! are ports of whichever operator holds it. A reduce over a source's rows (or
//! rows derived from them by stateless operators) has its stage inside the source
//! operator itself ([`super::fused`]), so those rows are never materialized; any
//! other reduce gets a `Key` operator of its own ([`keyed`]).
//!
//! Nothing is held across activations: the stage is flushed at the end of every
//! activation, at the times of the batches it summed, so it adds no latency and
//! holds no capability. An argument that fails to evaluate makes its row a data
//! error, and the row contributes nothing.

use differential_dataflow::difference::{IsZero, Monoid, Semigroup};
use differential_dataflow::{AsCollection, VecCollection};
use kappa_sql::expr::Expr;
use kappa_sql::{Row, Value};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, InputCapability, Operator};

use super::fused::RowStage;
use super::packed::{PackedMap, PackedRow};
use super::{scalar, Errors, Rows};
use crate::error::DataError;
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

/// What one row adds to its key's sum.
pub(super) trait Contribution: 'static {
    /// The sum: a differential diff.
    type Sum: Monoid + differential_dataflow::ExchangeData;
    /// Adds the contribution of a row with arguments `args` (empty unless the plan
    /// evaluates them), `diff` times, to `sum`.
    fn add(&self, sum: &mut Self::Sum, args: &[Value], diff: Diff);
}

/// Every row adds its diff: `COUNT(*)` alone, in a plain integer.
pub(super) struct RowCount;

impl Contribution for RowCount {
    type Sum = Diff;
    fn add(&self, sum: &mut Diff, _args: &[Value], diff: Diff) {
        *sum += diff;
    }
}

/// The key stage's outputs.
pub(super) struct Keyed<'s, R: Semigroup + 'static> {
    /// Per key, the summed contributions of its rows (diff `R`).
    pub(super) sums: VecCollection<'s, Time, PackedRow, R>,
    /// Per `DISTINCT` aggregate, its `(key, value)` pairs packed together (NULLs left out).
    pub(super) distinct: Vec<VecCollection<'s, Time, PackedRow, Diff>>,
    /// `(key, arguments)` per row, when asked for.
    pub(super) rows: VecCollection<'s, Time, (PackedRow, Row), Diff>,
    /// Whether the stage's input only ever grows (no retractions): a stage fused into
    /// a source is, and then its distinct pairs need no arrangement
    /// ([`super::distinct`]).
    pub(super) monotonic: bool,
}

/// Adds to `key`'s entry with `add`, copying the key only when it is new.
fn add_to<R: Monoid>(sums: &mut PackedMap<R>, key: &PackedRow, add: impl FnOnce(&mut R)) {
    match sums.get_mut(key) {
        Some(sum) => add(sum),
        None => {
            let mut sum = R::zero();
            add(&mut sum);
            sums.insert(key.clone(), sum);
        }
    }
}

/// Updates a stage buffers per output before it sends them, when it does not sum them.
const SEND_CHUNK: usize = 4096;

/// An output port of an operator built by hand, sending vectors of `D`.
pub(super) type Port<D> = OutputBuilder<Time, CapacityContainerBuilder<Vec<D>>>;

/// Sends what `buffer` holds on `port` (leaving it empty).
pub(super) fn send<D: Clone + 'static>(
    port: &mut Port<D>,
    capability: &Capability<Time>,
    buffer: &mut Vec<D>,
) {
    if !buffer.is_empty() {
        port.activate().session(capability).give_container(buffer);
    }
}

/// Adds `item` to `buffer`, sending the buffer once it holds [`SEND_CHUNK`] items: a
/// span's worth of unsummed updates would otherwise grow one vector to its whole size.
pub(super) fn buffer<D: Clone + 'static>(
    port: &mut Port<D>,
    capability: &Capability<Time>,
    buffer: &mut Vec<D>,
    item: D,
) {
    buffer.push(item);
    if buffer.len() >= SEND_CHUNK {
        send(port, capability, buffer);
    }
}

/// A stage's buffers for one time: the sums, and each `DISTINCT` aggregate's pairs.
type Maps<R> = (PackedMap<R>, Vec<Vec<(PackedRow, Time, Diff)>>);

/// What a stage has summed for one time since it was last flushed.
struct Pending<R> {
    time: Time,
    /// Capabilities at `time` for the sums port, each distinct port and the rows port.
    capabilities: Vec<Capability<Time>>,
    sums: PackedMap<R>,
    distinct: Vec<Vec<(PackedRow, Time, Diff)>>,
    rows: Vec<((PackedRow, Row), Time, Diff)>,
}

/// The input stage of one reduce: see the module documentation.
pub(super) struct KeyStage<C: Contribution> {
    node: usize,
    plan: KeyPlan,
    contribution: C,
    /// The index of the sums port among its operator's outputs; the distinct ports
    /// and the rows port follow it.
    first_port: usize,
    sums_output: Port<(PackedRow, Time, C::Sum)>,
    distinct_outputs: Vec<Port<(PackedRow, Time, Diff)>>,
    rows_output: Port<((PackedRow, Row), Time, Diff)>,
    pending: Vec<Pending<C::Sum>>,
    /// Emptied maps of earlier activations, kept for their capacity.
    spare: Vec<Maps<C::Sum>>,
    /// One buffer for every row's arguments: no allocation per row.
    args: Row,
}

impl<C: Contribution> KeyStage<C> {
    /// A stage whose outputs are new ports of `builder`, and their streams.
    pub(super) fn new<'s>(
        builder: &mut OperatorBuilder<'s, Time>,
        node: usize,
        plan: KeyPlan,
        contribution: C,
    ) -> (Self, Keyed<'s, C::Sum>) {
        let first_port = builder.shape().outputs();
        let (sums_output, sums) = builder.new_output();
        let mut distinct_outputs = Vec::new();
        let mut distinct = Vec::new();
        for _ in &plan.distinct_args {
            let (output, stream) = builder.new_output();
            distinct_outputs.push(OutputBuilder::from(output));
            distinct.push(stream.as_collection());
        }
        let (rows_output, rows) = builder.new_output();
        let stage = KeyStage {
            node,
            plan,
            contribution,
            first_port,
            sums_output: OutputBuilder::from(sums_output),
            distinct_outputs,
            rows_output: OutputBuilder::from(rows_output),
            pending: Vec::new(),
            spare: Vec::new(),
            args: Row::new(),
        };
        let keyed = Keyed {
            sums: sums.as_collection(),
            distinct,
            rows: rows.as_collection(),
            monotonic: false,
        };
        (stage, keyed)
    }

    /// The ports this stage's outputs occupy in its operator.
    fn ports(&self) -> std::ops::Range<usize> {
        self.first_port..self.first_port + 2 + self.plan.distinct_args.len()
    }

    /// Adds `row` at `time`, `diff` times. `capability` gives a capability at `time`
    /// for an output port of the operator, asked only for a time new since the last
    /// flush. An argument that fails to evaluate is returned as the row's error.
    pub(super) fn push(
        &mut self,
        row: &[Value],
        time: Time,
        diff: Diff,
        capability: impl Fn(usize) -> Capability<Time>,
    ) -> Result<(), DataError> {
        // Updates of one message may carry different times; each is summed at its own.
        let slot = match self.pending.iter().rposition(|p| p.time == time) {
            Some(slot) => slot,
            None => {
                let (sums, distinct) = self.spare.pop().unwrap_or_else(|| {
                    let distinct = vec![Vec::new(); self.plan.distinct_args.len()];
                    (PackedMap::default(), distinct)
                });
                self.pending.push(Pending {
                    time,
                    capabilities: self.ports().map(capability).collect(),
                    sums,
                    distinct,
                    rows: Vec::new(),
                });
                self.pending.len() - 1
            }
        };
        let args = &mut self.args;
        args.clear();
        if self.plan.evaluate_args {
            if let Err(error) = self
                .plan
                .args
                .iter()
                .try_for_each(|e| e.eval(row).map(|v| args.push(v)))
            {
                return Err(scalar::eval_error(self.node, &error, row));
            }
        }
        let pending = &mut self.pending[slot];
        let key = PackedRow::pack(self.plan.key.iter().map(|c| &row[*c]));
        for (i, (pairs, arg)) in pending
            .distinct
            .iter_mut()
            .zip(&self.plan.distinct_args)
            .enumerate()
        {
            if !args[*arg].is_null() {
                let pair = (key.with(&args[*arg]), time, diff);
                let port = &mut self.distinct_outputs[i];
                buffer(port, &pending.capabilities[1 + i], pairs, pair);
            }
        }
        if self.plan.sums {
            let contribution = &self.contribution;
            add_to(&mut pending.sums, &key, |sum| {
                contribution.add(sum, args, diff)
            });
        }
        if self.plan.rows {
            let capability = pending.capabilities.last().expect("a rows port");
            let row = ((key, args.clone()), time, diff);
            buffer(&mut self.rows_output, capability, &mut pending.rows, row);
        }
        Ok(())
    }

    /// Sends what was summed since the last flush, at the times it was summed for.
    pub(super) fn flush(&mut self) {
        for mut done in self.pending.drain(..) {
            let time = done.time;
            let capabilities = &done.capabilities;
            {
                let mut sums_handle = self.sums_output.activate();
                let mut session = sums_handle.session(&capabilities[0]);
                for (key, sum) in done.sums.drain() {
                    if !sum.is_zero() {
                        session.give((key, time, sum));
                    }
                }
            }
            for (i, (port, pairs)) in self
                .distinct_outputs
                .iter_mut()
                .zip(done.distinct.iter_mut())
                .enumerate()
            {
                send(port, &capabilities[1 + i], pairs);
            }
            let rows_capability = capabilities.last().expect("a rows port");
            send(&mut self.rows_output, rows_capability, &mut done.rows);
            self.spare.push((done.sums, done.distinct));
        }
    }
}

impl<C: Contribution> RowStage for KeyStage<C> {
    fn push(
        &mut self,
        row: &[Value],
        time: Time,
        diff: Diff,
        capabilities: &[Capability<Time>],
    ) -> Result<(), DataError> {
        KeyStage::push(self, row, time, diff, |port| {
            capabilities[port].delayed(&time)
        })
    }

    fn flush(&mut self) {
        KeyStage::flush(self)
    }
}

/// Renders the key stage of a reduce over `rows` as an operator of its own, with
/// an error stream for rows whose arguments fail to evaluate.
pub(super) fn keyed<'s, C: Contribution>(
    rows: Rows<'s>,
    node: usize,
    plan: KeyPlan,
    contribution: C,
) -> (Keyed<'s, C::Sum>, Errors<'s>) {
    let scope = rows.inner.scope();
    let mut builder = OperatorBuilder::new(format!("Key %{node}"), scope);
    let mut input = builder.new_input(rows.inner, Pipeline);
    let (mut stage, keyed) = KeyStage::new(&mut builder, node, plan, contribution);
    let (errors_output, errors) = builder.new_output();
    let mut errors_output = OutputBuilder::from(errors_output);
    builder.build(move |_| {
        move |_frontiers| {
            let mut errors_handle = errors_output.activate();
            input.for_each(|cap, data| {
                let mut errors = errors_handle.session(&cap);
                for (row, time, diff) in data.drain(..) {
                    if let Err(error) =
                        stage.push(&row, time, diff, |port| cap.delayed(&time, port))
                    {
                        errors.give((error, time, diff));
                    }
                }
            });
            stage.flush();
        }
    });
    (keyed, errors)
}

/// Sums per key and time, gathered within one activation of an operator and sent
/// at its end: a pre-aggregation that adds no latency and holds no capability.
pub(super) struct TimedSums<R> {
    pending: Vec<(Capability<Time>, PackedMap<R>)>,
}

impl<R> Default for TimedSums<R> {
    fn default() -> Self {
        TimedSums {
            pending: Vec::new(),
        }
    }
}

/// The output of an operator that sends sums.
pub(super) type SumsOutput<'a, R> =
    OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<(PackedRow, Time, R)>>>;

impl<R: Monoid + Clone + 'static> TimedSums<R> {
    /// Adds to `key`'s sum at `time` with `add`; `capability` is the input's, at or
    /// before `time`.
    pub(super) fn add(
        &mut self,
        capability: &InputCapability<Time>,
        time: Time,
        key: &PackedRow,
        add: impl FnOnce(&mut R),
    ) {
        let slot = match self.pending.iter().position(|(c, _)| *c.time() == time) {
            Some(slot) => slot,
            None => {
                let delayed = capability.delayed(&time, 0);
                self.pending.push((delayed, PackedMap::default()));
                self.pending.len() - 1
            }
        };
        add_to(&mut self.pending[slot].1, key, add);
    }

    /// Sends every non-zero sum at its time, releasing the capabilities.
    pub(super) fn flush(&mut self, output: &mut SumsOutput<'_, R>) {
        for (capability, sums) in self.pending.drain(..) {
            let time = *capability.time();
            let mut session = output.session(&capability);
            for (key, sum) in sums {
                if !sum.is_zero() {
                    session.give((key, time, sum));
                }
            }
        }
    }
}

/// Sums, per time within each activation, what each update adds to its key: `key`
/// gives an update's packed key and `add` adds the update, `diff` times, to its
/// key's sum. The pre-aggregation of [`keyed`], for a stream that is keyed already
/// (the new distinct values of a `DISTINCT` aggregate, which become per-key counts).
pub(super) fn sum_by_key<'s, D, R>(
    collection: VecCollection<'s, Time, D, Diff>,
    name: &str,
    key: impl Fn(&D) -> PackedRow + 'static,
    add: impl Fn(&D, &mut R, Diff) + 'static,
) -> VecCollection<'s, Time, PackedRow, R>
where
    D: Clone + 'static,
    R: Monoid + Clone + 'static,
{
    let summed = collection
        .inner
        .unary::<CapacityContainerBuilder<Vec<(PackedRow, Time, R)>>, _, _, _>(
            Pipeline,
            name,
            |_, _| {
                let mut sums = TimedSums::default();
                move |input, output| {
                    input.for_each(|capability, data| {
                        for (item, time, diff) in data.drain(..) {
                            sums.add(&capability, time, &key(&item), |sum| add(&item, sum, diff));
                        }
                    });
                    sums.flush(output);
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
                let (keyed, _errors) = keyed(rows, 0, plan, RowCount);
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
                let summed = sum_by_key(
                    rows,
                    "test",
                    |row: &Row| PackedRow::pack(&row[..1]),
                    |row: &Row, sum: &mut Diff, diff| {
                        let Value::Int(n) = row[1] else {
                            unreachable!()
                        };
                        *sum += n as Diff * diff;
                    },
                );
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
