//! A query: `SELECT` blocks (projection, `WHERE`, `GROUP BY`, `HAVING`,
//! `DISTINCT`) and `UNION [ALL]`.
//!
//! Plan shapes: `FROM` → `Filter` (WHERE) → `Map` (projection) → `Distinct`; in an
//! aggregating query `FROM` → `Filter` → [`Map` computing keys and arguments that
//! are not plain columns] → `Reduce` → `Filter` (HAVING) → `Map` (projection).
//! A projection that is the identity (same columns, same names) adds no node.

use sqlparser::ast::{self, GroupByExpr, OrderByExpr, Query, Select, SelectItem, SetExpr, Spanned};

use super::expr::{unsupported, ExprTranslator, Grouping, TypedExpr};
use super::functions::contains_aggregate;
use super::scope::{Relation, Scope};
use super::{ident_name, PlannedQuery, Planner};
use crate::diagnostics::{ErrorKind, PlanError, PlanResult, Span};
use crate::expr::Expr;
use crate::plan::{Column, Node, NodeId, SortKey};
use crate::types::ScalarType;

/// One output column of a projection: its name and expression.
pub(crate) struct Output {
    /// The column name.
    pub name: String,
    /// The expression over the projection's input.
    pub expr: TypedExpr,
}

impl Planner {
    /// Plans a query: its body, then `ORDER BY` and `LIMIT`/`OFFSET`.
    pub(crate) fn plan_query(&mut self, query: &Query) -> PlanResult<PlannedQuery> {
        let span = query.span();
        if query.with.is_some() {
            return Err(unsupported(
                "WITH (common table expressions)",
                span,
                "declare each part as its own CREATE VIEW and select from it",
            ));
        }
        if query.fetch.is_some() || !query.locks.is_empty() {
            return Err(unsupported("FETCH and locking clauses", span, "use LIMIT"));
        }
        let order_by: &[OrderByExpr] = match &query.order_by {
            None => &[],
            Some(o) => match &o.kind {
                ast::OrderByKind::Expressions(exprs) => exprs,
                ast::OrderByKind::All(_) => {
                    return Err(unsupported(
                        "ORDER BY ALL",
                        span,
                        "list the ORDER BY columns",
                    ))
                }
            },
        };
        let mut planned = match query.body.as_ref() {
            SetExpr::Select(select) => self.plan_select(select, order_by)?,
            body => {
                let mut planned = self.plan_set_expr(body)?;
                let columns = self.columns(planned.relation.node).to_vec();
                planned.order_by = order_by
                    .iter()
                    .map(|o| sort_key_by_name(o, &columns))
                    .collect::<PlanResult<_>>()?;
                planned
            }
        };
        if let Some(limit) = &query.limit_clause {
            planned = self.apply_limit(planned, limit)?;
        }
        Ok(planned)
    }

    /// Plans a body that may be a `UNION`.
    fn plan_set_expr(&mut self, body: &SetExpr) -> PlanResult<PlannedQuery> {
        match body {
            SetExpr::Select(select) => self.plan_select(select, &[]),
            SetExpr::Query(query) => self.plan_query(query),
            SetExpr::SetOperation {
                left,
                op: ast::SetOperator::Union,
                set_quantifier,
                right,
            } => {
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                if !all
                    && !matches!(
                        set_quantifier,
                        ast::SetQuantifier::None | ast::SetQuantifier::Distinct
                    )
                {
                    return Err(unsupported(
                        "UNION BY NAME",
                        body.span(),
                        "use UNION ALL or UNION",
                    ));
                }
                let mut branches = Vec::new();
                collect_union_all(body, all, &mut branches);
                if branches.is_empty() {
                    branches = vec![left.as_ref(), right.as_ref()];
                }
                let mut inputs = Vec::new();
                for b in branches {
                    inputs.push((self.plan_set_expr(b)?.relation.node, b.span()));
                }
                let columns = self.union_columns(&inputs)?;
                let node = self.add(
                    Node::Union {
                        inputs: inputs.iter().map(|(n, _)| *n).collect(),
                    },
                    columns.clone(),
                );
                let node = if all {
                    node
                } else {
                    self.add(Node::Distinct { input: node }, columns.clone())
                };
                Ok(PlannedQuery {
                    relation: Relation {
                        node,
                        scope: Scope::from_columns(None, &columns),
                    },
                    key: vec![],
                    order_by: vec![],
                })
            }
            _ => Err(unsupported(
                "INTERSECT, EXCEPT, VALUES and other query bodies",
                body.span(),
                "a query is a SELECT, or SELECTs combined with UNION [ALL]",
            )),
        }
    }

