//! SQL expressions to typed plan expressions.
//!
//! An [`ExprTranslator`] resolves names against a [`Scope`] and type-checks as it
//! builds [`Expr`]s. In an aggregating query it carries a [`Grouping`]: then an
//! expression equal to a `GROUP BY` key becomes that key's column, an aggregate
//! call is collected and becomes its column, and any other column reference is an
//! error — the output row of such a query is `[keys..., aggregates...]`.
//!
//! Typing: `BIGINT` and `DOUBLE` mix as `DOUBLE`; `TIMESTAMP ± BIGINT` (milliseconds,
//! e.g. an `INTERVAL`) is a `TIMESTAMP`; `TIMESTAMP - TIMESTAMP` is `BIGINT`; a text
//! literal compared with a `TIMESTAMP` is read as a timestamp. Constant
//! sub-expressions are folded.

use sqlparser::ast::{self, BinaryOperator, CastKind, Spanned, UnaryOperator};

use super::functions::{aggregate_call, contains_aggregate};
use super::scope::Scope;
use crate::diagnostics::{ErrorKind, PlanError, PlanResult, Span};
use crate::expr::{BinaryOp, Expr, Func, UnaryOp};
use crate::plan::Aggregate;
use crate::types::{parse_timestamp, ScalarType, Value};

/// A plan expression with its type and nullability.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TypedExpr {
    /// The expression.
    pub expr: Expr,
    /// Its type.
    pub ty: ScalarType,
    /// Whether it may evaluate to NULL.
    pub nullable: bool,
}

impl TypedExpr {
    /// A literal.
    pub fn literal(value: Value) -> Self {
        TypedExpr {
            ty: value.scalar_type(),
            nullable: value.is_null(),
            expr: Expr::Literal(value),
        }
    }
}

/// An aggregate collected from an aggregating query.
#[derive(Clone, Debug)]
pub(crate) struct AggregateCall {
    /// The aggregate, its argument over the query's input row.
    pub aggregate: Aggregate,
    /// The argument's type and nullability.
    pub arg: TypedExpr,
    /// Result type.
    pub ty: ScalarType,
    /// Whether the result may be NULL.
    pub nullable: bool,
    /// Default output name (the function name).
    pub name: String,
}

/// The `GROUP BY` keys and aggregates of an aggregating query.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grouping {
    /// Key expressions over the input row.
    pub keys: Vec<TypedExpr>,
    /// Aggregates found so far.
    pub aggregates: Vec<AggregateCall>,
    /// No `GROUP BY`: one output row even over no input, so aggregates may be NULL.
    pub global: bool,
}

/// Translates SQL expressions over one scope.
pub(crate) struct ExprTranslator<'a> {
    /// The columns names resolve to.
    pub scope: &'a Scope,
    /// Set in an aggregating query (see the module doc).
    pub grouping: Option<&'a mut Grouping>,
    /// The clause being translated, for error messages (`WHERE`, `ON`, ...).
    pub clause: &'static str,
}

const SUPPORTED: &str = "supported expressions: columns, literals, INTERVAL, arithmetic, comparisons, AND/OR/NOT, CASE, CAST, COALESCE, IS [NOT] NULL, [NOT] LIKE, [NOT] IN (list), BETWEEN, || and the functions in pipelines/README.md";

impl<'a> ExprTranslator<'a> {
    /// A translator for a clause that cannot hold aggregates.
    pub fn plain(scope: &'a Scope, clause: &'static str) -> Self {
        ExprTranslator {
            scope,
            grouping: None,
            clause,
        }
    }

    /// Translates and type-checks one expression.
    pub fn translate(&mut self, e: &ast::Expr) -> PlanResult<TypedExpr> {
        if let Some(grouping) = self.grouping.as_deref_mut() {
            if let Some((function, func)) = aggregate_call(e) {
                let scope = self.scope;
                return super::functions::aggregate(scope, grouping, function, func, e.span());
            }
            if !contains_aggregate(e) {
                if let Ok(t) = ExprTranslator::plain(self.scope, self.clause).translate(e) {
                    if let Some(i) = grouping.keys.iter().position(|k| k.expr == t.expr) {
                        let key = &grouping.keys[i];
                        return Ok(TypedExpr {
                            expr: Expr::Column(i),
                            ty: key.ty,
                            nullable: key.nullable,
                        });
                    }
                    if t.expr.is_constant() {
                        return Ok(t);
                    }
                }
            }
        } else if let Some((function, _)) = aggregate_call(e) {
            return Err(PlanError::new(
                ErrorKind::Invalid(format!(
                    "aggregate function `{}` is not allowed in {}",
                    super::functions::function_name(function).unwrap_or_default(),
                    self.clause
                )),
                e.span(),
            )
            .with_hint("aggregates belong in the SELECT list or HAVING of a query"));
        }
        let span = e.span();
        self.translate_structure(e).map_err(|err| err.or_span(span))
    }

