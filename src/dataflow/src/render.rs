//! Renders a [`Plan`] into one timely/differential dataflow.
//!
//! The plan is data; this module walks its nodes once, in order, and renders each
//! by one `match` into differential operators. Nodes are shared by construction
//! (the planner hash-conses them), so a node used by several views — a filtered
//! source, an arrangement by a join key — is rendered, and arranged, once.
//! Operator families live in submodules: scalar (map, filter, flat-map, windows),
//! [`reduce`] (aggregates), [`join`], and [`topk`]. The stateless nodes below a
//! source, and the key stages of the reductions they feed, are not operators of
//! their own: they are evaluated inside the source's operator ([`fused`]).

mod distinct;
mod first_seen;
mod fused;
mod join;
mod keyed;
mod packed;
mod pending;
mod reduce;
mod scalar;
mod state;
#[cfg(test)]
mod testing;
mod topk;
mod topk_counts;
mod totals;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::{KeySpine, ValSpine};
use differential_dataflow::VecCollection;
use kappa_log::Log;
use kappa_sql::plan::{Node, Plan};
use kappa_sql::Row;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, Stream};

use self::fused::Fusion;
use self::reduce::{CountRow, Counts, KeyedInput, Reduction};
use crate::error::DataError;
use crate::source::{render_source, SourceConfig, SourceControl, SourceProgress};
use crate::{Diff, Time};

/// A collection of rows.
pub type Rows<'s> = VecCollection<'s, Time, Row, Diff>;
/// A collection of packed rows: what views hand to the store.
pub(crate) type PackedRows<'s> = VecCollection<'s, Time, PackedRow, Diff>;
/// Rows arranged by a key row.
pub type ArrangedRows<'s> = Arranged<'s, TraceAgent<ValSpine<Row, Row, Time, Diff>>>;
/// A stream of data errors.
pub type Errors<'s> = Stream<'s, Time, Vec<(DataError, Time, Diff)>>;

pub(crate) use fused::FusedSink;
pub(crate) use packed::{unpack_bytes, PackedRow};

/// A rendered node: its rows (unless it is fused and nothing needs them as a
/// collection), its arrangement when it is an `Arrange` node, and, for a reduction
/// whose counts a top-k ranks directly, those counts instead of rows.
#[derive(Clone)]
struct Rendered<'s> {
    rows: Option<Rows<'s>>,
    arranged: Option<ArrangedRows<'s>>,
    counts: Option<(Counts<'s>, CountRow)>,
}

/// The size of one update in each arrangement the renderer names: its key, value,
/// time and diff as laid out in a batch (heap data of long keys, rows and vectors
/// not included). Metrics multiply it by the updates an arrangement holds.
#[derive(Clone, Default)]
pub(crate) struct UpdateSizes(Rc<RefCell<BTreeMap<String, usize>>>);

impl UpdateSizes {
    /// Notes the update size of the arrangement `name`, of keys `K`, values `V`, diffs
    /// `R` (or of an operator's state entries reported as such: [`state`]).
    pub(crate) fn note<K, V, R>(&self, name: &str) {
        let bytes = std::mem::size_of::<(K, V, Time, R)>();
        self.0.borrow_mut().insert(name.to_string(), bytes);
    }

    /// `collection` arranged by itself under `name`, its update size noted.
    pub(crate) fn arrange_by_self<'s, K, R>(
        &self,
        collection: VecCollection<'s, Time, K, R>,
        name: &str,
    ) -> Arranged<'s, TraceAgent<KeySpine<K, Time, R>>>
    where
        K: differential_dataflow::ExchangeData + differential_dataflow::Hashable,
        R: differential_dataflow::ExchangeData + differential_dataflow::difference::Semigroup,
    {
        self.note::<K, (), R>(name);
        collection.arrange_by_self_named(name)
    }
}

/// The outputs of a rendered plan on one worker.
pub struct RenderedPlan<'s> {
    /// Each view's rows, packed, in plan order.
    pub(crate) views: Vec<PackedRows<'s>>,
    /// Data errors of every source and operator.
    pub errors: Errors<'s>,
    /// Source progress.
    pub progress: Stream<'s, Time, Vec<(SourceProgress, Time, Diff)>>,
    /// Bytes per update of the arrangements it named.
    pub update_bytes: BTreeMap<String, usize>,
}