    fn union_columns(&self, inputs: &[(NodeId, Span)]) -> PlanResult<Vec<Column>> {
        let mut columns = self.columns(inputs[0].0).to_vec();
        for (node, span) in &inputs[1..] {
            let other = self.columns(*node);
            if other.len() != columns.len() {
                return Err(PlanError::new(
                    ErrorKind::TypeMismatch(format!(
                        "UNION branches have {} and {} columns",
                        columns.len(),
                        other.len()
                    )),
                    *span,
                )
                .with_hint("every branch of a UNION selects the same number of columns"));
            }
            for (c, o) in columns.iter_mut().zip(other) {
                if c.ty == ScalarType::Null {
                    c.ty = o.ty;
                } else if o.ty != c.ty && o.ty != ScalarType::Null {
                    return Err(PlanError::new(
                        ErrorKind::TypeMismatch(format!(
                            "UNION column `{}` is {} in one branch and {} in another",
                            c.name, c.ty, o.ty
                        )),
                        *span,
                    )
                    .with_hint("use CAST so that the branches agree"));
                }
                c.nullable |= o.nullable;
            }
        }
        Ok(columns)
    }

    /// Plans one `SELECT` block; `order_by` comes from the enclosing query.
    pub(crate) fn plan_select(
        &mut self,
        select: &Select,
        order_by: &[OrderByExpr],
    ) -> PlanResult<PlannedQuery> {
        let span = select.span();
        check_supported_select(select, span)?;
        let (mut relation, selection) = match self.plan_row_number(select)? {
            Some(planned) => planned,
            None => (
                self.plan_from(&select.from, span)?,
                select.selection.clone(),
            ),
        };
        // A keyed view read whole keeps its key through filters and projections
        // that select the key columns.
        let inherited_key = self.view_keys.get(&relation.node).cloned();
        if let Some(selection) = &selection {
            let predicate = ExprTranslator::plain(&relation.scope, "WHERE").predicate(selection)?;
            let columns = self.columns(relation.node).to_vec();
            relation.node = self.add(
                Node::Filter {
                    input: relation.node,
                    predicate: predicate.expr,
                },
                columns,
            );
        }
        let group_by: &[ast::Expr] = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs,
            _ => {
                return Err(unsupported(
                    "GROUP BY ALL, ROLLUP, CUBE and GROUPING SETS",
                    span,
                    "list the GROUP BY columns or expressions",
                ))
            }
        };
        let aggregating = !group_by.is_empty()
            || select.having.is_some()
            || select.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    contains_aggregate(e)
                }
                _ => false,
            });
        let distinct =
            match &select.distinct {
                None | Some(ast::Distinct::All) => false,
                Some(ast::Distinct::Distinct) => true,
                Some(ast::Distinct::On(_)) => return Err(unsupported(
                    "DISTINCT ON",
                    span,
                    "use ROW_NUMBER() OVER (PARTITION BY ...) in a subquery with `WHERE rn = 1`",
                )),
            };
        let mut planned = if aggregating {
            self.plan_aggregate(select, relation, group_by, order_by)?
        } else {
            let scope = relation.scope.clone();
            let outputs = expand_projection(select, &scope, |e| {
                ExprTranslator::plain(&scope, "SELECT").translate(e)
            })?;
            let order_by = resolve_order_by(order_by, &outputs, |e| {
                ExprTranslator::plain(&scope, "ORDER BY").translate(e)
            })?;
            let node = self.project(relation.node, &outputs);
            let key: Option<Vec<usize>> = inherited_key.and_then(|key| {
                key.iter()
                    .map(|&k| outputs.iter().position(|o| o.expr.expr == Expr::Column(k)))
                    .collect()
            });
            PlannedQuery {
                relation: Relation {
                    node,
                    scope: Scope::from_columns(None, self.columns(node)),
                },
                key: key.unwrap_or_default(),
                order_by,
            }
        };
        if distinct {
            let columns = self.columns(planned.relation.node).to_vec();
            planned.relation.node = self.add(
                Node::Distinct {
                    input: planned.relation.node,
                },
                columns,
            );
        }
        Ok(planned)
    }

    fn plan_aggregate(
        &mut self,
        select: &Select,
        relation: Relation,
        group_by: &[ast::Expr],
        order_by: &[OrderByExpr],
    ) -> PlanResult<PlannedQuery> {
        let scope = relation.scope.clone();
        let mut grouping = Grouping {
            global: group_by.is_empty(),
            ..Grouping::default()
        };
        for g in group_by {
            let e = group_expr_target(g, select, &scope);
            let key = ExprTranslator::plain(&scope, "GROUP BY").translate(e)?;
            grouping.keys.push(key);
        }
        let outputs = {
            let grouping = &mut grouping;
            expand_projection(select, &scope, |e| {
                ExprTranslator {
                    scope: &scope,
                    grouping: Some(&mut *grouping),
                    clause: "SELECT",
                }
                .translate(e)
            })?
        };
        let having = match &select.having {
            Some(h) => Some(
                ExprTranslator {
                    scope: &scope,
                    grouping: Some(&mut grouping),
                    clause: "HAVING",
                }
                .predicate(h)?,
            ),
            None => None,
        };
        let sort_keys = {
            let grouping = &mut grouping;
            resolve_order_by(order_by, &outputs, |e| {
                ExprTranslator {
                    scope: &scope,
                    grouping: Some(&mut *grouping),
                    clause: "ORDER BY",
                }
                .translate(e)
            })?
        };
        let reduce = self.build_reduce(relation.node, &scope, &grouping, &outputs);
        let mut node = reduce;
        if let Some(having) = having {
            let columns = self.columns(node).to_vec();
            node = self.add(
                Node::Filter {
                    input: node,
                    predicate: having.expr,
                },
                columns,
            );
        }
        let node = self.project(node, &outputs);
        let key: Option<Vec<usize>> = (0..grouping.keys.len())
            .map(|k| outputs.iter().position(|o| o.expr.expr == Expr::Column(k)))
            .collect();
        Ok(PlannedQuery {
            relation: Relation {
                node,
                scope: Scope::from_columns(None, self.columns(node)),
            },
            key: key.unwrap_or_default(),
            order_by: sort_keys,
        })
    }

    /// The `Reduce` (and the `Map` before it when a key or an argument is computed).
    fn build_reduce(
        &mut self,
        input: NodeId,
        scope: &Scope,
        grouping: &Grouping,
        outputs: &[Output],
    ) -> NodeId {
        let width = scope.columns.len();
        let mut extra: Vec<TypedExpr> = Vec::new();
        // The column holding an expression: itself if it is a column, else an
        // appended computed column (shared between equal expressions).
        let mut column_of = |t: &TypedExpr| -> usize {
            if let Expr::Column(i) = t.expr {
                return i;
            }
            match extra.iter().position(|e| e.expr == t.expr) {
                Some(i) => width + i,
                None => {
                    extra.push(t.clone());
                    width + extra.len() - 1
                }
            }
        };
        let key: Vec<usize> = grouping.keys.iter().map(&mut column_of).collect();
        let mut aggregates = Vec::new();
        for call in &grouping.aggregates {
            let mut aggregate = call.aggregate.clone();
            if call.aggregate.func != crate::plan::AggFunc::CountStar {
                aggregate.arg = Expr::Column(column_of(&call.arg));
            }
            aggregates.push(aggregate);
        }
        let input = if extra.is_empty() {
            input
        } else {
            let mut columns = self.columns(input).to_vec();
            let mut exprs: Vec<Expr> = (0..width).map(Expr::Column).collect();
            for (i, e) in extra.iter().enumerate() {
                columns.push(Column {
                    name: format!("expr{i}"),
                    ty: e.ty,
                    nullable: e.nullable,
                });
                exprs.push(e.expr.clone());
            }
            self.add(Node::Map { input, exprs }, columns)
        };
        let input_columns = self.columns(input).to_vec();
        let output_name = |column: usize| {
            outputs
                .iter()
                .find(|o| o.expr.expr == Expr::Column(column))
                .map(|o| o.name.clone())
        };
        let mut columns: Vec<Column> = key
            .iter()
            .enumerate()
            .map(|(k, &c)| Column {
                name: output_name(k).unwrap_or_else(|| input_columns[c].name.clone()),
                ty: grouping.keys[k].ty,
                nullable: grouping.keys[k].nullable,
            })
            .collect();
        for (j, call) in grouping.aggregates.iter().enumerate() {
            columns.push(Column {
                name: output_name(key.len() + j).unwrap_or_else(|| call.name.clone()),
                ty: call.ty,
                nullable: call.nullable
                    || (grouping.global && !super::functions::is_count(call.aggregate.func)),
            });
        }
        self.add(
            Node::Reduce {
                input,
                key,
                aggregates,
            },
            columns,
        )
    }

    /// A `Map` computing `outputs`, or `input` itself when that is the identity.
    pub(crate) fn project(&mut self, input: NodeId, outputs: &[Output]) -> NodeId {
        let input_columns = self.columns(input);
        let identity = outputs.len() == input_columns.len()
            && outputs
                .iter()
                .zip(input_columns)
                .enumerate()
                .all(|(i, (o, c))| o.expr.expr == Expr::Column(i) && o.name == c.name);
        if identity {
            return input;
        }
        let columns = outputs
            .iter()
            .map(|o| Column {
                name: o.name.clone(),
                ty: o.expr.ty,
                nullable: o.expr.nullable,
            })
            .collect();
        let exprs = outputs.iter().map(|o| o.expr.expr.clone()).collect();
        self.add(Node::Map { input, exprs }, columns)
    }
}

