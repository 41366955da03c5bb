//! The batch oracle: the final state of every view over a bounded log, computed
//! as plainly as possible. It is the specification every dataflow test is checked
//! against, not a fast path: each node turns the full `Vec<Row>` of its inputs into
//! its own, with nested loops where that is clearest.
//!
//! Semantics, per node (the doc comments of [`crate::plan::Node`] are binding):
//!
//! - **Source**: each partition of the source's topic is read in offset order.
//!   A payload that does not decode ([`JsonDecoder`]) is dropped and reported as an
//!   [`ErrorRecord`] with its topic, partition and offset. Decoded rows pass the
//!   late-event rule ([`LatenessTracker`], one per partition); late rows are dropped
//!   and listed in [`OracleOutput::late`]. Records of different partitions are not
//!   ordered relative to each other, and nothing else depends on arrival order.
//! - **Map / Filter / FlatMap**: a row whose expression fails to evaluate (division
//!   by zero, overflow, a failed cast) is dropped and reported as an
//!   [`ErrorRecord`] naming the node and the input row; the rest of the rows
//!   proceed. A `Filter` keeps rows whose predicate is `TRUE` (not NULL).
//! - **Window**: each row once per window `[start, start + size)` containing its
//!   time ([`crate::window::window_starts`]); NULL times are in no window.
//! - **Join**: nested loops over the two arrangements' inputs; a key with a NULL
//!   never matches; `Left` pads unmatched left rows with NULLs.
//! - **Reduce**: groups by key; aggregates skip NULLs (`COUNT(*)` counts rows);
//!   `DISTINCT` aggregates see each distinct non-NULL value once; `SUM`/`AVG`
//!   accumulate exactly ([`crate::aggregate::accumulate`], as the dataflow does); a global aggregate (empty key) has
//!   one row even over no input.
//! - **TopK**: per group, rows sorted by [`compare_rows`], ranks
//!   `offset + 1 ..= offset + limit` kept, the rank appended when asked.
//!
//! Each view's rows are returned as a sorted multiset.

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::{accumulate, finish};
use crate::decode::JsonDecoder;
use crate::expr::{compare, is_true};
use crate::lateness::LatenessTracker;
use crate::plan::{
    compare_rows, AggFunc, Aggregate, JoinKind, Node, NodeId, Plan, TableFunc, ViewDef,
};
use crate::types::{Row, ScalarType, Value};

/// The bounded log the oracle reads: per topic, per partition (by index), the
/// payloads in offset order (the offset of a record is its index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OracleInput {
    /// Topic name → partitions → payloads.
    pub topics: BTreeMap<String, Vec<Vec<Vec<u8>>>>,
}

impl OracleInput {
    /// An empty log.
    pub fn new() -> Self {
        OracleInput::default()
    }

    /// Appends a record to a partition of a topic (creating empty partitions below it).
    pub fn push(&mut self, topic: &str, partition: u32, payload: impl Into<Vec<u8>>) {
        let partitions = self.topics.entry(topic.to_string()).or_default();
        let index = partition as usize;
        if partitions.len() <= index {
            partitions.resize(index + 1, Vec::new());
        }
        partitions[index].push(payload.into());
    }
}

/// Where a dropped record or row came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorOrigin {
    /// A record of the log that did not decode.
    Record {
        /// Its topic.
        topic: String,
        /// Its partition.
        partition: u32,
        /// Its offset.
        offset: u64,
    },
    /// A row whose expression failed in a node.
    Row {
        /// The node (a `Map`, `Filter`, `FlatMap` or `Reduce`).
        node: NodeId,
        /// The input row it failed on.
        row: Row,
    },
}

/// A record or row dropped because of bad data, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrorRecord {
    /// Where it came from.
    pub origin: ErrorOrigin,
    /// Why it was dropped (the `Display` of the decode or evaluation error).
    pub reason: String,
}

/// A record of the log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordRef {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
}

/// What the oracle computes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OracleOutput {
    /// Each view's rows, sorted (a multiset).
    pub views: BTreeMap<String, Vec<Row>>,
    /// Records that did not decode and rows whose expressions failed.
    pub errors: Vec<ErrorRecord>,
    /// Records dropped as late, per the lateness rule.
    pub late: Vec<RecordRef>,
}

/// A plan the oracle cannot evaluate (the planner never produces one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OracleError {
    /// A node reads a node that is not before it.
    #[error("node %{node} reads %{input}, which is not an earlier node")]
    NotTopological {
        /// The reading node.
        node: NodeId,
        /// What it reads.
        input: NodeId,
    },
    /// A join input that is not an `Arrange` node.
    #[error("join %{node} reads %{input}, which is not an Arrange node")]
    JoinInputNotArranged {
        /// The join.
        node: NodeId,
        /// The input.
        input: NodeId,
    },
    /// A view or source reference out of range.
    #[error("reference out of range: {0}")]
    OutOfRange(String),
}