    /// Translates a predicate (`WHERE`, `HAVING`, `ON`): it must be a `BOOLEAN`.
    pub fn predicate(&mut self, e: &ast::Expr) -> PlanResult<TypedExpr> {
        let t = self.translate(e)?;
        expect(&t, &[ScalarType::Bool], self.clause, e.span())?;
        Ok(t)
    }

    fn translate_structure(&mut self, e: &ast::Expr) -> PlanResult<TypedExpr> {
        let span = e.span();
        let t = match e {
            ast::Expr::Identifier(ident) => self.column(None, ident)?,
            ast::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, name] => self.column(Some(qualifier), name)?,
                _ => {
                    return Err(unsupported(
                        "names with more than one qualifier",
                        span,
                        "write `table.column`",
                    ))
                }
            },
            ast::Expr::Value(v) => TypedExpr::literal(literal(&v.value, span)?),
            ast::Expr::TypedString(typed) => {
                let text = match &typed.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let ty = super::functions::data_type(&typed.data_type, span)?;
                typed_literal(&text, ty, span)?
            }
            ast::Expr::Interval(interval) => {
                TypedExpr::literal(Value::Int(interval_ms(interval, span)?))
            }
            ast::Expr::Nested(inner) => return self.translate(inner),
            ast::Expr::UnaryOp { op, expr } => {
                let operand = self.translate(expr)?;
                match op {
                    UnaryOperator::Not => {
                        expect(&operand, &[ScalarType::Bool], "NOT", span)?;
                        unary(UnaryOp::Not, operand, ScalarType::Bool)
                    }
                    UnaryOperator::Minus => {
                        expect(&operand, &[ScalarType::Int, ScalarType::Float], "-", span)?;
                        let ty = operand.ty;
                        unary(UnaryOp::Neg, operand, ty)
                    }
                    UnaryOperator::Plus => {
                        expect(&operand, &[ScalarType::Int, ScalarType::Float], "+", span)?;
                        operand
                    }
                    other => {
                        return Err(unsupported(
                            &format!("the operator `{other}`"),
                            span,
                            SUPPORTED,
                        ))
                    }
                }
            }
            ast::Expr::BinaryOp { left, op, right } => {
                let op = binary_op(op, span)?;
                let l = self.translate(left)?;
                let r = self.translate(right)?;
                build_binary(op, l, r, span)?
            }
            ast::Expr::IsNull(inner) | ast::Expr::IsNotNull(inner) => {
                let operand = self.translate(inner)?;
                let op = if matches!(e, ast::Expr::IsNull(_)) {
                    UnaryOp::IsNull
                } else {
                    UnaryOp::IsNotNull
                };
                let mut t = unary(op, operand, ScalarType::Bool);
                t.nullable = false;
                t
            }
            ast::Expr::InList {
                expr,
                list,
                negated,
            } => {
                let value = self.translate(expr)?;
                let mut items = Vec::new();
                let mut nullable = value.nullable;
                for item in list {
                    let item_span = item.span();
                    let (v, t) =
                        coerce_comparison(value.clone(), self.translate(item)?, item_span)?;
                    check_comparable(&v, &t, "IN", item_span)?;
                    nullable |= t.nullable;
                    items.push(t.expr);
                }
                TypedExpr {
                    expr: Expr::InList {
                        expr: Box::new(value.expr),
                        list: items,
                        negated: *negated,
                    },
                    ty: ScalarType::Bool,
                    nullable,
                }
            }
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let value = self.translate(expr)?;
                let low = build_binary(BinaryOp::GtEq, value.clone(), self.translate(low)?, span)?;
                let high = build_binary(BinaryOp::LtEq, value, self.translate(high)?, span)?;
                let both = build_binary(BinaryOp::And, low, high, span)?;
                if *negated {
                    unary(UnaryOp::Not, both, ScalarType::Bool)
                } else {
                    both
                }
            }
            ast::Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            }
            | ast::Expr::ILike {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(unsupported(
                        "LIKE ANY and LIKE ... ESCAPE",
                        span,
                        "use `x LIKE 'pattern'` with % and _ wildcards",
                    ));
                }
                let mut value = self.translate(expr)?;
                let mut pattern = self.translate(pattern)?;
                expect(&value, &[ScalarType::Text], "LIKE", span)?;
                expect(&pattern, &[ScalarType::Text], "LIKE", span)?;
                if matches!(e, ast::Expr::ILike { .. }) {
                    value = call(Func::Lower, vec![value], ScalarType::Text);
                    pattern = call(Func::Lower, vec![pattern], ScalarType::Text);
                }
                TypedExpr {
                    nullable: value.nullable || pattern.nullable,
                    expr: Expr::Like {
                        expr: Box::new(value.expr),
                        pattern: Box::new(pattern.expr),
                        negated: *negated,
                    },
                    ty: ScalarType::Bool,
                }
            }
            ast::Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if matches!(kind, CastKind::TryCast | CastKind::SafeCast) || format.is_some() {
                    return Err(unsupported(
                        "TRY_CAST, SAFE_CAST and CAST ... FORMAT",
                        span,
                        "use CAST(x AS type); failed casts go to the dead-letter topic",
                    ));
                }
                let to = super::functions::data_type(data_type, span)?;
                let value = self.translate(expr)?;
                build_cast(value, to, span)?
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref(), span)?,
            ast::Expr::Function(function) => self.function(function, span)?,
            ast::Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.translate(expr)?];
                args.push(match substring_from {
                    Some(from) => self.translate(from)?,
                    None => TypedExpr::literal(Value::Int(1)),
                });
                if let Some(length) = substring_for {
                    args.push(self.translate(length)?);
                }
                super::functions::check_args(Func::Substring, &args, span)?;
                call(Func::Substring, args, ScalarType::Text)
            }
            ast::Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_where.is_some() || trim_what.is_some() || trim_characters.is_some() {
                    return Err(unsupported(
                        "TRIM with BOTH/LEADING/TRAILING or characters",
                        span,
                        "TRIM(x) removes leading and trailing whitespace",
                    ));
                }
                let args = vec![self.translate(expr)?];
                super::functions::check_args(Func::Trim, &args, span)?;
                call(Func::Trim, args, ScalarType::Text)
            }
            _ => {
                return Err(unsupported(
                    &format!("the expression `{e}`"),
                    span,
                    SUPPORTED,
                ))
            }
        };
        Ok(fold(t))
    }

    /// A column reference.
    pub(crate) fn column(
        &mut self,
        qualifier: Option<&ast::Ident>,
        name: &ast::Ident,
    ) -> PlanResult<TypedExpr> {
        let index = self.scope.resolve(qualifier, name)?;
        let c = &self.scope.columns[index];
        if self.grouping.is_some() {
            let shown = match qualifier {
                Some(q) => format!("{}.{}", super::ident_name(q), c.name),
                None => c.name.clone(),
            };
            let span = qualifier.map_or(name.span, |q| q.span.union(&name.span));
            return Err(
                PlanError::new(ErrorKind::NotGrouped(shown), span).with_hint(
                    "add it to GROUP BY, or aggregate it, e.g. MIN(x), MAX(x) or COUNT(DISTINCT x)",
                ),
            );
        }
        Ok(TypedExpr {
            expr: Expr::Column(index),
            ty: c.ty,
            nullable: c.nullable,
        })
    }

    fn case(
        &mut self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        otherwise: Option<&ast::Expr>,
        span: Span,
    ) -> PlanResult<TypedExpr> {
        let operand = operand.map(|o| self.translate(o)).transpose()?;
        let mut branches = Vec::new();
        let mut results = Vec::new();
        for when in conditions {
            let condition_span = when.condition.span();
            let condition = match &operand {
                Some(value) => build_binary(
                    BinaryOp::Eq,
                    value.clone(),
                    self.translate(&when.condition)?,
                    condition_span,
                )?,
                None => {
                    let c = self.translate(&when.condition)?;
                    expect(&c, &[ScalarType::Bool], "CASE WHEN", condition_span)?;
                    c
                }
            };
            branches.push(condition.expr);
            results.push((self.translate(&when.result)?, when.result.span()));
        }
        if let Some(e) = otherwise {
            results.push((self.translate(e)?, e.span()));
        }
        let results = unify(results, "CASE", span)?;
        let nullable = otherwise.is_none() || results.iter().any(|r| r.nullable);
        let ty = results
            .iter()
            .map(|r| r.ty)
            .find(|t| *t != ScalarType::Null)
            .unwrap_or(ScalarType::Null);
        let mut results = results.into_iter().map(|r| r.expr);
        let branches = branches.into_iter().zip(results.by_ref()).collect();
        Ok(TypedExpr {
            expr: Expr::Case {
                branches,
                otherwise: results.next().map(Box::new),
            },
            ty,
            nullable,
        })
    }
}