fn collect_union_all<'a>(body: &'a SetExpr, all: bool, out: &mut Vec<&'a SetExpr>) {
    match body {
        SetExpr::SetOperation {
            left,
            op: ast::SetOperator::Union,
            set_quantifier: ast::SetQuantifier::All,
            right,
        } if all => {
            collect_union_all(left, all, out);
            collect_union_all(right, all, out);
        }
        other if all => out.push(other),
        _ => {}
    }
}

fn check_supported_select(select: &Select, span: Span) -> PlanResult<()> {
    let unsupported_part = if select.top.is_some() {
        Some("TOP")
    } else if select.into.is_some() {
        Some("SELECT INTO")
    } else if !select.lateral_views.is_empty() {
        Some("LATERAL VIEW")
    } else if select.qualify.is_some() {
        Some("QUALIFY")
    } else if !select.named_window.is_empty() {
        Some("WINDOW clauses")
    } else if select.prewhere.is_some() {
        Some("PREWHERE")
    } else if !select.cluster_by.is_empty() || !select.sort_by.is_empty() {
        Some("CLUSTER BY and SORT BY")
    } else {
        None
    };
    match unsupported_part {
        Some(what) => Err(unsupported(
            what,
            span,
            "a SELECT has a projection, FROM, WHERE, GROUP BY, HAVING, ORDER BY and LIMIT",
        )),
        None => Ok(()),
    }
}

