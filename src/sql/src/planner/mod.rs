//! Name and type resolution: pipeline statements to a checked [`Plan`].
//!
//! The [`Planner`] walks the statements of a file in order, keeping a catalog of
//! the sources and views declared so far, and builds the node DAG through
//! [`Planner::add`], which hash-conses: a node equal to an existing one (same
//! operator, same inputs, same output columns) is not added again, so views that
//! need the same sub-computation or the same arrangement share it.
//!
//! Submodules, one concern each: [`scope`] (which columns a query sees),
//! [`expr`] (SQL expressions to typed [`crate::expr::Expr`]s), [`functions`]
//! (scalar functions and aggregates), [`select`] (a `SELECT` block), [`from`]
//! (`FROM` items: tables, subqueries, joins, `UNNEST`), [`window`] (`TUMBLE` and
//! `HOP`), [`topk`] (`ORDER BY ... LIMIT` and `ROW_NUMBER()`), [`source`]
//! (`CREATE SOURCE`).

mod expr;
mod from;
mod functions;
mod scope;
mod select;
mod source;
mod topk;
mod window;

use std::collections::BTreeMap;
use std::path::Path;

use sqlparser::ast::{Ident, Spanned};

use crate::diagnostics::{suggestion_hint, Diagnostic, Diagnostics, ErrorKind, PlanError};
use crate::diagnostics::{PlanResult, Span};
use crate::parse::{parse_pipeline, PipelineStatement};
use crate::plan::{Column, Node, NodeId, Plan, PlanNode, ViewDef};

pub(crate) use scope::{ident_name, Relation, Scope};

/// Compiles a pipeline file; the pipeline is named after the file stem.
pub fn compile_file(path: impl AsRef<Path>) -> Result<Plan, Diagnostics> {
    let path = path.as_ref();
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Diagnostics {
        errors: vec![Diagnostic::new(
            PlanError::new(ErrorKind::Io(e.to_string()), Span::empty()),
            &display,
            "",
        )],
    })?;
    compile_str(&display, &text)
}

/// Compiles pipeline text; `file_name` is used in error messages and its stem
/// names the pipeline.
pub fn compile_str(file_name: &str, text: &str) -> Result<Plan, Diagnostics> {
    let name = Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file_name.to_string());
    compile_statements(&name, text).map_err(|error| Diagnostics {
        errors: vec![Diagnostic::new(error, file_name, text)],
    })
}

fn compile_statements(name: &str, text: &str) -> PlanResult<Plan> {
    let statements = parse_pipeline(text)?;
    let mut planner = Planner::new(name);
    for statement in &statements {
        match statement {
            PipelineStatement::Source(decl) => planner.declare_source(decl)?,
            PipelineStatement::View { name, query } => {
                planner.check_new_name(name)?;
                let planned = planner.plan_query(query)?;
                planner.check_view_columns(&planned.relation, query.span())?;
                let view_name = ident_name(name);
                if !planned.key.is_empty() {
                    planner
                        .view_keys
                        .insert(planned.relation.node, planned.key.clone());
                }
                planner.plan.views.push(ViewDef {
                    name: view_name.clone(),
                    node: planned.relation.node,
                    key: planned.key,
                    order_by: planned.order_by,
                });
                planner
                    .catalog
                    .insert(view_name, CatalogEntry::View(planned.relation.node));
            }
        }
    }
    Ok(planner.plan)
}

/// What a name in `FROM` refers to.
#[derive(Clone, Copy, Debug)]
enum CatalogEntry {
    /// A source, read through its `Source` node.
    Source(NodeId),
    /// A view, computed by this node.
    View(NodeId),
}

/// A planned query: its relation, the view key and the presentation order.
pub(crate) struct PlannedQuery {
    /// The node and the columns it exposes.
    pub relation: Relation,
    /// Output positions of the `GROUP BY` columns, when all are selected.
    pub key: Vec<usize>,
    /// `ORDER BY` of the outermost query.
    pub order_by: Vec<crate::plan::SortKey>,
}

/// Builds one [`Plan`] from the statements of one file.
pub(crate) struct Planner {
    plan: Plan,
    /// Sources and views by (normalised) name, in the order declared.
    catalog: BTreeMap<String, CatalogEntry>,
    /// The key of each view's node, so a view selecting from a keyed view keeps it.
    view_keys: BTreeMap<NodeId, Vec<usize>>,
}

impl Planner {
    fn new(name: &str) -> Self {
        Planner {
            plan: Plan {
                name: name.to_string(),
                sources: Vec::new(),
                nodes: Vec::new(),
                views: Vec::new(),
            },
            catalog: BTreeMap::new(),
            view_keys: BTreeMap::new(),
        }
    }

