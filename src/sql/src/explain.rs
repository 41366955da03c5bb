//! `EXPLAIN`: a plan as stable, readable text.
//!
//! Sources first (topic, format, event time, lateness, key, columns with their JSON
//! paths), then every node once, in plan order, as `%id = Operator ...` with keys
//! and expressions rendered as SQL over column names, the views that use it
//! (`-- shared by:` when more than one view needs it, which is where hash-consing
//! saved work), and its output columns; then the views. The text depends only on
//! the plan, so golden tests can hold it.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::expr::{Expr, UnaryOp};
use crate::plan::{AggFunc, Aggregate, Column, Node, Plan, SortKey, TableFunc};
use crate::types::{format_timestamp, Value};

/// Renders a plan as text.
pub fn explain(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pipeline {}", plan.name);
    for source in &plan.sources {
        let _ = writeln!(out);
        let mut options = vec![
            format!("topic '{}'", source.topic),
            "format json".to_string(),
        ];
        if let Some(t) = source.event_time {
            options.push(format!("event time {}", source.columns[t].column.name));
            options.push(format!("lateness {}", duration(source.lateness_ms)));
        }
        if let Some(k) = source.key_column {
            options.push(format!("key {}", source.columns[k].column.name));
        }
        let _ = writeln!(out, "source {}: {}", source.name, options.join(", "));
        for c in &source.columns {
            let path = c.path.join(".");
            let shown_path = if path == c.column.name {
                String::new()
            } else {
                format!(" PATH '{path}'")
            };
            let _ = writeln!(out, "  {}{shown_path}", column(&c.column));
        }
    }
    let users = views_using_each_node(plan);
    let _ = writeln!(out);
    for (id, node) in plan.nodes.iter().enumerate() {
        let text = node_text(plan, id);
        let users_text = match users[id].len() {
            0 => "-- unused".to_string(),
            1 => format!("-- view: {}", join(&users[id])),
            _ => format!("-- shared by: {}", join(&users[id])),
        };
        let _ = writeln!(out, "%{id} = {text}   {users_text}");
        let columns: Vec<String> = node.columns.iter().map(column).collect();
        let _ = writeln!(out, "     ({})", columns.join(", "));
    }
    for view in &plan.views {
        let columns = &plan.nodes[view.node].columns;
        let _ = write!(out, "\nview {} = %{}", view.name, view.node);
        if !view.key.is_empty() {
            let key: Vec<&str> = view.key.iter().map(|&k| columns[k].name.as_str()).collect();
            let _ = write!(out, " key [{}]", key.join(", "));
        }
        if !view.order_by.is_empty() {
            let _ = write!(out, " order by [{}]", sort_keys(&view.order_by, columns));
        }
    }
    out.push('\n');
    out
}

fn join(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

/// For each node, the names of the views whose computation includes it.
fn views_using_each_node(plan: &Plan) -> Vec<BTreeSet<&str>> {
    let mut users: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); plan.nodes.len()];
    for view in &plan.views {
        let mut stack = vec![view.node];
        while let Some(n) = stack.pop() {
            if users[n].insert(view.name.as_str()) {
                stack.extend(plan.nodes[n].node.inputs());
            }
        }
    }
    users
}

fn column(c: &Column) -> String {
    format!(
        "{} {}{}",
        c.name,
        c.ty,
        if c.nullable { "" } else { " NOT NULL" }
    )
}

