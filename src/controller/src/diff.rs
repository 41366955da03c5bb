//! Comparing two versions' views at the same log offsets: the promotion gate.
//!
//! Rows are compared as JSON objects keyed by column name, so a renamed or
//! retyped column shows up as changed rows. When both versions key a view by
//! the same columns, a key present on both sides with different rows counts as
//! *changed*; otherwise unmatched rows are *added* (only in the new version) or
//! *removed* (only in the old one).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::changelog::view_state;
use kappa_dataflow::store::ViewContents;

/// Most sample rows reported per view and kind.
pub const SAMPLE: usize = 5;

/// How one view differs between two versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ViewDiff {
    /// The view.
    pub view: String,
    /// Rows only in the new version.
    pub added: u64,
    /// Rows only in the old version.
    pub removed: u64,
    /// Keys whose rows differ.
    pub changed: u64,
    /// Fingerprint of the old version's view.
    pub fingerprint_old: String,
    /// Fingerprint of the new version's view.
    pub fingerprint_new: String,
    /// A few examples: `{"kind", "old", "new"}`.
    pub sample: Vec<serde_json::Value>,
}

impl ViewDiff {
    /// True when the views hold the same rows.
    pub fn is_identical(&self) -> bool {
        self.added == 0 && self.removed == 0 && self.changed == 0
    }

    /// Rows added, removed and changed.
    pub fn total(&self) -> u64 {
        self.added + self.removed + self.changed
    }
}

/// One side of a comparison: a view's contents with its column names and key.
pub struct Side<'a> {
    /// Column names.
    pub columns: &'a [String],
    /// Key column positions (may be empty).
    pub key: &'a [usize],
    /// The rows.
    pub contents: &'a ViewContents,
}

fn key_text(side: &Side, row_text: &str) -> Option<String> {
    if side.key.is_empty() {
        return None;
    }
    let row: serde_json::Value = serde_json::from_str(row_text).ok()?;
    let key: Vec<&serde_json::Value> = side.key.iter().map(|k| &row[&side.columns[*k]]).collect();
    serde_json::to_string(&key).ok()
}

/// Compares a view of the old version (`old`) with the new version's (`new`).
pub fn diff_view(view: &str, old: Side, new: Side) -> ViewDiff {
    let a = view_state(old.columns, old.contents);
    let b = view_state(new.columns, new.contents);
    let mut only_old: Vec<(String, i64)> = Vec::new();
    let mut only_new: Vec<(String, i64)> = Vec::new();
    for (row, n) in &a {
        let m = b.get(row).copied().unwrap_or(0);
        if n > &m {
            only_old.push((row.clone(), n - m));
        }
    }
    for (row, m) in &b {
        let n = a.get(row).copied().unwrap_or(0);
        if m > &n {
            only_new.push((row.clone(), m - n));
        }
    }
    let same_key = !old.key.is_empty()
        && old
            .key
            .iter()
            .map(|k| &old.columns[*k])
            .eq(new.key.iter().map(|k| &new.columns[*k]));
    let mut diff = ViewDiff {
        view: view.to_string(),
        fingerprint_old: format!("{:016x}", old.contents.fingerprint()),
        fingerprint_new: format!("{:016x}", new.contents.fingerprint()),
        ..ViewDiff::default()
    };
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap_or_default();
    if same_key {
        let mut by_key_new: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (row, _) in &only_new {
            if let Some(k) = key_text(&new, row) {
                by_key_new.entry(k).or_default().push(row.clone());
            }
        }
        for (row, n) in &only_old {
            let counterpart = key_text(&old, row)
                .and_then(|k| by_key_new.get_mut(&k))
                .and_then(|v| v.pop());
            match counterpart {
                Some(new_row) => {
                    diff.changed += 1;
                    if diff.sample.len() < SAMPLE * 3 {
                        diff.sample.push(serde_json::json!({"kind": "changed", "old": parse(row), "new": parse(&new_row)}));
                    }
                }
                None => {
                    diff.removed += *n as u64;
                    if diff.sample.len() < SAMPLE * 3 {
                        diff.sample.push(
                            serde_json::json!({"kind": "removed", "old": parse(row), "new": null}),
                        );
                    }
                }
            }
        }
        for row in by_key_new.into_values().flatten() {
            diff.added += 1;
            if diff.sample.len() < SAMPLE * 3 {
                diff.sample
                    .push(serde_json::json!({"kind": "added", "old": null, "new": parse(&row)}));
            }
        }
    } else {
        for (row, n) in &only_old {
            diff.removed += *n as u64;
            if diff.sample.len() < SAMPLE {
                diff.sample
                    .push(serde_json::json!({"kind": "removed", "old": parse(row), "new": null}));
            }
        }
        for (row, n) in &only_new {
            diff.added += *n as u64;
            if diff.sample.len() < SAMPLE * 2 {
                diff.sample
                    .push(serde_json::json!({"kind": "added", "old": null, "new": parse(row)}));
            }
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use kappa_sql::Value;

    fn contents(rows: &[(&str, i64)]) -> ViewContents {
        ViewContents {
            name: "v".into(),
            rows: rows
                .iter()
                .map(|(k, n)| (vec![Value::text(k), Value::Int(*n)], 1))
                .collect(),
        }
    }

    #[test]
    fn keyed_views_report_changed_added_and_removed() {
        let columns = vec!["page".to_string(), "n".to_string()];
        let old = contents(&[("a", 1), ("b", 2), ("c", 3)]);
        let new = contents(&[("a", 1), ("b", 5), ("d", 4)]);
        let side = |c| Side {
            columns: &columns,
            key: &[0],
            contents: c,
        };
        let d = diff_view("v", side(&old), side(&new));
        assert_eq!((d.added, d.removed, d.changed), (1, 1, 1));
        assert!(!d.is_identical());
        let same = diff_view("v", side(&old), side(&old));
        assert!(same.is_identical());
        assert_eq!(same.fingerprint_old, same.fingerprint_new);
    }
}