    /// Adds a node, or returns the existing node with the same operator and columns.
    pub(crate) fn add(&mut self, node: Node, columns: Vec<Column>) -> NodeId {
        if let Some(existing) = self
            .plan
            .nodes
            .iter()
            .position(|n| n.node == node && n.columns == columns)
        {
            return existing;
        }
        debug_assert!(node.inputs().iter().all(|&i| i < self.plan.nodes.len()));
        self.plan.nodes.push(PlanNode { node, columns });
        self.plan.nodes.len() - 1
    }

    /// The output columns of a node.
    pub(crate) fn columns(&self, node: NodeId) -> &[Column] {
        &self.plan.nodes[node].columns
    }

    /// The source or view a name in `FROM` refers to, with `qualifier` on its columns.
    pub(crate) fn lookup_relation(&self, name: &Ident, qualifier: &str) -> PlanResult<Relation> {
        let key = ident_name(name);
        let node = match self.catalog.get(&key) {
            Some(CatalogEntry::Source(node) | CatalogEntry::View(node)) => *node,
            None => {
                return Err(
                    PlanError::new(ErrorKind::UnknownRelation(key.clone()), name.span).with_hint(
                        suggestion_hint(
                            &key,
                            "sources and views declared so far",
                            self.catalog.keys().map(String::as_str),
                        ),
                    ),
                )
            }
        };
        Ok(Relation {
            node,
            scope: Scope::from_columns(Some(qualifier), self.columns(node)),
        })
    }

    fn check_new_name(&self, name: &Ident) -> PlanResult<()> {
        let key = ident_name(name);
        if self.catalog.contains_key(&key) {
            return Err(PlanError::new(ErrorKind::Duplicate(key), name.span)
                .with_hint("every source and view needs its own name"));
        }
        Ok(())
    }

    fn check_view_columns(&self, relation: &Relation, span: Span) -> PlanResult<()> {
        let columns = self.columns(relation.node);
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|d| d.name == c.name) {
                return Err(PlanError::new(
                    ErrorKind::Duplicate(format!("column {}", c.name)),
                    span,
                )
                .with_hint("name each output column of a view differently with `AS`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::compile_str;
    use crate::plan::{Node, Plan};
    use crate::types::ScalarType;

    const SOURCES: &str = "CREATE SOURCE clicks (ts TIMESTAMP NOT NULL, user TEXT, page TEXT)
          WITH (event_time = 'ts');
        CREATE SOURCE users (user TEXT NOT NULL, country TEXT);";

    fn compile(views: &str) -> Plan {
        compile_str("t.sql", &format!("{SOURCES}\n{views}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn count(plan: &Plan, matches: impl Fn(&Node) -> bool) -> usize {
        plan.nodes.iter().filter(|n| matches(&n.node)).count()
    }

    #[test]
    fn views_share_sub_computations_and_arrangements() {
        let plan = compile(
            "CREATE VIEW a AS SELECT c.page, u.country FROM clicks c JOIN users u ON c.user = u.user;
             CREATE VIEW b AS SELECT u.country, COUNT(*) AS n
               FROM clicks AS c JOIN users AS u ON c.user = u.user GROUP BY u.country;",
        );
        assert_eq!(count(&plan, |n| matches!(n, Node::Arrange { .. })), 2);
        assert_eq!(count(&plan, |n| matches!(n, Node::Join { .. })), 1);
        assert_eq!(count(&plan, |n| matches!(n, Node::Source { .. })), 2);
    }

    #[test]
    fn output_schemas_carry_types_and_nullability() {
        let plan = compile(
            "CREATE VIEW v AS SELECT page, COUNT(*) AS n, MAX(ts) AS last, AVG(1) AS one
               FROM clicks GROUP BY page;",
        );
        let view = plan.view("v").expect("the view");
        let columns = plan.view_columns(view);
        let shape: Vec<(&str, ScalarType, bool)> = columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty, c.nullable))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("page", ScalarType::Text, true),
                ("n", ScalarType::Int, false),
                ("last", ScalarType::Timestamp, false),
                ("one", ScalarType::Float, false),
            ]
        );
        assert_eq!(view.key, vec![0]);
    }

    #[test]
    fn group_by_expressions_are_computed_before_the_reduce() {
        let plan = compile(
            "CREATE VIEW v AS SELECT lower(page) AS p, COUNT(*) FROM clicks GROUP BY lower(page);",
        );
        let reduce = plan
            .nodes
            .iter()
            .find_map(|n| match &n.node {
                Node::Reduce { input, key, .. } => Some((*input, key.clone())),
                _ => None,
            })
            .expect("a reduce");
        assert!(matches!(plan.nodes[reduce.0].node, Node::Map { .. }));
        assert_eq!(reduce.1, vec![3]);
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan = compile("CREATE VIEW v AS SELECT page FROM clicks WHERE user LIKE 'u%';");
        let json = serde_json::to_string(&plan).expect("serializable");
        let back: Plan = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(back, plan);
    }
}