/// Brings expressions to one type (`BIGINT` and `DOUBLE` unify as `DOUBLE`).
pub(crate) fn unify(
    items: Vec<(TypedExpr, Span)>,
    what: &str,
    span: Span,
) -> PlanResult<Vec<TypedExpr>> {
    let mut ty = ScalarType::Null;
    for (t, item_span) in &items {
        ty = match (ty, t.ty) {
            (a, b) if a == b => a,
            (ScalarType::Null, b) => b,
            (a, ScalarType::Null) => a,
            (a, b) if a.is_numeric() && b.is_numeric() => ScalarType::Float,
            (a, b) => {
                return Err(PlanError::new(
                    ErrorKind::TypeMismatch(format!("{what} mixes {a} and {b}")),
                    *item_span,
                )
                .with_hint("all results must have one type; use CAST to convert")
                .or_span(span))
            }
        };
    }
    Ok(items
        .into_iter()
        .map(|(t, _)| {
            if t.ty == ScalarType::Int && ty == ScalarType::Float {
                fold(TypedExpr {
                    expr: Expr::Cast {
                        expr: Box::new(t.expr),
                        to: ScalarType::Float,
                    },
                    ty,
                    nullable: t.nullable,
                })
            } else {
                t
            }
        })
        .collect())
}

