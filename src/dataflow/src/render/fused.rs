//! The stateless part of a plan, fused into its source operator.
//!
//! Below every source hangs a tree of row-at-a-time nodes (projections, filters,
//! table functions, window assignment) ending in reductions or in operators that
//! need rows as a collection (arrangements, joins, top-k, unions, views). Rendered
//! as operators of their own, each row was allocated by the decoder, deep-copied
//! once per extra consumer of the source's stream (timely's fan-out clones every
//! message for every consumer but the last), copied again by each stage, and held
//! in channel queues a whole batch at a time: most of a replay's time and memory
//! traffic went into rows that a reduction turned into a packed key a moment later.
//!
//! Fused, the source decodes each record into one reused buffer and hands it, by
//! reference, down this tree ([`FusedSink::push`]): a node writes what it computes
//! into a buffer of its own and passes that on; a reduction's key stage
//! ([`super::keyed::KeyStage`]) sums it into its per-batch maps; only a node whose
//! rows someone needs as a collection copies them into an output port. A failing
//! expression makes its row a data error and the row goes no further, as in the
//! unfused operators ([`super::scalar`]), which render the same nodes anywhere
//! else in a plan with the same per-row functions.

use kappa_sql::expr::Expr;
use kappa_sql::plan::{Node, Plan, TableFunc};
use kappa_sql::{Row, Value};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;

use super::keyed::{self, Port};
use super::reduce::{KeyedInput, Reduction};
use super::{scalar, Rows};
use crate::error::DataError;
use crate::{Diff, Time};

/// A consumer of rows inside a fused operator that sums them per batch.
pub(crate) trait RowStage {
    /// Takes `row` at `time`, `diff` times; `capabilities` are the operator's, one
    /// per output port, at or before `time`. A row that fails is returned as an error.
    fn push(
        &mut self,
        row: &[Value],
        time: Time,
        diff: Diff,
        capabilities: &[Capability<Time>],
    ) -> Result<(), DataError>;

    /// Sends what was taken since the last flush.
    fn flush(&mut self);
}

/// How the nodes of a plan are rendered: which are fused into their source, and
/// which of those must also give their rows to an output.
pub(super) struct Fusion {
    /// Per node, the source whose operator evaluates it (sources and the stateless
    /// nodes below them).
    fused_into: Vec<Option<usize>>,
    /// Per fused node, whether its rows are needed as a collection.
    materialized: Vec<bool>,
    /// Per node, the nodes that read it, in plan order.
    readers: Vec<Vec<usize>>,
}

impl Fusion {
    /// Decides the fusion of `plan`.
    pub(super) fn new(plan: &Plan) -> Self {
        let count = plan.nodes.len();
        let mut fused_into = vec![None; count];
        let readers = super::readers(plan);
        for (id, node) in plan.nodes.iter().enumerate() {
            fused_into[id] = match &node.node {
                Node::Source { source } => Some(*source),
                Node::Map { input, .. }
                | Node::Filter { input, .. }
                | Node::FlatMap { input, .. }
                | Node::Window { input, .. } => fused_into[*input],
                _ => None,
            };
        }
        // A fused node's rows are needed by a view on it and by every reader that is
        // neither fused nor a reduction (whose key stage is fused instead).
        let mut materialized = vec![false; count];
        for view in &plan.views {
            materialized[view.node] = fused_into[view.node].is_some();
        }
        for (id, node) in plan.nodes.iter().enumerate() {
            let takes_rows = fused_into[id].is_none() && !matches!(node.node, Node::Reduce { .. });
            if takes_rows {
                for input in node.node.inputs() {
                    if fused_into[input].is_some() {
                        materialized[input] = true;
                    }
                }
            }
        }
        Fusion {
            fused_into,
            materialized,
            readers,
        }
    }

    /// Whether `node` is evaluated inside its source's operator.
    pub(super) fn is_fused(&self, node: usize) -> bool {
        self.fused_into[node].is_some()
    }
}

