//! Event-time window table functions in `FROM`, as in Flink and RisingWave:
//!
//! - `TUMBLE(relation, time_column, size)`
//! - `HOP(relation, time_column, slide, size)` — Flink's argument order: the slide
//!   (distance between window starts) comes before the size (window length).
//!
//! Durations are `INTERVAL` literals (or integer milliseconds). The result is the
//! relation's columns plus `window_start` and `window_end` (`TIMESTAMP NOT NULL`);
//! a row is repeated once per window that covers its time, and a row with a NULL
//! time is in no window.

use sqlparser::ast::{self, Spanned};

use super::expr::{unsupported, ExprTranslator};
use super::scope::{Relation, Scope};
use super::{ident_name, Planner};
use crate::diagnostics::{ErrorKind, PlanError, PlanResult, Span};
use crate::expr::Expr;
use crate::plan::{Column, Node};
use crate::types::{ScalarType, Value};

const HINT: &str = "windows: TUMBLE(source, time_column, INTERVAL '1' MINUTE) and HOP(source, time_column, slide, size)";

impl Planner {
    /// Plans `TUMBLE(...)` or `HOP(...)` in `FROM`.
    pub(crate) fn plan_window(
        &mut self,
        function: &ast::Ident,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
        span: Span,
    ) -> PlanResult<Relation> {
        let name = ident_name(function);
        let arity = match name.as_str() {
            "tumble" => 3,
            "hop" => 4,
            _ => {
                return Err(PlanError::new(
                    ErrorKind::Unsupported(format!("the table function `{name}`")),
                    function.span,
                )
                .with_hint(HINT))
            }
        };
        let args: Vec<&ast::Expr> = args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect::<Option<_>>()
            .filter(|a: &Vec<&ast::Expr>| a.len() == arity)
            .ok_or_else(|| {
                PlanError::new(
                    ErrorKind::Invalid(format!("{} takes {arity} arguments", name.to_uppercase())),
                    span,
                )
                .with_hint(HINT)
            })?;
        let ast::Expr::Identifier(table) = args[0] else {
            return Err(unsupported(
                "a window over anything but a source or view name",
                args[0].span(),
                "declare the input as a view and window it by name",
            ));
        };
        let qualifier = alias.map_or_else(|| ident_name(table), |a| ident_name(&a.name));
        if alias.is_some_and(|a| !a.columns.is_empty()) {
            return Err(unsupported(
                "column aliases on a window",
                span,
                "rename columns with AS in the SELECT list",
            ));
        }
        let input = self.lookup_relation(table, &qualifier)?;
        let time_column = match args[1] {
            ast::Expr::Identifier(ident) => input.scope.resolve(None, ident)?,
            other => {
                return Err(unsupported(
                    "a window over an expression",
                    other.span(),
                    "name a TIMESTAMP column of the input",
                ))
            }
        };
        let time = &input.scope.columns[time_column];
        if time.ty != ScalarType::Timestamp {
            return Err(PlanError::new(
                ErrorKind::TypeMismatch(format!(
                    "window time column `{}` is {}, expected TIMESTAMP",
                    time.name, time.ty
                )),
                args[1].span(),
            )
            .with_hint("window over a TIMESTAMP column"));
        }
        let durations = args[2..]
            .iter()
            .map(|e| duration_ms(e))
            .collect::<PlanResult<Vec<i64>>>()?;
        let (slide_ms, size_ms) = match durations.as_slice() {
            [size] => (*size, *size),
            [slide, size] => (*slide, *size),
            _ => unreachable!("arity checked above"),
        };
        let mut columns = self.columns(input.node).to_vec();
        for name in ["window_start", "window_end"] {
            columns.push(Column {
                name: name.to_string(),
                ty: ScalarType::Timestamp,
                nullable: false,
            });
        }
        let node = self.add(
            Node::Window {
                input: input.node,
                time_column,
                size_ms,
                slide_ms,
            },
            columns,
        );
        Ok(Relation {
            node,
            scope: Scope::from_columns(Some(&qualifier), self.columns(node)),
        })
    }
}

/// A positive constant duration in milliseconds.
fn duration_ms(e: &ast::Expr) -> PlanResult<i64> {
    let empty = Scope::default();
    let t = ExprTranslator::plain(&empty, "a window duration").translate(e)?;
    match t.expr {
        Expr::Literal(Value::Int(ms)) if ms > 0 => Ok(ms),
        _ => Err(PlanError::new(
            ErrorKind::Invalid(format!(
                "window durations must be positive INTERVALs, found `{e}`"
            )),
            e.span(),
        )
        .with_hint("e.g. INTERVAL '10' SECOND or INTERVAL '1' MINUTE")),
    }
}