pub(crate) fn unsupported(what: &str, span: Span, hint: &str) -> PlanError {
    PlanError::new(ErrorKind::Unsupported(what.to_string()), span).with_hint(hint.to_string())
}

/// Fails unless `t` has one of the `wanted` types (a NULL literal fits any).
pub(crate) fn expect(
    t: &TypedExpr,
    wanted: &[ScalarType],
    what: &str,
    span: Span,
) -> PlanResult<()> {
    if t.ty == ScalarType::Null || wanted.contains(&t.ty) {
        return Ok(());
    }
    let names: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
    Err(PlanError::new(
        ErrorKind::TypeMismatch(format!(
            "{what} expects {}, found {}",
            names.join(" or "),
            t.ty
        )),
        span,
    )
    .with_hint("use CAST(x AS type) to convert"))
}

fn unary(op: UnaryOp, operand: TypedExpr, ty: ScalarType) -> TypedExpr {
    TypedExpr {
        nullable: operand.nullable,
        expr: Expr::Unary {
            op,
            expr: Box::new(operand.expr),
        },
        ty,
    }
}

/// A scalar function call whose result is NULL when an argument is.
pub(crate) fn call(func: Func, args: Vec<TypedExpr>, ty: ScalarType) -> TypedExpr {
    let nullable = func != Func::Concat && args.iter().any(|a| a.nullable);
    fold(TypedExpr {
        expr: Expr::Call {
            func,
            args: args.into_iter().map(|a| a.expr).collect(),
        },
        ty,
        nullable,
    })
}

/// Evaluates a constant expression at plan time (unless evaluating it fails: then
/// the failure is left to run time, where it is reported per row).
pub(crate) fn fold(t: TypedExpr) -> TypedExpr {
    if matches!(t.expr, Expr::Literal(_)) || !t.expr.is_constant() {
        return t;
    }
    match t.expr.eval(&[]) {
        Ok(v) => TypedExpr {
            nullable: v.is_null(),
            expr: Expr::Literal(v),
            ty: t.ty,
        },
        Err(_) => t,
    }
}