/// What a fused operator gives the rest of the dataflow.
#[derive(Default)]
pub(super) struct FusedStreams<'s> {
    /// The rows of each materialized node, by node.
    pub(super) rows: Vec<(usize, Rows<'s>)>,
    /// The key stage's outputs of each fused reduction, by node.
    pub(super) keyed: Vec<(usize, KeyedInput<'s>)>,
}

/// The fused tree of one source: see the module documentation.
pub(crate) struct FusedSink {
    roots: Vec<FusedNode>,
}

impl FusedSink {
    /// Builds source `source`'s tree of `plan` on `builder`, each output a new port.
    /// `reductions` holds the analysed `Reduce` nodes of the plan.
    pub(super) fn build<'s>(
        plan: &Plan,
        fusion: &Fusion,
        reductions: &[Option<Reduction>],
        source: usize,
        builder: &mut OperatorBuilder<'s, Time>,
    ) -> (Self, FusedStreams<'s>) {
        let mut streams = FusedStreams::default();
        let mut build = Builder {
            plan,
            fusion,
            reductions,
            builder,
            streams: &mut streams,
        };
        let roots = plan
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.node, Node::Source { source: s } if s == source))
            .map(|(id, _)| build.node(id, Step::Pass))
            .collect();
        (FusedSink { roots }, streams)
    }

    /// Takes one decoded row of the source at `time`; rows that fail somewhere in the
    /// tree are added to `errors`.
    pub(crate) fn push(
        &mut self,
        row: &[Value],
        time: Time,
        capabilities: &[Capability<Time>],
        errors: &mut Vec<DataError>,
    ) {
        for root in &mut self.roots {
            root.push(row, time, capabilities, errors);
        }
    }

    /// Sends everything taken since the last flush; `capabilities` as for `push`.
    pub(crate) fn flush(&mut self, capabilities: &[Capability<Time>]) {
        for root in &mut self.roots {
            root.flush(capabilities, true);
        }
    }

    /// Sends the rows taken for materialized nodes, and keeps what the key stages
    /// summed for a later [`FusedSink::flush`]: sums grow with distinct keys, rows with
    /// every record, so a source that keeps a time open over several reads sends rows
    /// as it goes.
    pub(crate) fn flush_rows(&mut self, capabilities: &[Capability<Time>]) {
        for root in &mut self.roots {
            root.flush(capabilities, false);
        }
    }
}

struct Builder<'a, 'b, 's> {
    plan: &'a Plan,
    fusion: &'a Fusion,
    reductions: &'a [Option<Reduction>],
    builder: &'b mut OperatorBuilder<'s, Time>,
    streams: &'b mut FusedStreams<'s>,
}

impl Builder<'_, '_, '_> {
    /// The fused node `id`, computing `step`, with its readers below it.
    fn node(&mut self, id: usize, step: Step) -> FusedNode {
        let mut consumers = Vec::new();
        if self.fusion.materialized[id] {
            let port = self.builder.shape().outputs();
            let (output, stream) = self.builder.new_output();
            self.streams.rows.push((
                id,
                differential_dataflow::AsCollection::as_collection(stream),
            ));
            consumers.push(Consumer::Rows(RowsPort {
                port,
                output: OutputBuilder::from(output),
                buffer: Vec::new(),
            }));
        }
        for &reader in &self.fusion.readers[id] {
            let consumer = match &self.plan.nodes[reader].node {
                Node::Reduce { .. } => {
                    let reduction = self.reductions[reader]
                        .as_ref()
                        .expect("every Reduce node is analysed");
                    let (stage, keyed) = reduction.key_stage(self.builder);
                    self.streams.keyed.push((reader, keyed));
                    Consumer::Stage(stage)
                }
                Node::Map { exprs, .. } => {
                    Consumer::Node(self.node(reader, Step::Map(exprs.clone())))
                }
                Node::Filter { predicate, .. } => {
                    Consumer::Node(self.node(reader, Step::Filter(predicate.clone())))
                }
                Node::FlatMap { func, .. } => {
                    Consumer::Node(self.node(reader, Step::FlatMap(func.clone())))
                }
                Node::Window {
                    time_column,
                    size_ms,
                    slide_ms,
                    ..
                } => Consumer::Node(self.node(
                    reader,
                    Step::Window {
                        time_column: *time_column,
                        size_ms: *size_ms,
                        slide_ms: *slide_ms,
                    },
                )),
                // Readers that take rows read the materialized output.
                _ => continue,
            };
            consumers.push(consumer);
        }
        FusedNode {
            id,
            step,
            out: Row::new(),
            consumers,
        }
    }
}

