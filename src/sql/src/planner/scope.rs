//! Which columns a query sees, and how names resolve to them.
//!
//! A [`Scope`] lists the columns of the relation a clause is evaluated over, each
//! with the table name or alias that qualifies it. Unquoted identifiers are
//! case-insensitive (folded to lower case), quoted ones are taken as written.

use sqlparser::ast::Ident;

use crate::diagnostics::{suggestion_hint, ErrorKind, PlanError, PlanResult};
use crate::plan::{Column, NodeId};
use crate::types::ScalarType;

/// The normalised name of an identifier: lower case unless quoted.
pub(crate) fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// One column visible in a scope.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScopeColumn {
    /// The table name or alias that qualifies it (`c` in `c.page`).
    pub qualifier: Option<String>,
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ScalarType,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// The columns of a relation as seen by SQL, in the relation's column order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scope {
    /// The columns.
    pub columns: Vec<ScopeColumn>,
}

/// A planned relation: the node computing it and how its columns are named.
#[derive(Clone, Debug)]
pub(crate) struct Relation {
    /// The node.
    pub node: NodeId,
    /// Its columns, one per node output column.
    pub scope: Scope,
}

impl Scope {
    /// The columns of a node, all under one qualifier.
    pub fn from_columns(qualifier: Option<&str>, columns: &[Column]) -> Self {
        Scope {
            columns: columns
                .iter()
                .map(|c| ScopeColumn {
                    qualifier: qualifier.map(str::to_string),
                    name: c.name.clone(),
                    ty: c.ty,
                    nullable: c.nullable,
                })
                .collect(),
        }
    }

    /// This scope's columns followed by `other`'s (a join's output).
    pub fn concat(&self, other: &Scope) -> Scope {
        Scope {
            columns: self
                .columns
                .iter()
                .chain(other.columns.iter())
                .cloned()
                .collect(),
        }
    }

    /// The same columns, all nullable (the right side of a left join).
    pub fn nullable(&self) -> Scope {
        let mut scope = self.clone();
        for c in &mut scope.columns {
            c.nullable = true;
        }
        scope
    }

    /// The plan columns of this scope.
    pub fn plan_columns(&self) -> Vec<Column> {
        self.columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty,
                nullable: c.nullable,
            })
            .collect()
    }

    /// Resolves `name` or `qualifier.name` to a column position.
    pub fn resolve(&self, qualifier: Option<&Ident>, name: &Ident) -> PlanResult<usize> {
        let wanted = ident_name(name);
        let wanted_qualifier = qualifier.map(ident_name);
        let span = match qualifier {
            Some(q) => q.span.union(&name.span),
            None => name.span,
        };
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.name == wanted
                    && match &wanted_qualifier {
                        Some(q) => c.qualifier.as_deref() == Some(q.as_str()),
                        None => true,
                    }
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [single] => Ok(*single),
            [] => {
                let shown = match &wanted_qualifier {
                    Some(q) => format!("{q}.{wanted}"),
                    None => wanted.clone(),
                };
                if let Some(q) = &wanted_qualifier {
                    if !self
                        .columns
                        .iter()
                        .any(|c| c.qualifier.as_deref() == Some(q.as_str()))
                    {
                        let mut qualifiers: Vec<&str> = self
                            .columns
                            .iter()
                            .filter_map(|c| c.qualifier.as_deref())
                            .collect();
                        qualifiers.dedup();
                        return Err(PlanError::new(
                            ErrorKind::UnknownRelation(q.clone()),
                            qualifier.map(|q| q.span).unwrap_or(span),
                        )
                        .with_hint(suggestion_hint(
                            q,
                            "tables in scope",
                            qualifiers,
                        )));
                    }
                }
                Err(PlanError::new(ErrorKind::UnknownColumn(shown), span)
                    .with_hint(suggestion_hint(&wanted, "columns in scope", self.names())))
            }
            _ => Err(
                PlanError::new(ErrorKind::AmbiguousColumn(wanted.clone()), span).with_hint(
                    format!(
                        "qualify it: {}",
                        matches
                            .iter()
                            .map(|&i| match &self.columns[i].qualifier {
                                Some(q) => format!("{q}.{wanted}"),
                                None => wanted.clone(),
                            })
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ),
            ),
        }
    }

    /// Column names, for hints.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}
