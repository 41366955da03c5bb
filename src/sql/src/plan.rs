//! The plan IR: a pipeline as data, with no dependency on timely.
//!
//! A [`Plan`] is a DAG of relational [`Node`]s in topological order (a node only
//! refers to nodes before it). The planner builds it hash-consed: two views that
//! need the same sub-computation — the same source filtered the same way, the same
//! input arranged by the same key — refer to the same node, so the dataflow renders
//! it, and arranges it, once. Every node's output schema is recorded beside it.
//!
//! Semantics of each node are defined by the batch oracle (`oracle.rs`); the
//! dataflow must agree with it.

use serde::{Deserialize, Serialize};

use crate::expr::Expr;
use crate::types::ScalarType;

/// Index of a node in [`Plan::nodes`].
pub type NodeId = usize;
/// Index of a source in [`Plan::sources`].
pub type SourceId = usize;

/// A checked pipeline: its sources, the node DAG, and the views it serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Pipeline name (the file stem).
    pub name: String,
    /// Sources, by [`SourceId`].
    pub sources: Vec<SourceDef>,
    /// Nodes in topological order, by [`NodeId`].
    pub nodes: Vec<PlanNode>,
    /// The views, in declaration order.
    pub views: Vec<ViewDef>,
}

/// A node with its output schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanNode {
    /// The operator.
    pub node: Node,
    /// Output columns.
    pub columns: Vec<Column>,
}

/// A named, typed column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    /// Column name as seen by SQL.
    pub name: String,
    /// Its type.
    pub ty: ScalarType,
    /// Whether it may hold `NULL`.
    pub nullable: bool,
}

/// A log-backed source declared with `CREATE SOURCE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceDef {
    /// Source name in SQL.
    pub name: String,
    /// The log topic it reads.
    pub topic: String,
    /// How payloads are decoded.
    pub format: Format,
    /// The columns, each with the JSON path it is read from.
    pub columns: Vec<SourceColumn>,
    /// The event-time column, if any (a `TIMESTAMP` column).
    pub event_time: Option<usize>,
    /// Allowed lateness in milliseconds (see [`crate::lateness`]).
    pub lateness_ms: i64,
    /// The column that keys records (used when producing changelogs and for docs).
    pub key_column: Option<usize>,
}

/// A source column and where it is found in the payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceColumn {
    /// The column.
    pub column: Column,
    /// Path of object keys in the JSON payload (`["user", "id"]` for `user.id`).
    pub path: Vec<String>,
}

/// Payload formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// One JSON object per record.
    Json,
}

/// A view declared with `CREATE VIEW`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    /// View name.
    pub name: String,
    /// The node computing it; its columns are the view's schema.
    pub node: NodeId,
    /// Columns that identify a row (the `GROUP BY` columns), usable as lookup filters.
    /// Empty when the view has no natural key.
    pub key: Vec<usize>,
    /// Order in which rows are presented (from `ORDER BY`); ties and the
    /// unordered case fall back to the row's own order.
    pub order_by: Vec<SortKey>,
}

