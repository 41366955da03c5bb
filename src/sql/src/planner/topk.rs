//! Top-k: `ORDER BY ... LIMIT k [OFFSET n]` (one global group) and the per-group
//! form
//!
//! ```sql
//! SELECT ... FROM (
//!   SELECT ..., ROW_NUMBER() OVER (PARTITION BY p ORDER BY o DESC) AS rn FROM ...
//! ) WHERE rn <= k
//! ```
//!
//! both become a `TopK` node. In the per-group form, `PARTITION BY` and the
//! window's `ORDER BY` name columns selected by the subquery; the bound is a
//! conjunct `rn <= k`, `rn < k` or `rn = 1` of the enclosing `WHERE` (other
//! conjuncts stay a filter). The rank column is appended after the subquery's
//! other columns, and only when the enclosing query uses it.

use sqlparser::ast::{self, SelectItem, SetExpr, Spanned, TableFactor};

use super::expr::unsupported;
use super::from::conjuncts;
use super::functions::{function_name, mentions_column};
use super::scope::{Relation, Scope};
use super::{ident_name, PlannedQuery, Planner};
use crate::diagnostics::{ErrorKind, PlanError, PlanResult, Span};
use crate::plan::{Column, Node, SortKey};
use crate::types::ScalarType;

const ROW_NUMBER_HINT: &str =
    "filter the subquery with `WHERE rn <= k` to keep the first k rows of each partition";

impl Planner {
    /// Applies `LIMIT`/`OFFSET` to a planned query as a global `TopK`.
    pub(crate) fn apply_limit(
        &mut self,
        mut planned: PlannedQuery,
        clause: &ast::LimitClause,
    ) -> PlanResult<PlannedQuery> {
        let span = clause_span(clause);
        let (limit, offset) = match clause {
            ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            } if limit_by.is_empty() => (
                limit.as_ref().map(|l| count(l, "LIMIT")).transpose()?,
                offset
                    .as_ref()
                    .map(|o| count(&o.value, "OFFSET"))
                    .transpose()?,
            ),
            _ => {
                return Err(unsupported(
                    "this LIMIT form",
                    span,
                    "write LIMIT k [OFFSET n]",
                ))
            }
        };
        if limit.is_none() && offset.is_none() {
            return Ok(planned);
        }
        let columns = self.columns(planned.relation.node).to_vec();
        let node = self.add(
            Node::TopK {
                input: planned.relation.node,
                group_key: vec![],
                order_by: planned.order_by.clone(),
                limit: limit.unwrap_or(u64::MAX),
                offset: offset.unwrap_or(0),
                row_number: false,
            },
            columns,
        );
        planned.relation.node = node;
        Ok(planned)
    }

    /// Plans the `FROM` of a select over a `ROW_NUMBER()` subquery as a `TopK`, and
    /// returns what is left of the `WHERE`; `None` when the pattern does not apply.
    pub(crate) fn plan_row_number(
        &mut self,
        select: &ast::Select,
    ) -> PlanResult<Option<(Relation, Option<ast::Expr>)>> {
        let [from] = select.from.as_slice() else {
            return Ok(None);
        };
        let TableFactor::Derived {
            subquery, alias, ..
        } = &from.relation
        else {
            return Ok(None);
        };
        let SetExpr::Select(inner) = subquery.body.as_ref() else {
            return Ok(None);
        };
        let Some((index, function, rn_name)) = find_row_number(inner) else {
            return Ok(None);
        };
        let span = function.span();
        if !from.joins.is_empty() {
            return Err(unsupported(
                "joining a ROW_NUMBER() subquery",
                span,
                ROW_NUMBER_HINT,
            ));
        }
        if subquery.order_by.is_some() || subquery.limit_clause.is_some() || subquery.with.is_some()
        {
            return Err(unsupported(
                "ORDER BY, LIMIT or WITH in a ROW_NUMBER() subquery",
                span,
                ROW_NUMBER_HINT,
            ));
        }
        let Some(ast::WindowType::WindowSpec(spec)) = &function.over else {
            return Err(unsupported(
                "named windows",
                span,
                "write OVER (PARTITION BY ... ORDER BY ...)",
            ));
        };
        if spec.window_frame.is_some() {
            return Err(unsupported("window frames", span, ROW_NUMBER_HINT));
        }
        let mut rest = (**inner).clone();
        rest.projection.remove(index);
        let planned = self.plan_select(&rest, &[])?;
        let columns = self.columns(planned.relation.node).to_vec();
        let group_key = spec
            .partition_by
            .iter()
            .map(|p| selected_column(p, &rest.projection, &columns))
            .collect::<PlanResult<Vec<_>>>()?;
        let order_by = spec
            .order_by
            .iter()
            .map(|o| {
                let column = selected_column(&o.expr, &rest.projection, &columns)?;
                let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                Ok(SortKey {
                    column,
                    descending,
                    nulls_first: o.options.nulls_first.unwrap_or(descending),
                })
            })
            .collect::<PlanResult<Vec<_>>>()?;
        let mut limit: Option<u64> = None;
        let mut remaining: Vec<&ast::Expr> = Vec::new();
        let qualifier = alias.as_ref().map(|a| ident_name(&a.name));
        for conjunct in select.selection.iter().flat_map(conjuncts) {
            match rank_bound(conjunct, &rn_name, qualifier.as_deref())? {
                Some(k) => limit = Some(limit.map_or(k, |l| l.min(k))),
                None => remaining.push(conjunct),
            }
        }
        let Some(limit) = limit else {
            return Err(unsupported(
                "ROW_NUMBER() without a bound on it",
                span,
                ROW_NUMBER_HINT,
            ));
        };
        let remaining = remaining
            .into_iter()
            .cloned()
            .reduce(|a, b| ast::Expr::BinaryOp {
                left: Box::new(a),
                op: ast::BinaryOperator::And,
                right: Box::new(b),
            });
        let uses_rank = select.projection.iter().any(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                mentions_column(e, &rn_name)
            }
            _ => true,
        }) || remaining
            .as_ref()
            .is_some_and(|e| mentions_column(e, &rn_name))
            || select
                .having
                .as_ref()
                .is_some_and(|e| mentions_column(e, &rn_name));
        let mut output = columns.clone();
        if uses_rank {
            output.push(Column {
                name: rn_name,
                ty: ScalarType::Int,
                nullable: false,
            });
        }
        let node = self.add(
            Node::TopK {
                input: planned.relation.node,
                group_key,
                order_by,
                limit,
                offset: 0,
                row_number: uses_rank,
            },
            output,
        );
        let scope = Scope::from_columns(qualifier.as_deref(), self.columns(node));
        Ok(Some((Relation { node, scope }, remaining)))
    }
}