/// Milliseconds as the largest whole unit: `1m`, `10s`, `500ms`.
pub fn duration(ms: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn node_text(plan: &Plan, id: usize) -> String {
    let input_columns = |input: usize| plan.nodes[input].columns.as_slice();
    match &plan.nodes[id].node {
        Node::Source { source } => format!("Source {}", plan.sources[*source].name),
        Node::Map { input, exprs } => {
            let columns = input_columns(*input);
            let outputs = &plan.nodes[id].columns;
            let items: Vec<String> = exprs
                .iter()
                .zip(outputs)
                .map(|(e, out)| {
                    let text = render_expr(e, columns);
                    if text == out.name {
                        text
                    } else {
                        format!("{text} AS {}", out.name)
                    }
                })
                .collect();
            format!("Map %{input} [{}]", items.join(", "))
        }
        Node::Filter { input, predicate } => {
            format!(
                "Filter %{input} {}",
                render_expr(predicate, input_columns(*input))
            )
        }
        Node::FlatMap { input, func } => match func {
            TableFunc::Split { expr, delimiter } => format!(
                "FlatMap %{input} split({}, {}) AS {}",
                render_expr(expr, input_columns(*input)),
                quote(delimiter),
                plan.nodes[id]
                    .columns
                    .last()
                    .map_or("", |c| c.name.as_str())
            ),
        },
        Node::Window {
            input,
            time_column,
            size_ms,
            slide_ms,
        } => {
            let time = column_name(input_columns(*input), *time_column);
            if size_ms == slide_ms {
                format!(
                    "Window %{input} tumble({time}, size {})",
                    duration(*size_ms)
                )
            } else {
                format!(
                    "Window %{input} hop({time}, slide {}, size {})",
                    duration(*slide_ms),
                    duration(*size_ms)
                )
            }
        }
        Node::Arrange { input, key } => {
            format!(
                "Arrange %{input} by [{}]",
                names(input_columns(*input), key)
            )
        }
        Node::Join { left, right, kind } => {
            let key = |arranged: usize| match &plan.nodes[arranged].node {
                Node::Arrange { key, .. } => key
                    .iter()
                    .map(|&k| column_name(&plan.nodes[arranged].columns, k))
                    .collect::<Vec<_>>(),
                _ => vec![],
            };
            let pairs: Vec<String> = key(*left)
                .into_iter()
                .zip(key(*right))
                .map(|(l, r)| format!("{l} = {r}"))
                .collect();
            let kind = match kind {
                crate::plan::JoinKind::Inner => "inner",
                crate::plan::JoinKind::Left => "left",
            };
            format!("Join %{left} %{right} {kind} on [{}]", pairs.join(", "))
        }
        Node::Reduce {
            input,
            key,
            aggregates,
        } => {
            let columns = input_columns(*input);
            let outputs = &plan.nodes[id].columns;
            let aggs: Vec<String> = aggregates
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let name = outputs.get(key.len() + i).map_or("", |c| c.name.as_str());
                    format!("{} AS {name}", render_aggregate(a, columns))
                })
                .collect();
            format!(
                "Reduce %{input} by [{}] [{}]",
                names(columns, key),
                aggs.join(", ")
            )
        }
        Node::Distinct { input } => format!("Distinct %{input}"),
        Node::Union { inputs } => {
            let inputs: Vec<String> = inputs.iter().map(|i| format!("%{i}")).collect();
            format!("Union [{}]", inputs.join(", "))
        }
        Node::TopK {
            input,
            group_key,
            order_by,
            limit,
            offset,
            row_number,
        } => {
            let columns = input_columns(*input);
            let mut text = format!("TopK %{input}");
            if !group_key.is_empty() {
                let _ = write!(text, " partition by [{}]", names(columns, group_key));
            }
            let _ = write!(text, " order by [{}]", sort_keys(order_by, columns));
            if *limit != u64::MAX {
                let _ = write!(text, " limit {limit}");
            }
            if *offset > 0 {
                let _ = write!(text, " offset {offset}");
            }
            if *row_number {
                let rank = plan.nodes[id]
                    .columns
                    .last()
                    .map_or("", |c| c.name.as_str());
                let _ = write!(text, " with rank {rank}");
            }
            text
        }
    }
}

