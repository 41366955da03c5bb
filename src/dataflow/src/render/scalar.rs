//! Row-at-a-time operators: projection, filter, table functions and window assignment.
//!
//! Projections, filters and table functions evaluate expressions that can fail;
//! a failing row leaves the collection and becomes a [`DataError`] on the error
//! stream (with its diff, so an error retracted upstream is retracted too).

use differential_dataflow::AsCollection;
use kappa_sql::expr::{is_true, EvalError, Expr};
use kappa_sql::plan::TableFunc;
use kappa_sql::window::window_starts;
use kappa_sql::{Row, Value};
use timely::dataflow::operators::OkErr;

use super::{Errors, Rows};
use crate::error::{DataError, Origin};
use crate::{Diff, Time};

/// Applies `logic` to every row; `Err` rows go to the error stream.
fn fallible<'s, I>(
    rows: Rows<'s>,
    node: usize,
    mut logic: impl FnMut(Row) -> Result<I, (EvalError, Row)> + 'static,
) -> (Rows<'s>, Errors<'s>)
where
    I: IntoIterator<Item = Row> + Clone + 'static,
{
    let (oks, errs) = rows
        .inner
        .ok_err::<Vec<(I, Time, Diff)>, _, Vec<(DataError, Time, Diff)>, _, _>(
            move |(row, time, diff): (Row, Time, Diff)| match logic(row) {
                Ok(out) => Ok((out, time, diff)),
                Err((error, row)) => Err((
                    DataError {
                        origin: Origin::Operator { node },
                        reason: error.to_string(),
                        payload: serde_json::to_vec(
                            &row.iter().map(Value::to_json).collect::<Vec<_>>(),
                        )
                        .unwrap_or_default(),
                    },
                    time,
                    diff,
                )),
            },
        );
    (oks.as_collection().flat_map(|out: I| out), errs)
}

/// Projection: each row becomes the values of `exprs`.
pub(super) fn map<'s>(rows: Rows<'s>, node: usize, exprs: Vec<Expr>) -> (Rows<'s>, Errors<'s>) {
    fallible(rows, node, move |row| {
        match exprs
            .iter()
            .map(|e| e.eval(&row))
            .collect::<Result<Row, _>>()
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => Err((e, row)),
        }
    })
}

/// Keeps the rows whose predicate is `TRUE`.
pub(super) fn filter<'s>(rows: Rows<'s>, node: usize, predicate: Expr) -> (Rows<'s>, Errors<'s>) {
    fallible(rows, node, move |row| match predicate.eval(&row) {
        Ok(v) if is_true(&v) => Ok(Some(row)),
        Ok(_) => Ok(None),
        Err(e) => Err((e, row)),
    })
}

/// Each row extended by each value of a table function.
pub(super) fn flat_map<'s>(rows: Rows<'s>, node: usize, func: TableFunc) -> (Rows<'s>, Errors<'s>) {
    fallible(rows, node, move |row| {
        let TableFunc::Split { expr, delimiter } = &func;
        let text = match expr.eval(&row) {
            Ok(Value::Text(t)) => t,
            Ok(_) => return Ok(Vec::new()),
            Err(e) => return Err((e, row)),
        };
        let pieces: Vec<&str> = if delimiter.is_empty() {
            text.split_whitespace().collect()
        } else {
            text.split(delimiter.as_str())
                .filter(|p| !p.is_empty())
                .collect()
        };
        Ok(pieces
            .into_iter()
            .map(|piece| {
                let mut out = row.clone();
                out.push(Value::text(piece));
                out
            })
            .collect::<Vec<_>>())
    })
}

/// Each row once per event-time window covering its time column, with the window's
/// start and end appended.
pub(super) fn window<'s>(
    rows: Rows<'s>,
    time_column: usize,
    size_ms: i64,
    slide_ms: i64,
) -> Rows<'s> {
    rows.flat_map(move |row| {
        let ts = match row[time_column] {
            Value::Timestamp(ts) => Some(ts),
            _ => None,
        };
        ts.into_iter()
            .flat_map(move |ts| window_starts(ts, size_ms, slide_ms))
            .map(move |start| {
                let mut out = row.clone();
                out.push(Value::Timestamp(start));
                out.push(Value::Timestamp(start + size_ms));
                out
            })
            .collect::<Vec<_>>()
    })
}