/// The `ROW_NUMBER() OVER (...)` item of a select: its index, call and output name.
fn find_row_number(select: &ast::Select) -> Option<(usize, &ast::Function, String)> {
    select.projection.iter().enumerate().find_map(|(i, item)| {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(e) => (e, "row_number".to_string()),
            SelectItem::ExprWithAlias { expr, alias } => (expr, ident_name(alias)),
            _ => return None,
        };
        match expr {
            ast::Expr::Function(f)
                if f.over.is_some() && function_name(f).as_deref() == Some("row_number") =>
            {
                Some((i, f, name))
            }
            _ => None,
        }
    })
}

/// The output column of the subquery a `PARTITION BY`/`ORDER BY` term names.
fn selected_column(
    e: &ast::Expr,
    projection: &[SelectItem],
    columns: &[Column],
) -> PlanResult<usize> {
    let by_name = match e {
        ast::Expr::Identifier(i) => Some(ident_name(i)),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        _ => None,
    };
    let found = match by_name {
        Some(name) => columns.iter().position(|c| c.name == name),
        None if projection.len() == columns.len() => projection.iter().position(|item| {
            matches!(item, SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } if x == e)
        }),
        None => None,
    };
    found.ok_or_else(|| {
        PlanError::new(
            ErrorKind::Unsupported(format!(
                "PARTITION BY / ORDER BY term `{e}` that the subquery does not select"
            )),
            e.span(),
        )
        .with_hint(format!(
            "select it in the subquery and refer to it by name; selected: {}",
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// `Some(k)` when the conjunct bounds the rank: `rn <= k`, `rn < k+1`, `rn = 1`.
fn rank_bound(e: &ast::Expr, rn: &str, qualifier: Option<&str>) -> PlanResult<Option<u64>> {
    let is_rank = |e: &ast::Expr| match e {
        ast::Expr::Identifier(i) => ident_name(i) == rn,
        ast::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, n] => Some(ident_name(q)).as_deref() == qualifier && ident_name(n) == rn,
            _ => false,
        },
        _ => false,
    };
    let ast::Expr::BinaryOp { left, op, right } = e else {
        return Ok(None);
    };
    use ast::BinaryOperator as B;
    let (op, bound) = if is_rank(left) {
        (op.clone(), right.as_ref())
    } else if is_rank(right) {
        let flipped = match op {
            B::Gt => B::Lt,
            B::GtEq => B::LtEq,
            B::Lt => B::Gt,
            B::LtEq => B::GtEq,
            other => other.clone(),
        };
        (flipped, left.as_ref())
    } else {
        return Ok(None);
    };
    let k = count(bound, "the rank bound")?;
    match op {
        B::LtEq => Ok(Some(k)),
        B::Lt => Ok(Some(k.saturating_sub(1))),
        B::Eq if k == 1 => Ok(Some(1)),
        _ => Err(unsupported(
            &format!("the rank condition `{e}`"),
            e.span(),
            "bound the rank from above: rn <= k, rn < k or rn = 1",
        )),
    }
}

/// A non-negative integer literal.
fn count(e: &ast::Expr, what: &str) -> PlanResult<u64> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| {
        PlanError::new(
            ErrorKind::Invalid(format!(
                "{what} must be a non-negative integer, found `{e}`"
            )),
            e.span(),
        )
    })
}

fn clause_span(clause: &ast::LimitClause) -> Span {
    match clause {
        ast::LimitClause::LimitOffset { limit, offset, .. } => limit
            .as_ref()
            .map(|l| l.span())
            .or_else(|| offset.as_ref().map(|o| o.value.span()))
            .unwrap_or_else(Span::empty),
        ast::LimitClause::OffsetCommaLimit { limit, .. } => limit.span(),
    }
}