/// Renders every node of `plan` and returns the views' collections.
pub(crate) fn render_plan<'s>(
    scope: Scope<'s, Time>,
    plan: &Plan,
    log: Arc<dyn Log>,
    source_config: &SourceConfig,
    probe: &ProbeHandle<Time>,
    control: Rc<SourceControl>,
) -> Result<RenderedPlan<'s>, kappa_log::LogError> {
    let mut rendered: Vec<Rendered<'s>> = Vec::with_capacity(plan.nodes.len());
    let sizes = UpdateSizes::default();
    let mut errors: Vec<Errors<'s>> = Vec::new();
    let mut progress = Vec::new();
    let fusion = Fusion::new(plan);
    let reductions: Vec<Option<Reduction>> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(id, n)| match &n.node {
            Node::Reduce {
                input,
                key,
                aggregates,
            } => Some(Reduction::new(
                id,
                &plan.nodes[*input].columns,
                key,
                aggregates,
                &n.columns,
            )),
            _ => None,
        })
        .collect();
    let readers = readers(plan);
    let ranked_counts = counts_ranked_by_top_k(plan, &reductions, &readers);
    // Reductions' outputs, for the views among them: packed from their totals.
    let mut reduced: BTreeMap<usize, reduce::ReduceOutput<'s>> = BTreeMap::new();
    let mut fused_rows: BTreeMap<usize, Rows<'s>> = BTreeMap::new();
    let mut fused_keyed: BTreeMap<usize, KeyedInput<'s>> = BTreeMap::new();
    for (index, def) in plan.sources.iter().enumerate() {
        let mut fused = None;
        let streams = render_source(
            scope,
            index,
            def,
            log.clone(),
            source_config,
            probe.clone(),
            control.clone(),
            |builder| {
                let (sink, streams) = FusedSink::build(plan, &fusion, &reductions, index, builder);
                fused = Some(streams);
                sink
            },
        )?;
        errors.push(streams.errors);
        progress.push(streams.progress);
        let fused = fused.expect("the source operator builds its sink");
        fused_rows.extend(fused.rows);
        fused_keyed.extend(fused.keyed);
    }
    for (id, plan_node) in plan.nodes.iter().enumerate() {
        if fusion.is_fused(id) {
            rendered.push(Rendered {
                rows: fused_rows.remove(&id),
                arranged: None,
                counts: None,
            });
            continue;
        }
        let input = |i: usize| {
            rendered[i]
                .rows
                .clone()
                .expect("rows read as a collection are materialized")
        };
        let arranged = |i: usize| {
            rendered[i]
                .arranged
                .clone()
                .expect("the planner gives joins Arrange inputs")
        };
        let node = match &plan_node.node {
            Node::Source { .. } => unreachable!("sources are fused"),
            Node::Map { input: i, exprs } => {
                let (rows, errs) = scalar::map(input(*i), id, exprs.clone());
                errors.push(errs);
                Rendered::rows(rows)
            }
            Node::Filter {
                input: i,
                predicate,
            } => {
                let (rows, errs) = scalar::filter(input(*i), id, predicate.clone());
                errors.push(errs);
                Rendered::rows(rows)
            }
            Node::FlatMap { input: i, func } => {
                let (rows, errs) = scalar::flat_map(input(*i), id, func.clone());
                errors.push(errs);
                Rendered::rows(rows)
            }
            Node::Window {
                input: i,
                time_column,
                size_ms,
                slide_ms,
            } => Rendered::rows(scalar::window(input(*i), *time_column, *size_ms, *slide_ms)),
            Node::Arrange { input: i, key } => {
                let rows = input(*i);
                let key = key.clone();
                let name = format!("Arrange %{id}");
                sizes.note::<Row, Row, Diff>(&name);
                let arranged = rows
                    .clone()
                    .map(move |row| (project(&row, &key), row))
                    .arrange_by_key_named(&name);
                Rendered {
                    rows: Some(rows),
                    arranged: Some(arranged),
                    counts: None,
                }
            }
            Node::Join { left, right, kind } => Rendered::rows(join::join(
                arranged(*left),
                input(*left),
                arranged(*right),
                *kind,
                plan.nodes[*right].columns.len(),
                match &plan.nodes[*left].node {
                    Node::Arrange { key, .. } => key.clone(),
                    _ => unreachable!("join inputs are Arrange nodes"),
                },
            )),
            Node::Reduce { input: i, .. } => {
                let reduction = reductions[id].as_ref().expect("analysed above");
                let keyed = match fused_keyed.remove(&id) {
                    Some(keyed) => keyed,
                    None => {
                        let (keyed, errs) = reduction.key_operator(input(*i));
                        errors.push(errs);
                        keyed
                    }
                };
                if ranked_counts.contains(&id) {
                    Rendered {
                        rows: None,
                        arranged: None,
                        counts: Some(reduction.render_counts(scope, &sizes, keyed)),
                    }
                } else {
                    let output = reduction.render(scope, &sizes, keyed);
                    // Rows only for readers in the plan: a view takes packed rows.
                    let rows = (!readers[id].is_empty()).then(|| output.rows());
                    reduced.insert(id, output);
                    Rendered {
                        rows,
                        arranged: None,
                        counts: None,
                    }
                }
            }
            Node::Distinct { input: i } => Rendered::rows(input(*i).distinct()),
            Node::Union { inputs } => {
                let mut rows = input(inputs[0]);
                for i in &inputs[1..] {
                    rows = rows.concat(input(*i));
                }
                Rendered::rows(rows)
            }
            Node::TopK {
                input: i,
                group_key,
                order_by,
                limit,
                offset,
                row_number,
            } => {
                let selection = topk::Selection {
                    limit: *limit,
                    offset: *offset,
                    row_number: *row_number,
                };
                Rendered::rows(match rendered[*i].counts.clone() {
                    Some((counts, count_row)) => {
                        topk::top_k_of_counts(counts, count_row, order_by.clone(), selection)
                    }
                    None => topk::top_k(input(*i), group_key.clone(), order_by.clone(), selection),
                })
            }
        };
        rendered.push(node);
    }
    let views = plan
        .views
        .iter()
        .map(|v| match reduced.get(&v.node) {
            Some(output) => output.packed(),
            None => pack_rows(
                rendered[v.node]
                    .rows
                    .clone()
                    .expect("views are materialized"),
            ),
        })
        .collect();
    Ok(RenderedPlan {
        views,
        errors: scope.concatenate(errors),
        progress: scope.concatenate(progress),
        update_bytes: sizes.0.take(),
    })
}

