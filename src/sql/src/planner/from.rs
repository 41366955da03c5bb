//! `FROM`: sources and views, subqueries, window table functions, equi-joins and
//! `UNNEST` (splitting text into rows).
//!
//! A join's `ON` is split into conjuncts: each equality between a column of the
//! left side and a column of the right side is part of the join key (both sides
//! are arranged by it, so joins on the same input and key share the arrangement);
//! other conjuncts of an inner join become a `Filter` after the join. A `LEFT JOIN`
//! accepts only key equalities in `ON`.

use sqlparser::ast::{self, JoinConstraint, JoinOperator, Spanned, TableFactor, TableWithJoins};

use super::expr::{build_binary, expect, unsupported, ExprTranslator};
use super::scope::{Relation, Scope, ScopeColumn};
use super::{ident_name, Planner};
use crate::diagnostics::{ErrorKind, PlanError, PlanResult, Span};
use crate::expr::{BinaryOp, Expr};
use crate::plan::{Column, JoinKind, Node, TableFunc};
use crate::types::{ScalarType, Value};

const JOIN_HINT: &str =
    "supported: [INNER] JOIN and LEFT [OUTER] JOIN with ON equalities, CROSS JOIN UNNEST(...)";

impl Planner {
    /// Plans a `FROM` clause.
    pub(crate) fn plan_from(
        &mut self,
        from: &[TableWithJoins],
        span: Span,
    ) -> PlanResult<Relation> {
        let Some((first, rest)) = from.split_first() else {
            return Err(unsupported(
                "SELECT without FROM",
                span,
                "select from a source or a view",
            ));
        };
        let mut relation = self.plan_table_with_joins(first)?;
        for item in rest {
            match &item.relation {
                factor @ TableFactor::UNNEST { .. } if item.joins.is_empty() => {
                    relation = self.plan_unnest(relation, factor)?;
                }
                other => {
                    return Err(unsupported(
                        "comma-separated FROM items (a cross join)",
                        other.span(),
                        "join with `JOIN ... ON a.x = b.y`",
                    ))
                }
            }
        }
        Ok(relation)
    }

    fn plan_table_with_joins(&mut self, item: &TableWithJoins) -> PlanResult<Relation> {
        let mut relation = self.plan_factor(&item.relation)?;
        for join in &item.joins {
            let span = join.relation.span();
            relation = match (&join.join_operator, &join.relation) {
                (
                    JoinOperator::CrossJoin(JoinConstraint::None),
                    factor @ TableFactor::UNNEST { .. },
                ) => self.plan_unnest(relation, factor)?,
                (JoinOperator::Join(c) | JoinOperator::Inner(c), factor) => {
                    self.plan_join(relation, factor, c, JoinKind::Inner, span)?
                }
                (JoinOperator::Left(c) | JoinOperator::LeftOuter(c), factor) => {
                    self.plan_join(relation, factor, c, JoinKind::Left, span)?
                }
                _ => return Err(unsupported("this kind of join", span, JOIN_HINT)),
            };
        }
        Ok(relation)
    }

