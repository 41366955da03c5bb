//! Top-k per group (`ORDER BY ... LIMIT`, `ROW_NUMBER() ... <= k`).
//!
//! Each group's rows are kept in a `reduce`; when a group changes, its rows are
//! ranked by the sort keys, then by the whole row (deterministic ties, the same
//! rule as the oracle's `compare_rows`), and the ranks in
//! `offset + 1 ..= offset + limit` are emitted, each with its rank when asked.

use kappa_sql::plan::{compare_rows, SortKey};
use kappa_sql::{Row, Value};

use super::packed::PackedRow;
use super::Rows;
use crate::Diff;

/// Renders a `TopK` node.
pub(super) fn top_k<'s>(
    rows: Rows<'s>,
    group_key: Vec<usize>,
    order_by: Vec<SortKey>,
    limit: u64,
    offset: u64,
    row_number: bool,
) -> Rows<'s> {
    rows.map(move |row| (PackedRow::pack(group_key.iter().map(|c| &row[*c])), row))
        .reduce(
            move |_group, rows: &[(&Row, Diff)], out: &mut Vec<(Row, Diff)>| {
                let mut sorted: Vec<(&Row, Diff)> = rows.iter().map(|(r, n)| (*r, *n)).collect();
                let order = |a: &(&Row, Diff), b: &(&Row, Diff)| compare_rows(&order_by, a.0, b.0);
                // Every distinct row counts at least once, so the first `offset + limit`
                // distinct rows are all that can be kept: select them in linear time and
                // sort only those (a large group changes at every batch).
                let needed = offset.saturating_add(limit).min(sorted.len() as u64) as usize;
                if needed == 0 {
                    return;
                }
                if needed < sorted.len() {
                    sorted.select_nth_unstable_by(needed - 1, order);
                    sorted.truncate(needed);
                }
                sorted.sort_by(order);
                let (mut skip, mut take) = (offset as i64, limit as i64);
                let mut rank = 0i64;
                for (row, count) in sorted {
                    let mut count = count as i64;
                    let skipped = count.min(skip);
                    skip -= skipped;
                    count -= skipped;
                    let kept = count.min(take);
                    take -= kept;
                    if kept > 0 {
                        if row_number {
                            for _ in 0..kept {
                                rank += 1;
                                let mut ranked = row.clone();
                                ranked.push(Value::Int(rank));
                                out.push((ranked, 1));
                            }
                        } else {
                            out.push((row.clone(), kept as Diff));
                        }
                    }
                    if take == 0 {
                        break;
                    }
                }
            },
        )
        .map(|(_, row)| row)
}
