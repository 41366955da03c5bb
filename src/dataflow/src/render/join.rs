//! Equi-joins of two shared arrangements.
//!
//! Both inputs are `Arrange` nodes, so an arrangement used by several joins (or
//! views) is built once. As in SQL, a key containing NULL matches nothing; a left
//! join adds each unmatched left row padded with NULLs, computed as the left rows
//! whose key is absent from the right's (non-NULL) keys.

use kappa_sql::plan::JoinKind;
use kappa_sql::{Row, Value};

use super::{project, ArrangedRows, Rows};

fn has_null(key: &[Value]) -> bool {
    key.iter().any(Value::is_null)
}

/// Joins `left` and `right` on their arrangement keys; rows are `left ++ right`.
pub(super) fn join<'s>(
    left: ArrangedRows<'s>,
    left_rows: Rows<'s>,
    right: ArrangedRows<'s>,
    kind: JoinKind,
    right_width: usize,
    left_key: Vec<usize>,
) -> Rows<'s> {
    let matched = left.join_core(right.clone(), |key: &Row, l: &Row, r: &Row| {
        (!has_null(key)).then(|| {
            let mut row = Vec::with_capacity(l.len() + r.len());
            row.extend_from_slice(l);
            row.extend_from_slice(r);
            row
        })
    });
    match kind {
        JoinKind::Inner => matched,
        JoinKind::Left => {
            let right_keys = right
                .as_collection(|key: &Row, _: &Row| key.clone())
                .filter(|key| !has_null(key))
                .distinct();
            let unmatched = left_rows
                .map(move |row| (project(&row, &left_key), row))
                .antijoin(right_keys)
                .map(move |(_, mut row)| {
                    row.extend(std::iter::repeat_n(Value::Null, right_width));
                    row
                });
            matched.concat(unmatched)
        }
    }
}