/// One `ORDER BY` term over an input column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SortKey {
    /// The column.
    pub column: usize,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST` (the default follows SQL: NULLs sort as larger than any value, so
    /// they come last ascending and first descending).
    pub nulls_first: bool,
}

/// Aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AggFunc {
    /// `COUNT(*)`: rows in the group.
    CountStar,
    /// `COUNT(x)`: non-NULL values.
    Count,
    /// `SUM(x)`: NULL when no non-NULL value. Sums of `DOUBLE` accumulate in fixed
    /// point (see [`crate::aggregate`]), so they are exact and order-independent.
    Sum,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `AVG(x)`: a `DOUBLE`; NULL when no non-NULL value.
    Avg,
}

/// One aggregate of a [`Node::Reduce`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Aggregate {
    /// The function.
    pub func: AggFunc,
    /// Its argument (ignored for `COUNT(*)`).
    pub arg: Expr,
    /// `DISTINCT`: aggregate each distinct non-NULL value once.
    pub distinct: bool,
}

/// Join kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JoinKind {
    /// Inner equi-join.
    Inner,
    /// Left outer equi-join: unmatched left rows padded with NULLs.
    Left,
}

/// Table functions for [`Node::FlatMap`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TableFunc {
    /// Splits a text into the non-empty pieces between occurrences of `delimiter`,
    /// one output row per piece, appended as one `TEXT` column. With an empty
    /// delimiter it splits on runs of whitespace.
    /// (`UNNEST(string_to_array(expr, delimiter))`.)
    Split {
        /// The text split.
        expr: Expr,
        /// The separator.
        delimiter: String,
    },
}

/// A relational operator. Output column layouts are given per variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// The decoded rows of a source, after the lateness rule. Columns: the source's.
    Source {
        /// Which source.
        source: SourceId,
    },
    /// Projection: one output column per expression.
    Map {
        /// Input.
        input: NodeId,
        /// Output expressions over the input row.
        exprs: Vec<Expr>,
    },
    /// Keeps rows whose predicate is `TRUE`. Columns: the input's.
    Filter {
        /// Input.
        input: NodeId,
        /// The predicate.
        predicate: Expr,
    },
    /// Each row followed by one row per value of a table function. Columns: the
    /// input's, then the function's.
    FlatMap {
        /// Input.
        input: NodeId,
        /// The function.
        func: TableFunc,
    },
    /// Event-time windows: each row once per window covering its time column, with
    /// `window_start` and `window_end` appended. Windows start at multiples of
    /// `slide_ms` since the epoch and last `size_ms`; `TUMBLE` has `slide_ms == size_ms`.
    /// A NULL time belongs to no window.
    Window {
        /// Input.
        input: NodeId,
        /// The `TIMESTAMP` column windowed.
        time_column: usize,
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        slide_ms: i64,
    },
    /// The input indexed by key columns: an arrangement that several joins may share.
    /// Columns: the input's.
    Arrange {
        /// Input.
        input: NodeId,
        /// Key columns.
        key: Vec<usize>,
    },
    /// Equi-join of two arrangements on their keys (rows whose key has a NULL never
    /// match, as in SQL). Columns: left's, then right's (nullable for `Left`).
    Join {
        /// Left input, an [`Node::Arrange`].
        left: NodeId,
        /// Right input, an [`Node::Arrange`] with as many key columns.
        right: NodeId,
        /// Inner or left.
        kind: JoinKind,
    },
    /// `GROUP BY key` with aggregates. Columns: the key columns, then one per aggregate.
    /// With an empty key (a global aggregate) there is exactly one output row, even
    /// over no input (`COUNT` 0, other aggregates NULL), as in SQL.
    Reduce {
        /// Input.
        input: NodeId,
        /// Group key columns of the input.
        key: Vec<usize>,
        /// The aggregates.
        aggregates: Vec<Aggregate>,
    },
    /// Set semantics: each distinct row once. Columns: the input's.
    Distinct {
        /// Input.
        input: NodeId,
    },
    /// `UNION ALL`: the multiset sum. Columns: the first input's.
    Union {
        /// Inputs, with compatible schemas.
        inputs: Vec<NodeId>,
    },
    /// Top-k per group: within each group of `group_key`, rows sorted by `order_by`
    /// and then by the whole row (so ties are deterministic); rows ranked
    /// `offset + 1 ..= offset + limit` are kept. Columns: the input's, then, when
    /// `row_number` is set, the rank (`BIGINT`, 1-based, counted after `offset`).
    TopK {
        /// Input.
        input: NodeId,
        /// Partitioning columns (empty: one global group).
        group_key: Vec<usize>,
        /// The ordering.
        order_by: Vec<SortKey>,
        /// How many rows per group.
        limit: u64,
        /// Rows skipped per group before `limit` counts.
        offset: u64,
        /// Append the rank as a column.
        row_number: bool,
    },
}

impl Node {
    /// The nodes this node reads.
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Node::Source { .. } => vec![],
            Node::Map { input, .. }
            | Node::Filter { input, .. }
            | Node::FlatMap { input, .. }
            | Node::Window { input, .. }
            | Node::Arrange { input, .. }
            | Node::Reduce { input, .. }
            | Node::Distinct { input }
            | Node::TopK { input, .. } => vec![*input],
            Node::Join { left, right, .. } => vec![*left, *right],
            Node::Union { inputs } => inputs.clone(),
        }
    }
}

impl Plan {
    /// The view with this name.
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        self.views.iter().find(|v| v.name == name)
    }

    /// The output columns of a view.
    pub fn view_columns(&self, view: &ViewDef) -> &[Column] {
        &self.nodes[view.node].columns
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceDef> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Orders two rows by sort keys, then by the rows themselves (deterministic ties).
/// NULL is larger than every value unless `nulls_first` says otherwise.
pub fn compare_rows(
    order_by: &[SortKey],
    a: &[crate::Value],
    b: &[crate::Value],
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for k in order_by {
        let (x, y) = (&a[k.column], &b[k.column]);
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = crate::expr::compare(x, y)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| x.cmp(y));
                if k.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.cmp(b)
}