fn binary_op(op: &BinaryOperator, span: Span) -> PlanResult<BinaryOp> {
    Ok(match op {
        BinaryOperator::Plus => BinaryOp::Add,
        BinaryOperator::Minus => BinaryOp::Sub,
        BinaryOperator::Multiply => BinaryOp::Mul,
        BinaryOperator::Divide => BinaryOp::Div,
        BinaryOperator::Modulo => BinaryOp::Mod,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::NotEq => BinaryOp::NotEq,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::LtEq => BinaryOp::LtEq,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::GtEq => BinaryOp::GtEq,
        BinaryOperator::And => BinaryOp::And,
        BinaryOperator::Or => BinaryOp::Or,
        BinaryOperator::StringConcat => BinaryOp::Concat,
        other => {
            return Err(unsupported(
                &format!("the operator `{other}`"),
                span,
                "operators: + - * / % = <> < <= > >= AND OR NOT ||",
            ))
        }
    })
}

/// A text literal compared with a `TIMESTAMP` is read as a timestamp.
fn coerce_comparison(l: TypedExpr, r: TypedExpr, span: Span) -> PlanResult<(TypedExpr, TypedExpr)> {
    let as_timestamp = |t: TypedExpr| -> PlanResult<TypedExpr> {
        match &t.expr {
            Expr::Literal(Value::Text(s)) => typed_literal(s, ScalarType::Timestamp, span),
            _ => Ok(t),
        }
    };
    Ok(match (l.ty, r.ty) {
        (ScalarType::Timestamp, ScalarType::Text) => (l, as_timestamp(r)?),
        (ScalarType::Text, ScalarType::Timestamp) => (as_timestamp(l)?, r),
        _ => (l, r),
    })
}

fn check_comparable(l: &TypedExpr, r: &TypedExpr, what: &str, span: Span) -> PlanResult<()> {
    let ok = l.ty == r.ty
        || l.ty == ScalarType::Null
        || r.ty == ScalarType::Null
        || (l.ty.is_numeric() && r.ty.is_numeric());
    if ok {
        return Ok(());
    }
    Err(PlanError::new(
        ErrorKind::TypeMismatch(format!("cannot compare {} with {} in `{what}`", l.ty, r.ty)),
        span,
    )
    .with_hint("compare values of one type; use CAST(x AS type) to convert"))
}

/// A binary operation with its result type, or a type error naming both types.
pub(crate) fn build_binary(
    op: BinaryOp,
    l: TypedExpr,
    r: TypedExpr,
    span: Span,
) -> PlanResult<TypedExpr> {
    use ScalarType::*;
    let (mut l, mut r) = (l, r);
    let ty = match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            match (l.ty, r.ty) {
                (Int, Int) | (Int, Null) | (Null, Int) => Int,
                (a, b) if a.is_numeric() && b.is_numeric() => Float,
                (Float, Null) | (Null, Float) => Float,
                (Null, Null) => Null,
                (Timestamp, Int | Null) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
                    Timestamp
                }
                (Int, Timestamp) if op == BinaryOp::Add => {
                    // Evaluation wants the timestamp first; addition commutes.
                    std::mem::swap(&mut l, &mut r);
                    Timestamp
                }
                (Timestamp, Timestamp) if op == BinaryOp::Sub => Int,
                (a, b) => {
                    return Err(PlanError::new(
                        ErrorKind::TypeMismatch(format!(
                            "cannot apply `{}` to {a} and {b}",
                            op.symbol()
                        )),
                        span,
                    )
                    .with_hint(
                        "arithmetic takes BIGINT or DOUBLE operands, or TIMESTAMP ± BIGINT milliseconds (INTERVAL); use CAST to convert",
                    ))
                }
            }
        }
        BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::LtEq
        | BinaryOp::Gt
        | BinaryOp::GtEq => {
            (l, r) = coerce_comparison(l, r, span)?;
            check_comparable(&l, &r, op.symbol(), span)?;
            Bool
        }
        BinaryOp::And | BinaryOp::Or => {
            expect(&l, &[Bool], op.symbol(), span)?;
            expect(&r, &[Bool], op.symbol(), span)?;
            Bool
        }
        BinaryOp::Concat => Text,
    };
    Ok(fold(TypedExpr {
        nullable: l.nullable || r.nullable,
        expr: Expr::Binary {
            op,
            left: Box::new(l.expr),
            right: Box::new(r.expr),
        },
        ty,
    }))
}