impl<'s> Rendered<'s> {
    fn rows(rows: Rows<'s>) -> Self {
        Rendered {
            rows: Some(rows),
            arranged: None,
            counts: None,
        }
    }
}

/// `rows` packed, for the store.
pub(crate) fn pack_rows(rows: Rows<'_>) -> PackedRows<'_> {
    rows.map(|row| PackedRow::pack(&row))
}

/// Per node, the nodes that read it, in plan order.
pub(super) fn readers(plan: &Plan) -> Vec<Vec<usize>> {
    let mut readers = vec![Vec::new(); plan.nodes.len()];
    for (id, node) in plan.nodes.iter().enumerate() {
        for input in node.node.inputs() {
            readers[input].push(id);
        }
    }
    readers
}

/// The reductions of plain counts ([`Reduction::is_plain_counts`]) that are not
/// views and whose one reader is a global top-k: that top-k ranks their running
/// counts directly ([`topk::top_k_of_counts`]), and their rows are never made.
fn counts_ranked_by_top_k(
    plan: &Plan,
    reductions: &[Option<Reduction>],
    readers: &[Vec<usize>],
) -> BTreeSet<usize> {
    let views: BTreeSet<usize> = plan.views.iter().map(|v| v.node).collect();
    let global_top_k = |id: usize| matches!(&plan.nodes[id].node, Node::TopK { group_key, .. } if group_key.is_empty());
    (0..plan.nodes.len())
        .filter(|id| {
            reductions[*id]
                .as_ref()
                .is_some_and(Reduction::is_plain_counts)
                && !views.contains(id)
                && matches!(readers[*id].as_slice(), [reader] if global_top_k(*reader))
        })
        .collect()
}

/// The values of `columns` of `row`, as a key row.
pub(crate) fn project(row: &[kappa_sql::Value], columns: &[usize]) -> Row {
    columns.iter().map(|c| row[*c].clone()).collect()
}