    fn plan_factor(&mut self, factor: &TableFactor) -> PlanResult<Relation> {
        let span = factor.span();
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                    return Err(unsupported(
                        "column aliases on a table",
                        span,
                        "rename columns with AS in a subquery",
                    ));
                }
                let ident = match name.0.as_slice() {
                    [ast::ObjectNamePart::Identifier(ident)] => ident,
                    _ => {
                        return Err(unsupported(
                            "qualified table names",
                            span,
                            "sources and views have plain names",
                        ))
                    }
                };
                match args {
                    Some(args) => self.plan_window(ident, &args.args, alias.as_ref(), span),
                    None => {
                        let qualifier = alias
                            .as_ref()
                            .map_or_else(|| ident_name(ident), |a| ident_name(&a.name));
                        self.lookup_relation(ident, &qualifier)
                    }
                }
            }
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias,
                ..
            } => {
                if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                    return Err(unsupported(
                        "column aliases on a subquery",
                        span,
                        "name the columns with AS inside the subquery",
                    ));
                }
                let planned = self.plan_query(subquery)?;
                let qualifier = alias.as_ref().map(|a| ident_name(&a.name));
                Ok(Relation {
                    node: planned.relation.node,
                    scope: Scope::from_columns(
                        qualifier.as_deref(),
                        self.columns(planned.relation.node),
                    ),
                })
            }
            TableFactor::UNNEST { .. } => Err(unsupported(
                "UNNEST without a table on its left",
                span,
                "write `FROM t CROSS JOIN UNNEST(string_to_array(t.text, ' ')) AS w(word)`",
            )),
            _ => Err(unsupported(
                "this FROM item",
                span,
                "FROM takes sources, views, subqueries, TUMBLE(...), HOP(...) and joins of them",
            )),
        }
    }

    fn plan_join(
        &mut self,
        left: Relation,
        right_factor: &TableFactor,
        constraint: &JoinConstraint,
        kind: JoinKind,
        span: Span,
    ) -> PlanResult<Relation> {
        let JoinConstraint::On(on) = constraint else {
            return Err(unsupported(
                "joins without ON (USING, NATURAL)",
                span,
                "write `JOIN t ON a.x = t.y`",
            ));
        };
        let right = self.plan_factor(right_factor)?;
        let width = left.scope.columns.len();
        let combined = left.scope.concat(&right.scope);
        let mut left_key = Vec::new();
        let mut right_key = Vec::new();
        let mut residual = Vec::new();
        for conjunct in conjuncts(on) {
            match self.key_pair(&combined, width, conjunct)? {
                Some((l, r)) => {
                    left_key.push(l);
                    right_key.push(r);
                }
                None => residual.push(conjunct),
            }
        }
        if left_key.is_empty() {
            return Err(unsupported(
                "a join without an equality between columns of its two sides",
                on.span(),
                "joins are equi-joins: ON a.x = b.y [AND ...]",
            ));
        }
        if let (JoinKind::Left, Some(first)) = (kind, residual.first()) {
            return Err(unsupported(
                "conditions other than column equalities in the ON of a LEFT JOIN",
                first.span(),
                "filter the right side in a subquery first; ON holds the key equalities",
            ));
        }
        let left_columns = self.columns(left.node).to_vec();
        let right_columns = self.columns(right.node).to_vec();
        let left_arranged = self.add(
            Node::Arrange {
                input: left.node,
                key: left_key,
            },
            left_columns,
        );
        let right_arranged = self.add(
            Node::Arrange {
                input: right.node,
                key: right_key,
            },
            right_columns,
        );
        let right_scope = match kind {
            JoinKind::Inner => right.scope,
            JoinKind::Left => right.scope.nullable(),
        };
        let scope = left.scope.concat(&right_scope);
        let mut node = self.add(
            Node::Join {
                left: left_arranged,
                right: right_arranged,
                kind,
            },
            scope.plan_columns(),
        );
        if !residual.is_empty() {
            let mut predicate = None;
            for conjunct in residual {
                let t = ExprTranslator::plain(&scope, "ON").predicate(conjunct)?;
                predicate = Some(match predicate {
                    None => t,
                    Some(p) => build_binary(BinaryOp::And, p, t, conjunct.span())?,
                });
            }
            if let Some(predicate) = predicate {
                node = self.add(
                    Node::Filter {
                        input: node,
                        predicate: predicate.expr,
                    },
                    scope.plan_columns(),
                );
            }
        }
        Ok(Relation { node, scope })
    }

    /// `(left column, right column)` when the conjunct equates a column of each side.
    fn key_pair(
        &self,
        combined: &Scope,
        width: usize,
        conjunct: &ast::Expr,
    ) -> PlanResult<Option<(usize, usize)>> {
        let ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } = conjunct
        else {
            return Ok(None);
        };
        let mut translator = ExprTranslator::plain(combined, "ON");
        let (a, b) = (translator.translate(left)?, translator.translate(right)?);
        let (Expr::Column(a), Expr::Column(b)) = (a.expr, b.expr) else {
            return Ok(None);
        };
        let (l, r) = match (a < width, b < width) {
            (true, false) => (a, b),
            (false, true) => (b, a),
            _ => return Ok(None),
        };
        let (lt, rt) = (combined.columns[l].ty, combined.columns[r].ty);
        if lt != rt {
            return Err(PlanError::new(
                ErrorKind::TypeMismatch(format!(
                    "join key `{}` is {lt} but `{}` is {rt}",
                    combined.columns[l].name, combined.columns[r].name
                )),
                conjunct.span(),
            )
            .with_hint("join keys must have one type; CAST one side in a subquery"));
        }
        Ok(Some((l, r - width)))
    }

    /// `CROSS JOIN UNNEST(string_to_array(text, delimiter)) AS alias(column)`.
    fn plan_unnest(&mut self, left: Relation, factor: &TableFactor) -> PlanResult<Relation> {
        let span = factor.span();
        let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset,
            with_ordinality,
            ..
        } = factor
        else {
            unreachable!("plan_unnest is called on UNNEST factors")
        };
        let hint = "write UNNEST(string_to_array(text, ' ')) AS w(word)";
        let split_args = match array_exprs.as_slice() {
            [ast::Expr::Function(f)] if !with_offset && !with_ordinality => {
                match super::functions::function_name(f).as_deref() {
                    Some("string_to_array") => match &f.args {
                        ast::FunctionArguments::List(list) => list
                            .args
                            .iter()
                            .map(|a| match a {
                                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                                _ => None,
                            })
                            .collect::<Option<Vec<_>>>(),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        };
        let Some([text, delimiter]) = split_args.as_deref() else {
            return Err(unsupported("this UNNEST", span, hint));
        };
        let mut translator = ExprTranslator::plain(&left.scope, "UNNEST");
        let text_typed = translator.translate(text)?;
        expect(
            &text_typed,
            &[ScalarType::Text],
            "string_to_array",
            text.span(),
        )?;
        let delimiter = match translator.translate(delimiter)?.expr {
            Expr::Literal(Value::Text(d)) => d.to_string(),
            _ => {
                return Err(PlanError::new(
                    ErrorKind::Invalid(
                        "the delimiter of string_to_array must be a string literal".into(),
                    ),
                    delimiter.span(),
                )
                .with_hint("e.g. ' ' (or '' to split on any whitespace)"))
            }
        };
        let qualifier = alias.as_ref().map(|a| ident_name(&a.name));
        let name = match alias {
            Some(a) => match a.columns.as_slice() {
                [] => ident_name(&a.name),
                [c] => ident_name(&c.name),
                _ => return Err(unsupported("several UNNEST columns", span, hint)),
            },
            None => "unnest".to_string(),
        };
        let mut columns = self.columns(left.node).to_vec();
        columns.push(Column {
            name: name.clone(),
            ty: ScalarType::Text,
            nullable: false,
        });
        let node = self.add(
            Node::FlatMap {
                input: left.node,
                func: TableFunc::Split {
                    expr: text_typed.expr,
                    delimiter,
                },
            },
            columns,
        );
        let mut scope = left.scope;
        scope.columns.push(ScopeColumn {
            qualifier,
            name,
            ty: ScalarType::Text,
            nullable: false,
        });
        Ok(Relation { node, scope })
    }
}

/// The conjuncts of `a AND b AND ...` (looking through parentheses).
pub(crate) fn conjuncts(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        ast::Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}