/// `GROUP BY 1` and `GROUP BY alias` refer to the SELECT list (when the name is
/// not an input column).
fn group_expr_target<'a>(g: &'a ast::Expr, select: &'a Select, scope: &Scope) -> &'a ast::Expr {
    match g {
        ast::Expr::Value(v) => {
            if let ast::Value::Number(n, _) = &v.value {
                if let Ok(position) = n.parse::<usize>() {
                    if let Some(
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
                    ) = position
                        .checked_sub(1)
                        .and_then(|p| select.projection.get(p))
                    {
                        return e;
                    }
                }
            }
            g
        }
        ast::Expr::Identifier(ident) if scope.resolve(None, ident).is_err() => select
            .projection
            .iter()
            .find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias }
                    if ident_name(alias) == ident_name(ident) =>
                {
                    Some(expr)
                }
                _ => None,
            })
            .unwrap_or(g),
        _ => g,
    }
}

/// The default name of an output column.
pub(crate) fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident_name(i),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident_name).unwrap_or_default(),
        ast::Expr::Function(f) => super::functions::function_name(f).unwrap_or_default(),
        ast::Expr::Nested(inner) | ast::Expr::Cast { expr: inner, .. } => output_name(inner),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Trim { .. } => "trim".into(),
        _ => "?column?".into(),
    }
}

