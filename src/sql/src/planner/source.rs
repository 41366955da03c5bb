//! `CREATE SOURCE`: a declaration to a checked [`SourceDef`] and its `Source` node.
//!
//! Options (`WITH (...)`): `topic` (default: the source name), `format` (`json`,
//! the default), `event_time` (a `TIMESTAMP` column), `lateness` (a duration such
//! as `'5s'`, `'500ms'`, `'1m'`; default 0; only with `event_time`) and `key` (a
//! column). A column's JSON path is its name, or `PATH 'a.b'` for nested fields.

use sqlparser::ast::Ident;

use super::{ident_name, CatalogEntry, Planner};
use crate::diagnostics::{suggestion_hint, ErrorKind, PlanError, PlanResult};
use crate::parse::SourceDecl;
use crate::plan::{Column, Format, Node, SourceColumn, SourceDef};
use crate::types::ScalarType;

const OPTIONS: &str = "topic, format, event_time, lateness, key";

impl Planner {
    /// Checks a `CREATE SOURCE` and adds the source and its node to the catalog.
    pub(crate) fn declare_source(&mut self, decl: &SourceDecl) -> PlanResult<()> {
        self.check_new_name(&decl.name)?;
        let name = ident_name(&decl.name);
        let mut columns: Vec<SourceColumn> = Vec::new();
        for c in &decl.columns {
            let column_name = ident_name(&c.name);
            if columns.iter().any(|s| s.column.name == column_name) {
                return Err(
                    PlanError::new(ErrorKind::Duplicate(column_name), c.name.span)
                        .with_hint("each column of a source needs its own name"),
                );
            }
            let path: Vec<String> = match &c.path {
                Some((path, span)) => {
                    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
                    if parts.iter().any(String::is_empty) {
                        return Err(PlanError::new(
                            ErrorKind::InvalidSource(format!("invalid JSON path '{path}'")),
                            *span,
                        )
                        .with_hint("a path is object keys separated by dots, e.g. 'geo.city'"));
                    }
                    parts
                }
                None => vec![c.name.value.clone()],
            };
            // The decoder walks the payload once by path; a path cannot be both a
            // value and an object holding other columns.
            if let Some(other) = columns
                .iter()
                .find(|s| s.path.starts_with(&path) || path.starts_with(&s.path))
            {
                return Err(PlanError::new(
                    ErrorKind::InvalidSource(format!(
                        "the JSON path of `{column_name}` overlaps the path of `{}`",
                        other.column.name
                    )),
                    c.name.span,
                )
                .with_hint(
                    "two columns cannot read the same field, or a field and one inside it",
                ));
            }
            columns.push(SourceColumn {
                column: Column {
                    name: column_name,
                    ty: c.ty,
                    nullable: !c.not_null,
                },
                path,
            });
        }
        let mut def = SourceDef {
            name: name.clone(),
            topic: name.clone(),
            format: Format::Json,
            columns,
            event_time: None,
            lateness_ms: 0,
            key_column: None,
        };
        let mut lateness = None;
        for option in &decl.options {
            let bad_value = |what: &str, hint: &str| {
                PlanError::new(
                    ErrorKind::InvalidSource(format!(
                        "invalid {what} '{}' for option `{}`",
                        option.value, option.name.value
                    )),
                    option.value_span,
                )
                .with_hint(hint.to_string())
            };
            match option.name.value.as_str() {
                "topic" => {
                    if option.value.is_empty() {
                        return Err(bad_value("topic", "a topic name is not empty"));
                    }
                    def.topic = option.value.clone();
                }
                "format" => {
                    if !option.value.eq_ignore_ascii_case("json") {
                        return Err(bad_value("format", "the supported format is 'json'"));
                    }
                }
                "event_time" => {
                    let index = self.source_column(&def, &option.value, option)?;
                    if def.columns[index].column.ty != ScalarType::Timestamp {
                        return Err(PlanError::new(
                            ErrorKind::TypeMismatch(format!(
                                "event_time column `{}` is {}, expected TIMESTAMP",
                                option.value, def.columns[index].column.ty
                            )),
                            option.value_span,
                        )
                        .with_hint("declare the column as TIMESTAMP (epoch ms or RFC 3339)"));
                    }
                    def.event_time = Some(index);
                }
                "lateness" => {
                    lateness = Some(option);
                    def.lateness_ms = parse_duration(&option.value).ok_or_else(|| {
                        bad_value(
                            "duration",
                            "write a duration like '5s', '500ms', '1m' or '1h'",
                        )
                    })?;
                }
                "key" => def.key_column = Some(self.source_column(&def, &option.value, option)?),
                other => {
                    return Err(PlanError::new(
                        ErrorKind::InvalidSource(format!("unknown option `{other}`")),
                        option.name.span,
                    )
                    .with_hint(suggestion_hint(
                        other,
                        "options",
                        OPTIONS.split(", "),
                    )))
                }
            }
        }
        if let (Some(option), None) = (lateness, def.event_time) {
            return Err(PlanError::new(
                ErrorKind::InvalidSource("`lateness` needs an `event_time` column".into()),
                option.name.span,
            )
            .with_hint("add event_time = '<a TIMESTAMP column>' to the options"));
        }
        let columns: Vec<Column> = def.columns.iter().map(|c| c.column.clone()).collect();
        let id = self.plan.sources.len();
        self.plan.sources.push(def);
        let node = self.add(Node::Source { source: id }, columns);
        self.catalog.insert(name, CatalogEntry::Source(node));
        Ok(())
    }

    fn source_column(
        &self,
        def: &SourceDef,
        name: &str,
        option: &crate::parse::SourceOption,
    ) -> PlanResult<usize> {
        let wanted = ident_name(&Ident::new(name));
        def.columns
            .iter()
            .position(|c| c.column.name == wanted)
            .ok_or_else(|| {
                PlanError::new(
                    ErrorKind::UnknownColumn(name.to_string()),
                    option.value_span,
                )
                .with_hint(suggestion_hint(
                    name,
                    "columns of the source",
                    def.columns.iter().map(|c| c.column.name.as_str()),
                ))
            })
    }
}

/// Parses a duration such as `5s`, `500ms`, `1m`, `2h`, `1d` or a bare number of
/// milliseconds into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(5_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1m"), Some(60_000));
        assert_eq!(parse_duration("2 hours"), Some(7_200_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
