//! Compile errors of pipeline files, rendered the way rustc and Materialize do:
//! a headline, the `file:line:col` pointer, the offending line with a caret under
//! the span, and a hint saying what to do instead.
//!
//! The planner reports errors as a [`PlanError`] (what went wrong, where in the
//! text, and a hint); [`Diagnostic`] pairs one with the file it came from so that
//! it can render itself.

use std::fmt;

pub use sqlparser::tokenizer::{Location, Span};

/// What went wrong. The `Display` is the headline of the rendered error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The text is not valid SQL of the pipeline language.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A column name that resolves to nothing in scope.
    #[error("unknown column `{0}`")]
    UnknownColumn(String),
    /// A column name that resolves to several columns in scope.
    #[error("ambiguous column `{0}`")]
    AmbiguousColumn(String),
    /// A name in `FROM` that is neither a source nor a view declared earlier.
    #[error("unknown source or view `{0}`")]
    UnknownRelation(String),
    /// A source or view declared twice, or a duplicate column name.
    #[error("`{0}` is already defined")]
    Duplicate(String),
    /// Operands or arguments of the wrong types.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// A column used outside `GROUP BY` and aggregates in an aggregating query.
    #[error("column `{0}` must appear in GROUP BY or be used in an aggregate")]
    NotGrouped(String),
    /// Valid SQL outside the supported surface.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A bad `CREATE SOURCE` declaration (options, types, paths).
    #[error("invalid source: {0}")]
    InvalidSource(String),
    /// A semantically invalid construct that is neither a type nor a name error.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(String),
}

/// An error found while compiling, located in the pipeline text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where (sqlparser lines and columns, 1-based; an empty span means unknown).
    pub span: Span,
    /// What to do about it.
    pub hint: Option<String>,
}

impl PlanError {
    /// An error at a span, without a hint.
    pub fn new(kind: ErrorKind, span: Span) -> Self {
        PlanError {
            kind,
            span,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Uses `fallback` when this error's own span is unknown (some sqlparser nodes
    /// have no span).
    pub fn or_span(mut self, fallback: Span) -> Self {
        if self.span == Span::empty() {
            self.span = fallback;
        }
        self
    }
}

/// Shorthand for results of the planner.
pub type PlanResult<T> = Result<T, PlanError>;

/// One error with the file it is in, ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The error.
    pub error: PlanError,
    /// The file name as given to the compiler.
    pub file: String,
    /// The text of the line the error starts on (empty when unknown).
    pub line_text: String,
}

impl Diagnostic {
    /// Locates `error` in `text`, the contents of `file`.
    pub fn new(error: PlanError, file: &str, text: &str) -> Self {
        let line = error.span.start.line as usize;
        let line_text = if line == 0 {
            String::new()
        } else {
            text.lines().nth(line - 1).unwrap_or_default().to_string()
        };
        Diagnostic {
            error,
            file: file.to_string(),
            line_text,
        }
    }

    /// The 1-based line and column of the error (0 when unknown).
    pub fn location(&self) -> Location {
        self.error.span.start
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.error.kind)?;
        let Span { start, end } = self.error.span;
        if start.line == 0 {
            writeln!(f, " --> {}", self.file)?;
        } else {
            let number = start.line.to_string();
            let pad = " ".repeat(number.len());
            writeln!(f, "{pad}--> {}:{}:{}", self.file, start.line, start.column)?;
            writeln!(f, "{pad} |")?;
            writeln!(f, "{number} | {}", self.line_text)?;
            let line_chars = self.line_text.chars().count() as u64;
            let first = start.column.max(1);
            // The caret covers the span on its first line (at least one character).
            let last = if end.line == start.line && end.column > first {
                end.column
            } else if end.line > start.line {
                line_chars + 1
            } else {
                first + 1
            };
            let width = (last - first).max(1) as usize;
            let indent: String = self
                .line_text
                .chars()
                .take(first as usize - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {indent}{}", "^".repeat(width))?;
            if let Some(hint) = &self.error.hint {
                writeln!(f, "{pad} = hint: {hint}")?;
            }
            return Ok(());
        }
        if let Some(hint) = &self.error.hint {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// The errors of one compilation (the compiler stops at the first error, so there
/// is one, but callers should not rely on that).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics {
    /// The errors, in file order.
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a
/// plausible typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&name, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(name.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A hint naming the nearest candidate (if any) and listing all of them.
pub fn suggestion_hint<'a>(
    name: &str,
    what: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    let all: Vec<&str> = candidates.clone().into_iter().collect();
    let listed = if all.is_empty() {
        "(none)".to_string()
    } else {
        all.join(", ")
    };
    match nearest(name, candidates) {
        Some(best) => format!("did you mean `{best}`? {what}: {listed}"),
        None => format!("{what}: {listed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(line: u64, from: u64, to: u64) -> Span {
        Span::new(Location::new(line, from), Location::new(line, to))
    }

    #[test]
    fn renders_caret_under_the_span_with_hint() {
        let text = "CREATE VIEW v AS\n  SELECT pgae FROM clicks\n";
        let error = PlanError::new(ErrorKind::UnknownColumn("pgae".into()), span(2, 10, 14))
            .with_hint("did you mean `page`?");
        let rendered = Diagnostic::new(error, "x.sql", text).to_string();
        assert_eq!(
            rendered,
            "error: unknown column `pgae`\n --> x.sql:2:10\n  |\n2 |   SELECT pgae FROM clicks\n  |          ^^^^\n  = hint: did you mean `page`?\n"
        );
    }

    #[test]
    fn nearest_name_by_edit_distance() {
        assert_eq!(nearest("pgae", ["ts", "page", "user"]), Some("page"));
        assert_eq!(nearest("zzzzzz", ["ts", "page"]), None);
        assert_eq!(nearest("amout", ["amount", "action"]), Some("amount"));
    }
}