/// The SELECT list with wildcards expanded, translated by `translate`.
fn expand_projection(
    select: &Select,
    scope: &Scope,
    mut translate: impl FnMut(&ast::Expr) -> PlanResult<TypedExpr>,
) -> PlanResult<Vec<Output>> {
    let mut outputs = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => outputs.push(Output {
                name: output_name(e),
                expr: translate(e)?,
            }),
            SelectItem::ExprWithAlias { expr, alias } => outputs.push(Output {
                name: ident_name(alias),
                expr: translate(expr)?,
            }),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                let qualifier = match item {
                    SelectItem::QualifiedWildcard(
                        ast::SelectItemQualifiedWildcardKind::ObjectName(name),
                        _,
                    ) => Some(name.to_string().to_lowercase()),
                    SelectItem::QualifiedWildcard(..) => {
                        return Err(unsupported(
                            "this wildcard",
                            item.span(),
                            "write `*` or `table.*`",
                        ))
                    }
                    _ => None,
                };
                let mut any = false;
                for c in &scope.columns {
                    if qualifier.is_some() && c.qualifier != qualifier {
                        continue;
                    }
                    any = true;
                    let ident = ast::Ident::with_span(item.span(), c.name.clone());
                    let ident = ast::Ident {
                        quote_style: Some('"'),
                        ..ident
                    };
                    let column = match &c.qualifier {
                        Some(q) => ast::Expr::CompoundIdentifier(vec![
                            ast::Ident {
                                quote_style: Some('"'),
                                ..ast::Ident::with_span(item.span(), q.clone())
                            },
                            ident,
                        ]),
                        None => ast::Expr::Identifier(ident),
                    };
                    outputs.push(Output {
                        name: c.name.clone(),
                        expr: translate(&column)?,
                    });
                }
                if !any {
                    return Err(PlanError::new(
                        ErrorKind::UnknownRelation(qualifier.unwrap_or_default()),
                        item.span(),
                    )
                    .with_hint("qualify `*` with a table name or alias in FROM"));
                }
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(unsupported(
                    "multiple aliases",
                    item.span(),
                    "write `expr AS name`",
                ))
            }
        }
    }
    Ok(outputs)
}

/// Resolves `ORDER BY` terms to output columns: by position, by output name, or by
/// an expression equal to an output's.
fn resolve_order_by(
    order_by: &[OrderByExpr],
    outputs: &[Output],
    mut translate: impl FnMut(&ast::Expr) -> PlanResult<TypedExpr>,
) -> PlanResult<Vec<SortKey>> {
    let mut keys = Vec::new();
    for o in order_by {
        let span = o.expr.span();
        let by_name = match &o.expr {
            ast::Expr::Identifier(i) => outputs.iter().position(|out| out.name == ident_name(i)),
            _ => None,
        };
        let column = match (by_name, ordinal(&o.expr, outputs.len(), span)?) {
            (_, Some(c)) | (Some(c), None) => c,
            (None, None) => {
                let t = translate(&o.expr)?;
                outputs
                    .iter()
                    .position(|out| out.expr.expr == t.expr)
                    .ok_or_else(|| {
                        PlanError::new(
                            ErrorKind::Invalid("ORDER BY must refer to a selected column".into()),
                            span,
                        )
                        .with_hint("select the expression (with an alias) and order by that name or position")
                    })?
            }
        };
        keys.push(sort_key(o, column));
    }
    Ok(keys)
}

fn ordinal(e: &ast::Expr, width: usize, span: Span) -> PlanResult<Option<usize>> {
    if let ast::Expr::Value(v) = e {
        if let ast::Value::Number(n, _) = &v.value {
            return match n.parse::<usize>() {
                Ok(p) if p >= 1 && p <= width => Ok(Some(p - 1)),
                _ => Err(PlanError::new(
                    ErrorKind::Invalid(format!("ORDER BY position {n} is not in the SELECT list")),
                    span,
                )
                .with_hint(format!("positions go from 1 to {width}"))),
            };
        }
    }
    Ok(None)
}

fn sort_key(o: &OrderByExpr, column: usize) -> SortKey {
    let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
    SortKey {
        column,
        descending,
        // SQL's default: NULLs are larger than any value.
        nulls_first: o.options.nulls_first.unwrap_or(descending),
    }
}

/// An `ORDER BY` term over a `UNION`: an output name or position.
fn sort_key_by_name(o: &OrderByExpr, columns: &[Column]) -> PlanResult<SortKey> {
    let span = o.expr.span();
    if let Some(c) = ordinal(&o.expr, columns.len(), span)? {
        return Ok(sort_key(o, c));
    }
    if let ast::Expr::Identifier(i) = &o.expr {
        if let Some(c) = columns.iter().position(|c| c.name == ident_name(i)) {
            return Ok(sort_key(o, c));
        }
    }
    Err(PlanError::new(
        ErrorKind::Invalid("ORDER BY of a UNION must name an output column".into()),
        span,
    )
    .with_hint(format!(
        "output columns: {}",
        columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