/// Evaluates every view of `plan` over `input`.
pub fn evaluate(plan: &Plan, input: &OracleInput) -> Result<OracleOutput, OracleError> {
    let mut out = OracleOutput::default();
    let mut results: Vec<Vec<Row>> = Vec::with_capacity(plan.nodes.len());
    for (id, plan_node) in plan.nodes.iter().enumerate() {
        for i in plan_node.node.inputs() {
            if i >= id {
                return Err(OracleError::NotTopological { node: id, input: i });
            }
        }
        let rows = evaluate_node(plan, id, &results, input, &mut out)?;
        results.push(rows);
    }
    for view in &plan.views {
        let mut rows = results.get(view.node).cloned().ok_or_else(|| {
            OracleError::OutOfRange(format!("view {} node %{}", view.name, view.node))
        })?;
        rows.sort();
        out.views.insert(view.name.clone(), rows);
    }
    Ok(out)
}

/// Sorts a view's rows in its presentation order (`ORDER BY`, then the whole row).
pub fn presentation_order(view: &ViewDef, rows: &mut [Row]) {
    rows.sort_by(|a, b| compare_rows(&view.order_by, a, b));
}

fn evaluate_node(
    plan: &Plan,
    id: NodeId,
    results: &[Vec<Row>],
    input: &OracleInput,
    out: &mut OracleOutput,
) -> Result<Vec<Row>, OracleError> {
    let mut fail = |row: &Row, reason: String| {
        out.errors.push(ErrorRecord {
            origin: ErrorOrigin::Row {
                node: id,
                row: row.clone(),
            },
            reason,
        })
    };
    Ok(match &plan.nodes[id].node {
        Node::Source { source } => {
            let source = plan
                .sources
                .get(*source)
                .ok_or_else(|| OracleError::OutOfRange(format!("source {source}")))?;
            read_source(source, input, out)
        }
        Node::Map { input, exprs } => {
            let mut rows = Vec::new();
            for row in &results[*input] {
                match exprs
                    .iter()
                    .map(|e| e.eval(row))
                    .collect::<Result<Row, _>>()
                {
                    Ok(r) => rows.push(r),
                    Err(e) => fail(row, e.to_string()),
                }
            }
            rows
        }
        Node::Filter { input, predicate } => {
            let mut rows = Vec::new();
            for row in &results[*input] {
                match predicate.eval(row) {
                    Ok(v) if is_true(&v) => rows.push(row.clone()),
                    Ok(_) => {}
                    Err(e) => fail(row, e.to_string()),
                }
            }
            rows
        }
        Node::FlatMap { input, func } => {
            let TableFunc::Split { expr, delimiter } = func;
            let mut rows = Vec::new();
            for row in &results[*input] {
                match expr.eval(row) {
                    Ok(Value::Text(text)) => {
                        for piece in split(&text, delimiter) {
                            let mut r = row.clone();
                            r.push(Value::text(piece));
                            rows.push(r);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => fail(row, e.to_string()),
                }
            }
            rows
        }
        Node::Window {
            input,
            time_column,
            size_ms,
            slide_ms,
        } => {
            let mut rows = Vec::new();
            for row in &results[*input] {
                let Value::Timestamp(t) = row[*time_column] else {
                    continue;
                };
                for start in crate::window::window_starts(t, *size_ms, *slide_ms) {
                    let mut r = row.clone();
                    r.push(Value::Timestamp(start));
                    r.push(Value::Timestamp(start + size_ms));
                    rows.push(r);
                }
            }
            rows
        }
        Node::Arrange { input, .. } => results[*input].clone(),
        Node::Distinct { input } => results[*input]
            .iter()
            .cloned()
            .collect::<BTreeSet<Row>>()
            .into_iter()
            .collect(),
        Node::Union { inputs } => inputs.iter().flat_map(|i| results[*i].clone()).collect(),
        Node::Join { left, right, kind } => {
            let key_of = |arranged: NodeId| match &plan.nodes[arranged].node {
                Node::Arrange { key, .. } => Ok(key.clone()),
                _ => Err(OracleError::JoinInputNotArranged {
                    node: id,
                    input: arranged,
                }),
            };
            let (left_key, right_key) = (key_of(*left)?, key_of(*right)?);
            let right_width = plan.nodes[*right].columns.len();
            let mut rows = Vec::new();
            for l in &results[*left] {
                let lk: Vec<&Value> = left_key.iter().map(|&k| &l[k]).collect();
                let mut matched = false;
                if !lk.iter().any(|v| v.is_null()) {
                    for r in &results[*right] {
                        if right_key.iter().map(|&k| &r[k]).eq(lk.iter().copied()) {
                            matched = true;
                            rows.push(l.iter().chain(r).cloned().collect());
                        }
                    }
                }
                if !matched && *kind == JoinKind::Left {
                    let mut padded = l.clone();
                    padded.extend(std::iter::repeat_n(Value::Null, right_width));
                    rows.push(padded);
                }
            }
            rows
        }
        Node::Reduce {
            input,
            key,
            aggregates,
        } => {
            let mut groups: BTreeMap<Row, Vec<&Row>> = BTreeMap::new();
            for row in &results[*input] {
                groups
                    .entry(key.iter().map(|&k| row[k].clone()).collect())
                    .or_default()
                    .push(row);
            }
            if key.is_empty() && groups.is_empty() {
                groups.insert(vec![], vec![]);
            }
            let output_types: Vec<ScalarType> =
                plan.nodes[id].columns.iter().map(|c| c.ty).collect();
            let mut rows = Vec::new();
            for (group, members) in groups {
                let mut row = group;
                for (i, a) in aggregates.iter().enumerate() {
                    row.push(aggregate(
                        a,
                        &members,
                        output_types[key.len() + i],
                        &mut fail,
                    ));
                }
                rows.push(row);
            }
            rows
        }
        Node::TopK {
            input,
            group_key,
            order_by,
            limit,
            offset,
            row_number,
        } => {
            let mut groups: BTreeMap<Row, Vec<Row>> = BTreeMap::new();
            for row in &results[*input] {
                groups
                    .entry(group_key.iter().map(|&k| row[k].clone()).collect())
                    .or_default()
                    .push(row.clone());
            }
            let mut rows = Vec::new();
            for (_, mut members) in groups {
                members.sort_by(|a, b| compare_rows(order_by, a, b));
                let kept = members
                    .into_iter()
                    .skip(usize::try_from(*offset).unwrap_or(usize::MAX))
                    .take(usize::try_from(*limit).unwrap_or(usize::MAX));
                for (rank, mut row) in kept.enumerate() {
                    if *row_number {
                        row.push(Value::Int(rank as i64 + 1));
                    }
                    rows.push(row);
                }
            }
            rows
        }
    })
}

/// Decodes a source's partitions and applies the lateness rule.
fn read_source(
    source: &crate::plan::SourceDef,
    input: &OracleInput,
    out: &mut OracleOutput,
) -> Vec<Row> {
    let decoder = JsonDecoder::new(source);
    let mut rows = Vec::new();
    let Some(partitions) = input.topics.get(&source.topic) else {
        return rows;
    };
    for (partition, records) in partitions.iter().enumerate() {
        let mut tracker = LatenessTracker::new(source.lateness_ms);
        for (offset, payload) in records.iter().enumerate() {
            let (partition, offset) = (partition as u32, offset as u64);
            let row = match decoder.decode(payload) {
                Ok(row) => row,
                Err(e) => {
                    out.errors.push(ErrorRecord {
                        origin: ErrorOrigin::Record {
                            topic: source.topic.clone(),
                            partition,
                            offset,
                        },
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            if let Some(t) = source.event_time {
                // The decoder guarantees the event time is a non-NULL timestamp.
                if let Value::Timestamp(ts) = row[t] {
                    if !tracker.admit(ts) {
                        out.late.push(RecordRef {
                            topic: source.topic.clone(),
                            partition,
                            offset,
                        });
                        continue;
                    }
                }
            }
            rows.push(row);
        }
    }
    rows
}

/// The pieces of `text` between occurrences of `delimiter` (runs of whitespace when
/// it is empty), without empty pieces.
pub fn split<'a>(text: &'a str, delimiter: &'a str) -> Vec<&'a str> {
    if delimiter.is_empty() {
        text.split_whitespace().collect()
    } else {
        text.split(delimiter).filter(|p| !p.is_empty()).collect()
    }
}

fn aggregate(
    a: &Aggregate,
    rows: &[&Row],
    output_type: ScalarType,
    fail: &mut impl FnMut(&Row, String),
) -> Value {
    if a.func == AggFunc::CountStar {
        return Value::Int(rows.len() as i64);
    }
    let mut values: Vec<Value> = Vec::new();
    for row in rows {
        match a.arg.eval(row) {
            Ok(v) if !v.is_null() => values.push(v),
            Ok(_) => {}
            Err(e) => fail(row, e.to_string()),
        }
    }
    if a.distinct {
        values = values
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    let count = values.len() as i64;
    match a.func {
        AggFunc::CountStar | AggFunc::Count | AggFunc::Sum | AggFunc::Avg => {
            let acc = values
                .iter()
                .map(|v| accumulate(a.func, output_type, v))
                .sum();
            finish(a.func, output_type, acc, count)
        }
        AggFunc::Min | AggFunc::Max => {
            let ordered =
                |x: &Value, y: &Value| compare(x, y).ok().flatten().unwrap_or_else(|| x.cmp(y));
            let best = if a.func == AggFunc::Min {
                values.into_iter().min_by(ordered)
            } else {
                values.into_iter().max_by(ordered)
            };
            best.unwrap_or(Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_drops_empty_pieces() {
        assert_eq!(split("a  b ", " "), vec!["a", "b"]);
        assert_eq!(split(" a\tb\n", ""), vec!["a", "b"]);
        assert_eq!(split("a,b,,c", ","), vec!["a", "b", "c"]);
    }
}
