//! Row-at-a-time operators: projection, filter, table functions and window assignment.
//!
//! Projections, filters and table functions evaluate expressions that can fail;
//! a failing row leaves the collection and becomes a [`DataError`] on the error
//! stream (with its diff, so an error retracted upstream is retracted too).

use differential_dataflow::{AsCollection, VecCollection};
use kappa_sql::expr::{is_true, EvalError, Expr};
use kappa_sql::plan::TableFunc;
use kappa_sql::window::window_starts;
use kappa_sql::{Row, Value};
use smallvec::SmallVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;

use super::{Errors, Rows};
use crate::error::{DataError, Origin};
use crate::{Diff, Time};

/// Applies `logic` to every row: each item of an `Ok` joins the output collection
/// (with the row's time and diff), an `Err` goes to the error stream. One operator,
/// so that a projection feeding an arrangement costs no extra pass.
pub(super) fn fallible<'s, D, I>(
    rows: Rows<'s>,
    node: usize,
    mut logic: impl FnMut(Row) -> Result<I, (EvalError, Row)> + 'static,
) -> (VecCollection<'s, Time, D, Diff>, Errors<'s>)
where
    D: Clone + 'static,
    I: IntoIterator<Item = D>,
{
    let mut builder = OperatorBuilder::new(format!("Eval %{node}"), rows.inner.scope());
    let mut input = builder.new_input(rows.inner, Pipeline);
    let (oks_output, oks) = builder.new_output::<Vec<(D, Time, Diff)>>();
    let (errs_output, errs) = builder.new_output::<Vec<(DataError, Time, Diff)>>();
    let mut oks_output = OutputBuilder::from(oks_output);
    let mut errs_output = OutputBuilder::from(errs_output);
    builder.build(move |_| {
        move |_frontiers| {
            let mut oks_handle = oks_output.activate();
            let mut errs_handle = errs_output.activate();
            input.for_each(|cap, data| {
                let mut oks = oks_handle.session(&cap);
                let mut errs = errs_handle.session(&cap);
                for (row, time, diff) in data.drain(..) {
                    match logic(row) {
                        Ok(out) => {
                            for item in out {
                                oks.give((item, time, diff));
                            }
                        }
                        Err((error, row)) => {
                            errs.give((eval_error(node, &error, &row), time, diff))
                        }
                    }
                }
            });
        }
    });
    (oks.as_collection(), errs)
}

/// The data error of `row` failing to evaluate in operator `node`: the row, as a
/// JSON array, is its payload.
pub(super) fn eval_error(node: usize, error: &EvalError, row: &[Value]) -> DataError {
    DataError {
        origin: Origin::Operator { node },
        reason: error.to_string(),
        payload: serde_json::to_vec(&row.iter().map(Value::to_json).collect::<Vec<_>>())
            .unwrap_or_default(),
    }
}

/// Evaluates `exprs` over `row` into `out`, which is cleared first.
pub(super) fn project_into(exprs: &[Expr], row: &[Value], out: &mut Row) -> Result<(), EvalError> {
    out.clear();
    exprs
        .iter()
        .try_for_each(|e| e.eval(row).map(|v| out.push(v)))
}

/// Whether `predicate` is `TRUE` for `row`.
pub(super) fn holds(predicate: &Expr, row: &[Value]) -> Result<bool, EvalError> {
    predicate.eval_ref(row).map(|v| is_true(&v))
}

/// Calls `each` with every value `func` produces for `row` (none for a NULL).
pub(super) fn table_values(
    func: &TableFunc,
    row: &[Value],
    mut each: impl FnMut(&str),
) -> Result<(), EvalError> {
    let TableFunc::Split { expr, delimiter } = func;
    let value = expr.eval_ref(row)?;
    let Value::Text(text) = &*value else {
        return Ok(());
    };
    if delimiter.is_empty() {
        text.split_whitespace().for_each(each);
    } else {
        text.split(delimiter.as_str())
            .filter(|p| !p.is_empty())
            .for_each(&mut each);
    }
    Ok(())
}

/// The `(start, end)` of every event-time window covering `row`'s time column
/// (none when it is not a timestamp).
pub(super) fn row_windows(
    row: &[Value],
    time_column: usize,
    size_ms: i64,
    slide_ms: i64,
) -> impl Iterator<Item = (i64, i64)> {
    let ts = match row[time_column] {
        Value::Timestamp(ts) => Some(ts),
        _ => None,
    };
    ts.into_iter()
        .flat_map(move |ts| window_starts(ts, size_ms, slide_ms))
        .map(move |start| (start, start + size_ms))
}

/// Projection: each row becomes the values of `exprs`.
pub(super) fn map<'s>(rows: Rows<'s>, node: usize, exprs: Vec<Expr>) -> (Rows<'s>, Errors<'s>) {
    fallible(rows, node, move |row| {
        let mut out = Row::with_capacity(exprs.len());
        match project_into(&exprs, &row, &mut out) {
            Ok(()) => Ok(Some(out)),
            Err(e) => Err((e, row)),
        }
    })
}

/// Keeps the rows whose predicate is `TRUE`.
pub(super) fn filter<'s>(rows: Rows<'s>, node: usize, predicate: Expr) -> (Rows<'s>, Errors<'s>) {
    fallible(rows, node, move |row| match holds(&predicate, &row) {
        Ok(true) => Ok(Some(row)),
        Ok(false) => Ok(None),
        Err(e) => Err((e, row)),
    })
}

/// Each row extended by each value of a table function.
pub(super) fn flat_map<'s>(rows: Rows<'s>, node: usize, func: TableFunc) -> (Rows<'s>, Errors<'s>) {
    fallible(rows, node, move |row| {
        let mut out = Vec::new();
        match table_values(&func, &row, |piece| {
            let mut extended = row.clone();
            extended.push(Value::text(piece));
            out.push(extended);
        }) {
            Ok(()) => Ok(out),
            Err(e) => Err((e, row)),
        }
    })
}

/// Each row once per event-time window covering its time column, with the window's
/// start and end appended. The row itself carries the last window (a tumbling
/// window's only one), so the common case copies nothing.
pub(super) fn window<'s>(
    rows: Rows<'s>,
    time_column: usize,
    size_ms: i64,
    slide_ms: i64,
) -> Rows<'s> {
    rows.flat_map(move |mut row| {
        let mut out: SmallVec<[Row; 1]> = SmallVec::new();
        let mut windows = row_windows(&row, time_column, size_ms, slide_ms).peekable();
        while let Some((start, end)) = windows.next() {
            let window = [Value::Timestamp(start), Value::Timestamp(end)];
            if windows.peek().is_some() {
                let mut copy = Vec::with_capacity(row.len() + 2);
                copy.extend_from_slice(&row);
                copy.extend(window);
                out.push(copy);
            } else {
                row.extend(window);
                out.push(row);
                break;
            }
        }
        out
    })
}