/// What a fused node computes from its input row.
enum Step {
    /// The row itself (a source).
    Pass,
    Map(Vec<Expr>),
    Filter(Expr),
    FlatMap(TableFunc),
    Window {
        time_column: usize,
        size_ms: i64,
        slide_ms: i64,
    },
}

enum Consumer {
    Node(FusedNode),
    Stage(Box<dyn RowStage>),
    Rows(RowsPort),
}

/// An output port for a node's rows, buffered until the flush or a full chunk.
struct RowsPort {
    port: usize,
    output: Port<(Row, Time, Diff)>,
    buffer: Vec<(Row, Time, Diff)>,
}

struct FusedNode {
    id: usize,
    step: Step,
    /// The buffer the node's output rows are written into, one at a time.
    out: Row,
    consumers: Vec<Consumer>,
}

impl FusedNode {
    fn push(
        &mut self,
        row: &[Value],
        time: Time,
        capabilities: &[Capability<Time>],
        errors: &mut Vec<DataError>,
    ) {
        let FusedNode {
            id,
            step,
            out,
            consumers,
        } = self;
        let mut give = |row: &[Value], errors: &mut Vec<DataError>| {
            give_all(consumers, row, time, capabilities, errors)
        };
        let failed = match step {
            Step::Pass => {
                give(row, errors);
                Ok(())
            }
            Step::Map(exprs) => scalar::project_into(exprs, row, out).map(|()| give(out, errors)),
            Step::Filter(predicate) => scalar::holds(predicate, row).map(|holds| {
                if holds {
                    give(row, errors)
                }
            }),
            Step::FlatMap(func) => scalar::table_values(func, row, |piece| {
                out.clear();
                out.extend_from_slice(row);
                out.push(Value::text(piece));
                give(out, errors);
            }),
            Step::Window {
                time_column,
                size_ms,
                slide_ms,
            } => {
                for (start, end) in scalar::row_windows(row, *time_column, *size_ms, *slide_ms) {
                    out.clear();
                    out.extend_from_slice(row);
                    out.extend([Value::Timestamp(start), Value::Timestamp(end)]);
                    give(out, errors);
                }
                Ok(())
            }
        };
        if let Err(error) = failed {
            errors.push(scalar::eval_error(*id, &error, row));
        }
    }

    /// Flushes the rows ports below, and the key stages when `stages` is set.
    fn flush(&mut self, capabilities: &[Capability<Time>], stages: bool) {
        for consumer in &mut self.consumers {
            match consumer {
                Consumer::Node(node) => node.flush(capabilities, stages),
                Consumer::Stage(stage) => {
                    if stages {
                        stage.flush()
                    }
                }
                Consumer::Rows(port) => {
                    keyed::send(&mut port.output, &capabilities[port.port], &mut port.buffer)
                }
            }
        }
    }
}

fn give_all(
    consumers: &mut [Consumer],
    row: &[Value],
    time: Time,
    capabilities: &[Capability<Time>],
    errors: &mut Vec<DataError>,
) {
    for consumer in consumers {
        match consumer {
            Consumer::Node(node) => node.push(row, time, capabilities, errors),
            Consumer::Stage(stage) => {
                if let Err(error) = stage.push(row, time, 1, capabilities) {
                    errors.push(error);
                }
            }
            Consumer::Rows(port) => keyed::buffer(
                &mut port.output,
                &capabilities[port.port],
                &mut port.buffer,
                (row.to_vec(), time, 1),
            ),
        }
    }
}
