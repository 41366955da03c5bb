//! Function calls: scalar functions, aggregates, and walking the SQL syntax tree
//! to find them.
//!
//! Scalar functions: `lower`, `upper`, `trim`, `length` (`char_length`),
//! `substring` (`substr`), `concat`, `date_trunc`, `abs`, `coalesce`, `mod`.
//! Aggregates: `count(*)`, `count`, `sum`, `min`, `max`, `avg`, each also with
//! `DISTINCT`.

use sqlparser::ast::{self, DuplicateTreatment, FunctionArg, FunctionArgExpr, Spanned};

use super::expr::{
    call, expect, unify, unsupported, AggregateCall, ExprTranslator, Grouping, TypedExpr,
};
use super::scope::Scope;
use crate::diagnostics::{suggestion_hint, ErrorKind, PlanError, PlanResult, Span};
use crate::expr::{BinaryOp, Expr, Func};
use crate::plan::{AggFunc, Aggregate};
use crate::types::{ScalarType, Value};

const SCALAR_FUNCTIONS: [&str; 11] = [
    "lower",
    "upper",
    "trim",
    "length",
    "substring",
    "concat",
    "date_trunc",
    "abs",
    "coalesce",
    "mod",
    "char_length",
];

/// The lower-case name of a function, if it is a plain (unqualified) name.
pub(crate) fn function_name(function: &ast::Function) -> Option<String> {
    match function.name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(ident)] => Some(ident.value.to_lowercase()),
        _ => None,
    }
}