/// A `CAST`, or a type error when no value of the source type converts.
pub(crate) fn build_cast(value: TypedExpr, to: ScalarType, span: Span) -> PlanResult<TypedExpr> {
    use ScalarType::*;
    let castable = matches!(
        (value.ty, to),
        (Null, _)
            | (_, Text)
            | (Text, _)
            | (Int, Float | Bool | Timestamp)
            | (Float, Int)
            | (Bool, Int)
            | (Timestamp, Int)
    ) || value.ty == to;
    if !castable {
        return Err(PlanError::new(
            ErrorKind::TypeMismatch(format!("cannot cast {} to {to}", value.ty)),
            span,
        )
        .with_hint("casts: anything to and from TEXT, BIGINT to and from DOUBLE, BOOLEAN and TIMESTAMP (epoch ms)"));
    }
    if value.ty == to {
        return Ok(value);
    }
    Ok(fold(TypedExpr {
        nullable: value.nullable,
        expr: Expr::Cast {
            expr: Box::new(value.expr),
            to,
        },
        ty: to,
    }))
}

fn literal(v: &ast::Value, span: Span) -> PlanResult<Value> {
    Ok(match v {
        ast::Value::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::float(n.parse::<f64>().map_err(|_| {
                PlanError::new(ErrorKind::Invalid(format!("invalid number {n}")), span)
            })?),
        },
        ast::Value::SingleQuotedString(s) => Value::text(s),
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::Null => Value::Null,
        ast::Value::DoubleQuotedString(s) => {
            return Err(unsupported(
                &format!("the double-quoted string \"{s}\""),
                span,
                "strings take single quotes: 'text'",
            ))
        }
        other => return Err(unsupported(
            &format!("the literal {other}"),
            span,
            "literals: numbers, 'strings', TRUE, FALSE, NULL, TIMESTAMP '...', INTERVAL '1' MINUTE",
        )),
    })
}

/// `TIMESTAMP '2023-11-14T22:13:20Z'` and other typed literals.
fn typed_literal(text: &str, ty: ScalarType, span: Span) -> PlanResult<TypedExpr> {
    if ty == ScalarType::Timestamp {
        let normalised = text.trim().replacen(' ', "T", 1);
        let parsed =
            parse_timestamp(&normalised).or_else(|| parse_timestamp(&format!("{normalised}Z")));
        return match parsed {
            Some(ms) => Ok(TypedExpr::literal(Value::Timestamp(ms))),
            None => Err(PlanError::new(
                ErrorKind::Invalid(format!("invalid timestamp '{text}'")),
                span,
            )
            .with_hint("write timestamps in RFC 3339, e.g. '2023-11-14T22:13:20Z'")),
        };
    }
    build_cast(TypedExpr::literal(Value::text(text)), ty, span).and_then(|t| match t.expr {
        Expr::Literal(_) => Ok(t),
        _ => Err(PlanError::new(
            ErrorKind::Invalid(format!("'{text}' is not a valid {ty}")),
            span,
        )),
    })
}

/// An `INTERVAL` literal in milliseconds (`INTERVAL '1' MINUTE`, `INTERVAL '5 seconds'`).
pub(crate) fn interval_ms(interval: &ast::Interval, span: Span) -> PlanResult<i64> {
    use sqlparser::ast::DateTimeField as F;
    let bad = || {
        PlanError::new(
            ErrorKind::Invalid(format!("invalid interval `{interval}`")),
            span,
        )
        .with_hint("write INTERVAL '10' SECOND, INTERVAL '1' MINUTE or INTERVAL '5 seconds' (milliseconds to days)")
    };
    let text = match interval.value.as_ref() {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    if interval.last_field.is_some() {
        return Err(bad());
    }
    let ms = match &interval.leading_field {
        None => super::source::parse_duration(&text),
        Some(field) => {
            let scale = match field {
                F::Millisecond | F::Milliseconds => 1,
                F::Second | F::Seconds => 1_000,
                F::Minute | F::Minutes => 60_000,
                F::Hour | F::Hours => 3_600_000,
                F::Day | F::Days => 86_400_000,
                F::Week(_) | F::Weeks => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            text.trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(scale))
        }
    };
    ms.ok_or_else(bad)
}