fn names(columns: &[Column], positions: &[usize]) -> String {
    positions
        .iter()
        .map(|&p| column_name(columns, p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column's name, with its position when the name alone is ambiguous.
fn column_name(columns: &[Column], position: usize) -> String {
    match columns.get(position) {
        Some(c) if columns.iter().filter(|d| d.name == c.name).count() == 1 => c.name.clone(),
        Some(c) => format!("{}#{position}", c.name),
        None => format!("#{position}"),
    }
}

fn sort_keys(keys: &[SortKey], columns: &[Column]) -> String {
    keys.iter()
        .map(|k| {
            let mut s = column_name(columns, k.column);
            if k.descending {
                s.push_str(" DESC");
            }
            if k.nulls_first != k.descending {
                s.push_str(if k.nulls_first {
                    " NULLS FIRST"
                } else {
                    " NULLS LAST"
                });
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_aggregate(a: &Aggregate, columns: &[Column]) -> String {
    let name = match a.func {
        AggFunc::CountStar => return "count(*)".to_string(),
        AggFunc::Count => "count",
        AggFunc::Sum => "sum",
        AggFunc::Min => "min",
        AggFunc::Max => "max",
        AggFunc::Avg => "avg",
    };
    let distinct = if a.distinct { "DISTINCT " } else { "" };
    format!("{name}({distinct}{})", render_expr(&a.arg, columns))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An expression as SQL over the names of `columns`.
pub fn render_expr(e: &Expr, columns: &[Column]) -> String {
    let child = |e: &Expr| {
        let text = render_expr(e, columns);
        match e {
            Expr::Binary { .. } | Expr::Like { .. } | Expr::InList { .. } => format!("({text})"),
            _ => text,
        }
    };
    match e {
        Expr::Column(i) => column_name(columns, *i),
        Expr::Literal(v) => match v {
            Value::Text(s) => quote(s),
            Value::Timestamp(ms) => format!("TIMESTAMP '{}'", format_timestamp(*ms)),
            Value::Float(f) => format!("{:?}", f.get()),
            other => other.to_string(),
        },
        Expr::Unary { op, expr } => match op {
            UnaryOp::Not => format!("NOT {}", child(expr)),
            UnaryOp::Neg => format!("-{}", child(expr)),
            UnaryOp::IsNull => format!("{} IS NULL", child(expr)),
            UnaryOp::IsNotNull => format!("{} IS NOT NULL", child(expr)),
        },
        Expr::Binary { op, left, right } => {
            format!("{} {} {}", child(left), op.symbol(), child(right))
        }
        Expr::Case {
            branches,
            otherwise,
        } => {
            let mut s = "CASE".to_string();
            for (c, r) in branches {
                let _ = write!(
                    s,
                    " WHEN {} THEN {}",
                    render_expr(c, columns),
                    render_expr(r, columns)
                );
            }
            if let Some(o) = otherwise {
                let _ = write!(s, " ELSE {}", render_expr(o, columns));
            }
            s + " END"
        }
        Expr::Cast { expr, to } => format!("CAST({} AS {to})", render_expr(expr, columns)),
        Expr::Coalesce(args) => format!("coalesce({})", list(args, columns)),
        Expr::Like {
            expr,
            pattern,
            negated,
        } => format!(
            "{} {}LIKE {}",
            child(expr),
            if *negated { "NOT " } else { "" },
            child(pattern)
        ),
        Expr::InList {
            expr,
            list: items,
            negated,
        } => format!(
            "{} {}IN ({})",
            child(expr),
            if *negated { "NOT " } else { "" },
            list(items, columns)
        ),
        Expr::Call { func, args } => format!("{}({})", func.name(), list(args, columns)),
    }
}

fn list(items: &[Expr], columns: &[Column]) -> String {
    items
        .iter()
        .map(|e| render_expr(e, columns))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::BinaryOp;
    use crate::types::ScalarType;

    #[test]
    fn durations_use_the_largest_whole_unit() {
        assert_eq!(duration(60_000), "1m");
        assert_eq!(duration(10_000), "10s");
        assert_eq!(duration(1_500), "1500ms");
        assert_eq!(duration(0), "0ms");
    }

    #[test]
    fn expressions_render_with_column_names() {
        let columns = vec![
            Column {
                name: "page".into(),
                ty: ScalarType::Text,
                nullable: true,
            },
            Column {
                name: "n".into(),
                ty: ScalarType::Int,
                nullable: false,
            },
        ];
        let e = Expr::Binary {
            op: BinaryOp::And,
            left: Box::new(Expr::Binary {
                op: BinaryOp::Eq,
                left: Box::new(Expr::Column(0)),
                right: Box::new(Expr::Literal(Value::text("it's"))),
            }),
            right: Box::new(Expr::Binary {
                op: BinaryOp::Gt,
                left: Box::new(Expr::Column(1)),
                right: Box::new(Expr::Literal(Value::float(1.0))),
            }),
        };
        assert_eq!(render_expr(&e, &columns), "(page = 'it''s') AND (n > 1.0)");
    }
}