/// The aggregate an expression calls, if it is an aggregate call (not a window
/// function).
pub(crate) fn aggregate_call(e: &ast::Expr) -> Option<(&ast::Function, AggFunc)> {
    let ast::Expr::Function(function) = e else {
        return None;
    };
    if function.over.is_some() {
        return None;
    }
    let func = match function_name(function)?.as_str() {
        "count" => match &function.args {
            ast::FunctionArguments::List(list)
                if matches!(
                    list.args.as_slice(),
                    [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
                ) =>
            {
                AggFunc::CountStar
            }
            _ => AggFunc::Count,
        },
        "sum" => AggFunc::Sum,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "avg" => AggFunc::Avg,
        _ => return None,
    };
    Some((function, func))
}

/// The direct sub-expressions of an expression (of the forms the planner knows).
pub(crate) fn children(e: &ast::Expr) -> Vec<&ast::Expr> {
    use ast::Expr as E;
    match e {
        E::IsNull(x) | E::IsNotNull(x) | E::Nested(x) | E::UnaryOp { expr: x, .. } => vec![x],
        E::Cast { expr, .. } | E::Trim { expr, .. } => vec![expr],
        E::BinaryOp { left, right, .. } => vec![left, right],
        E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => vec![expr, pattern],
        E::InList { expr, list, .. } => std::iter::once(expr.as_ref()).chain(list).collect(),
        E::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        E::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => std::iter::once(expr.as_ref())
            .chain(substring_from.as_deref())
            .chain(substring_for.as_deref())
            .collect(),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => operand
            .as_deref()
            .into_iter()
            .chain(conditions.iter().flat_map(|c| [&c.condition, &c.result]))
            .chain(else_result.as_deref())
            .collect(),
        E::Function(f) => function_args(f).into_iter().flatten().collect(),
        _ => vec![],
    }
}

/// The expression arguments of a call (`None` for `*`).
fn function_args(f: &ast::Function) -> Vec<Option<&ast::Expr>> {
    match &f.args {
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Some(e),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// True when the expression calls an aggregate anywhere.
pub(crate) fn contains_aggregate(e: &ast::Expr) -> bool {
    aggregate_call(e).is_some() || children(e).into_iter().any(contains_aggregate)
}

/// True when the expression refers to a column called `name` (qualified or not).
pub(crate) fn mentions_column(e: &ast::Expr, name: &str) -> bool {
    match e {
        ast::Expr::Identifier(i) => super::ident_name(i) == name,
        ast::Expr::CompoundIdentifier(parts) => {
            parts.last().is_some_and(|i| super::ident_name(i) == name)
        }
        _ => children(e).into_iter().any(|c| mentions_column(c, name)),
    }
}

/// The scalar type a SQL type names, or an error listing the supported ones.
pub(crate) fn data_type(data_type: &ast::DataType, span: Span) -> PlanResult<ScalarType> {
    crate::parse::scalar_type(data_type).ok_or_else(|| {
        PlanError::new(
            ErrorKind::Unsupported(format!("the type {data_type}")),
            span,
        )
        .with_hint("types: BOOLEAN, BIGINT (INT), DOUBLE (FLOAT), TEXT (VARCHAR), TIMESTAMP")
    })
}

/// Collects one aggregate call of an aggregating query; its value is the column
/// `keys + index` of the aggregate's output row.
pub(crate) fn aggregate(
    scope: &Scope,
    grouping: &mut Grouping,
    function: &ast::Function,
    func: AggFunc,
    span: Span,
) -> PlanResult<TypedExpr> {
    let name = function_name(function).unwrap_or_default();
    let ast::FunctionArguments::List(list) = &function.args else {
        return Err(unsupported(
            &format!("`{function}`"),
            span,
            "write e.g. COUNT(*) or SUM(x)",
        ));
    };
    if function.filter.is_some() || !function.within_group.is_empty() || !list.clauses.is_empty() {
        return Err(unsupported(
            "FILTER, WITHIN GROUP and ORDER BY inside aggregates",
            span,
            "filter rows with WHERE (or CASE inside the aggregate)",
        ));
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let (arg, arg_ty, arg_nullable) = if func == AggFunc::CountStar {
        (Expr::Literal(Value::Null), ScalarType::Null, true)
    } else {
        let args = function_args(function);
        let [Some(arg)] = args.as_slice() else {
            return Err(PlanError::new(
                ErrorKind::Invalid(format!("`{name}` takes one argument")),
                span,
            )
            .with_hint(format!("write {name}(x)")));
        };
        if super::functions::contains_aggregate(arg) {
            return Err(PlanError::new(
                ErrorKind::Invalid("aggregate calls cannot be nested".into()),
                arg.span(),
            )
            .with_hint("aggregate the aggregate in an enclosing query"));
        }
        let t = ExprTranslator::plain(scope, "an aggregate argument").translate(arg)?;
        (t.expr, t.ty, t.nullable)
    };
    let numeric = [ScalarType::Int, ScalarType::Float];
    let arg_typed = TypedExpr {
        expr: arg.clone(),
        ty: arg_ty,
        nullable: arg_nullable,
    };
    let (ty, nullable) = match func {
        AggFunc::CountStar | AggFunc::Count => (ScalarType::Int, false),
        AggFunc::Sum => {
            expect(&arg_typed, &numeric, &name, span)?;
            let ty = if arg_ty == ScalarType::Float {
                ScalarType::Float
            } else {
                ScalarType::Int
            };
            (ty, arg_nullable)
        }
        AggFunc::Avg => {
            expect(&arg_typed, &numeric, &name, span)?;
            (ScalarType::Float, arg_nullable)
        }
        AggFunc::Min | AggFunc::Max => (arg_ty, arg_nullable),
    };
    let aggregate = Aggregate {
        func,
        arg,
        distinct: distinct && func != AggFunc::CountStar,
    };
    let index = match grouping
        .aggregates
        .iter()
        .position(|a| a.aggregate == aggregate)
    {
        Some(i) => i,
        None => {
            grouping.aggregates.push(AggregateCall {
                aggregate,
                arg: arg_typed,
                ty,
                nullable,
                name,
            });
            grouping.aggregates.len() - 1
        }
    };
    let call = &grouping.aggregates[index];
    Ok(TypedExpr {
        expr: Expr::Column(grouping.keys.len() + index),
        ty: call.ty,
        // Over an empty input a global aggregate is NULL; in a group it is NULL only
        // when every argument is (which a nullable argument allows).
        nullable: call.nullable || (grouping.global && !is_count(call.aggregate.func)),
    })
}

/// `COUNT` is never NULL, even over no rows.
pub(crate) fn is_count(func: AggFunc) -> bool {
    matches!(func, AggFunc::Count | AggFunc::CountStar)
}

/// Checks the argument types of a scalar function.
pub(crate) fn check_args(func: Func, args: &[TypedExpr], span: Span) -> PlanResult<()> {
    use ScalarType::*;
    let arity = |min: usize, max: usize| -> PlanResult<()> {
        if args.len() < min || args.len() > max {
            return Err(PlanError::new(
                ErrorKind::Invalid(format!(
                    "`{}` takes {} argument(s), got {}",
                    func.name(),
                    if min == max {
                        min.to_string()
                    } else {
                        format!("{min} to {max}")
                    },
                    args.len()
                )),
                span,
            ));
        }
        Ok(())
    };
    let name = func.name();
    match func {
        Func::Lower | Func::Upper | Func::Trim | Func::Length => {
            arity(1, 1)?;
            expect(&args[0], &[Text], name, span)
        }
        Func::Substring => {
            arity(2, 3)?;
            expect(&args[0], &[Text], name, span)?;
            args[1..]
                .iter()
                .try_for_each(|a| expect(a, &[Int], name, span))
        }
        Func::Concat => arity(1, usize::MAX),
        Func::Abs => {
            arity(1, 1)?;
            expect(&args[0], &[Int, Float], name, span)
        }
        Func::DateTrunc => {
            arity(2, 2)?;
            expect(&args[0], &[Text], name, span)?;
            expect(&args[1], &[Timestamp], name, span)?;
            if let Expr::Literal(Value::Text(unit)) = &args[0].expr {
                crate::expr::date_trunc(unit, 0).map_err(|e| {
                    PlanError::new(ErrorKind::Invalid(e.to_string()), span).with_hint(
                        "units: millisecond, second, minute, hour, day, week, month, year",
                    )
                })?;
            }
            Ok(())
        }
    }
}

impl ExprTranslator<'_> {
    /// A scalar function call (aggregates are handled before this).
    pub(crate) fn function(
        &mut self,
        function: &ast::Function,
        span: Span,
    ) -> PlanResult<TypedExpr> {
        let Some(name) = function_name(function) else {
            return Err(unsupported(
                &format!("the function `{}`", function.name),
                span,
                "call functions by plain name",
            ));
        };
        if function.over.is_some() {
            return Err(unsupported(
                "window functions here",
                span,
                "ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) is supported in a subquery filtered by `WHERE rn <= k`",
            ));
        }
        if matches!(function.args, ast::FunctionArguments::None) {
            // `user` and `current_user` parse as argument-less functions; in a pipeline
            // they are column names.
            let ident = ast::Ident::with_span(span, name.clone());
            return self.column(None, &ident);
        }
        if aggregate_call(&ast::Expr::Function(function.clone())).is_some() {
            return Err(PlanError::new(
                ErrorKind::Invalid(format!(
                    "aggregate function `{name}` is not allowed in {}",
                    self.clause
                )),
                span,
            ));
        }
        let mut args = Vec::new();
        for arg in function_args(function) {
            match arg {
                Some(e) => args.push((self.translate(e)?, e.span())),
                None => {
                    return Err(unsupported(
                        "`*` as a function argument",
                        span,
                        "only COUNT(*) takes `*`",
                    ))
                }
            }
        }
        let typed: Vec<TypedExpr> = args.iter().map(|(t, _)| t.clone()).collect();
        let scalar = |func: Func, ty: ScalarType| -> PlanResult<TypedExpr> {
            check_args(func, &typed, span)?;
            Ok(call(func, typed.clone(), ty))
        };
        match name.as_str() {
            "lower" => scalar(Func::Lower, ScalarType::Text),
            "upper" => scalar(Func::Upper, ScalarType::Text),
            "trim" => scalar(Func::Trim, ScalarType::Text),
            "length" | "char_length" | "character_length" => scalar(Func::Length, ScalarType::Int),
            "substring" | "substr" => scalar(Func::Substring, ScalarType::Text),
            "concat" => {
                let mut t = scalar(Func::Concat, ScalarType::Text)?;
                t.nullable = false;
                Ok(t)
            }
            "date_trunc" => scalar(Func::DateTrunc, ScalarType::Timestamp),
            "abs" => {
                let ty = typed.first().map_or(ScalarType::Int, |t| t.ty);
                scalar(Func::Abs, ty)
            }
            "coalesce" => {
                if args.is_empty() {
                    return Err(PlanError::new(ErrorKind::Invalid("`coalesce` needs arguments".into()), span));
                }
                let unified = unify(args, "COALESCE", span)?;
                let nullable = unified.iter().all(|a| a.nullable);
                let ty = unified.iter().map(|a| a.ty).find(|t| *t != ScalarType::Null).unwrap_or(ScalarType::Null);
                Ok(super::expr::fold(TypedExpr {
                    expr: Expr::Coalesce(unified.into_iter().map(|a| a.expr).collect()),
                    ty,
                    nullable,
                }))
            }
            "mod" => match <[TypedExpr; 2]>::try_from(typed.clone()) {
                Ok([a, b]) => super::expr::build_binary(BinaryOp::Mod, a, b, span),
                Err(_) => Err(PlanError::new(ErrorKind::Invalid("`mod` takes two arguments".into()), span)),
            },
            "string_to_array" => Err(unsupported(
                "string_to_array outside UNNEST",
                span,
                "split text into rows with `CROSS JOIN UNNEST(string_to_array(text, ' ')) AS w(word)`",
            )),
            other => Err(PlanError::new(
                ErrorKind::Unsupported(format!("the function `{other}`")),
                span,
            )
            .with_hint(suggestion_hint(other, "scalar functions", SCALAR_FUNCTIONS))),
        }
    }
}
