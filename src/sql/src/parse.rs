//! Pipeline text to statements: `CREATE SOURCE` declarations and `CREATE VIEW`
//! queries, with source locations.
//!
//! `CREATE SOURCE` is not SQL that sqlparser knows, so it is parsed here by hand
//! from sqlparser's own token stream (the same [`Parser`] that then parses each
//! `CREATE VIEW`), which keeps every span exact without rewriting the text:
//!
//! ```text
//! CREATE SOURCE name ( column type [NOT NULL | NULL] [PATH 'a.b'] , ... )
//!     [WITH ( option = 'value' , ... )] ;
//! ```

use sqlparser::ast::{DataType, Ident, Query, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan};

use crate::diagnostics::{ErrorKind, PlanError, PlanResult};
use crate::types::ScalarType;

/// A statement of a pipeline file.
#[derive(Clone, Debug)]
pub enum PipelineStatement {
    /// `CREATE SOURCE`.
    Source(SourceDecl),
    /// `CREATE VIEW name AS query`.
    View {
        /// The view name.
        name: Ident,
        /// Its query.
        query: Box<Query>,
    },
}

/// A `CREATE SOURCE` declaration as written.
#[derive(Clone, Debug)]
pub struct SourceDecl {
    /// Source name.
    pub name: Ident,
    /// Declared columns.
    pub columns: Vec<ColumnDecl>,
    /// `WITH (key = 'value')` options, in order.
    pub options: Vec<SourceOption>,
}

/// One column of a `CREATE SOURCE`.
#[derive(Clone, Debug)]
pub struct ColumnDecl {
    /// Column name.
    pub name: Ident,
    /// Its type.
    pub ty: ScalarType,
    /// `NOT NULL`.
    pub not_null: bool,
    /// `PATH 'a.b'`: where in the JSON payload the value is found.
    pub path: Option<(String, Span)>,
}

/// One `WITH` option.
#[derive(Clone, Debug)]
pub struct SourceOption {
    /// Option name (lower case).
    pub name: Ident,
    /// Its value, as text.
    pub value: String,
    /// Where the value is written.
    pub value_span: Span,
}

/// Parses a whole pipeline file.
pub fn parse_pipeline(text: &str) -> PlanResult<Vec<PipelineStatement>> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(syntax_error)?;
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let next = parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        let is_source = matches!(&next.token, Token::Word(w) if w.keyword == Keyword::CREATE)
            && matches!(&parser.peek_nth_token(1).token,
                Token::Word(w) if w.value.eq_ignore_ascii_case("source"));
        let statement = if is_source {
            PipelineStatement::Source(parse_source(&mut parser)?)
        } else {
            match parser.parse_statement().map_err(syntax_error)? {
                Statement::CreateView(view) => {
                    let name = single_name(&view.name.0, next.span)?;
                    if !view.columns.is_empty() {
                        return Err(unsupported(
                            "a column list on CREATE VIEW",
                            next.span,
                            "name the columns with AS aliases in the SELECT list",
                        ));
                    }
                    PipelineStatement::View {
                        name,
                        query: view.query,
                    }
                }
                _ => {
                    return Err(unsupported(
                        "this statement",
                        next.span,
                        "a pipeline file holds only CREATE SOURCE and CREATE VIEW statements",
                    ))
                }
            }
        };
        statements.push(statement);
        let after = parser.peek_token();
        if !matches!(after.token, Token::SemiColon | Token::EOF) {
            return Err(PlanError::new(
                ErrorKind::Syntax(format!("expected `;` after the statement, found {}", after)),
                after.span,
            )
            .with_hint("a comma may be missing before this; statements end with `;`"));
        }
    }
    Ok(statements)
}

fn unsupported(what: &str, span: Span, hint: &str) -> PlanError {
    PlanError::new(ErrorKind::Unsupported(what.to_string()), span).with_hint(hint)
}

fn single_name(parts: &[sqlparser::ast::ObjectNamePart], span: Span) -> PlanResult<Ident> {
    match parts {
        [sqlparser::ast::ObjectNamePart::Identifier(ident)] => Ok(ident.clone()),
        _ => Err(unsupported(
            "qualified names",
            span,
            "sources and views have plain names, e.g. `clicks`",
        )),
    }
}

/// Turns a sqlparser error ("... at Line: 3, Column: 7") into a located error.
pub fn syntax_error(error: ParserError) -> PlanError {
    let message = match error {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "expression nested too deeply".to_string(),
    };
    let (message, location) = match message.rfind(" at Line: ") {
        Some(at) => {
            let rest = &message[at + " at Line: ".len()..];
            let mut numbers = rest
                .split(", Column: ")
                .map(|n| n.trim().parse::<u64>().ok());
            match (numbers.next().flatten(), numbers.next().flatten()) {
                (Some(line), Some(column)) => {
                    (message[..at].to_string(), Location::new(line, column))
                }
                _ => (message.clone(), Location::new(0, 0)),
            }
        }
        None => (message, Location::new(0, 0)),
    };
    PlanError::new(ErrorKind::Syntax(message), Span::new(location, location)).with_hint(
        "a pipeline file holds CREATE SOURCE and CREATE VIEW statements separated by `;`",
    )
}

fn parse_source(parser: &mut Parser) -> PlanResult<SourceDecl> {
    parser.next_token(); // CREATE
    parser.next_token(); // SOURCE
    let name = parser.parse_identifier().map_err(syntax_error)?;
    parser.expect_token(&Token::LParen).map_err(syntax_error)?;
    let mut columns = Vec::new();
    loop {
        let column_name = parser.parse_identifier().map_err(syntax_error)?;
        let type_token = parser.peek_token();
        let data_type = parser.parse_data_type().map_err(syntax_error)?;
        let ty = scalar_type(&data_type).ok_or_else(|| {
            PlanError::new(
                ErrorKind::InvalidSource(format!("unsupported column type {data_type}")),
                type_token.span,
            )
            .with_hint(
                "column types: BOOLEAN, BIGINT (INT), DOUBLE (FLOAT), TEXT (VARCHAR), TIMESTAMP",
            )
        })?;
        let mut column = ColumnDecl {
            name: column_name,
            ty,
            not_null: false,
            path: None,
        };
        loop {
            if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                column.not_null = true;
            } else if parser.parse_keyword(Keyword::NULL) {
                column.not_null = false;
            } else if matches!(&parser.peek_token().token,
                Token::Word(w) if w.value.eq_ignore_ascii_case("path"))
            {
                parser.next_token();
                let (value, span) = string_literal(parser)?;
                column.path = Some((value, span));
            } else {
                break;
            }
        }
        columns.push(column);
        if parser.consume_token(&Token::Comma) {
            continue;
        }
        parser.expect_token(&Token::RParen).map_err(syntax_error)?;
        break;
    }
    let mut options = Vec::new();
    if parser.parse_keyword(Keyword::WITH) {
        parser.expect_token(&Token::LParen).map_err(syntax_error)?;
        loop {
            let mut option = parser.parse_identifier().map_err(syntax_error)?;
            option.value = option.value.to_lowercase();
            parser.expect_token(&Token::Eq).map_err(syntax_error)?;
            let (value, value_span) = option_value(parser)?;
            options.push(SourceOption {
                name: option,
                value,
                value_span,
            });
            if parser.consume_token(&Token::Comma) {
                continue;
            }
            parser.expect_token(&Token::RParen).map_err(syntax_error)?;
            break;
        }
    }
    Ok(SourceDecl {
        name,
        columns,
        options,
    })
}

fn string_literal(parser: &mut Parser) -> PlanResult<(String, Span)> {
    let TokenWithSpan { token, span } = parser.next_token();
    match token {
        Token::SingleQuotedString(s) => Ok((s, span)),
        other => Err(PlanError::new(
            ErrorKind::Syntax(format!("expected a quoted string, found {other}")),
            span,
        )),
    }
}

fn option_value(parser: &mut Parser) -> PlanResult<(String, Span)> {
    let TokenWithSpan { token, span } = parser.next_token();
    match token {
        Token::SingleQuotedString(s) | Token::Number(s, _) => Ok((s, span)),
        Token::Word(w) => Ok((w.value, span)),
        other => Err(PlanError::new(
            ErrorKind::Syntax(format!("expected an option value, found {other}")),
            span,
        )
        .with_hint("write options as name = 'value'")),
    }
}

/// The scalar type a SQL type name denotes, if it is one of the supported ones.
pub fn scalar_type(data_type: &DataType) -> Option<ScalarType> {
    Some(match data_type {
        DataType::Boolean | DataType::Bool => ScalarType::Bool,
        DataType::BigInt(_)
        | DataType::Int(_)
        | DataType::Integer(_)
        | DataType::Int64
        | DataType::Int8(_)
        | DataType::SmallInt(_)
        | DataType::Int4(_)
        | DataType::Int32 => ScalarType::Int,
        DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Float(_)
        | DataType::Float64
        | DataType::Float8
        | DataType::Real
        | DataType::Float4
        | DataType::Float32 => ScalarType::Float,
        DataType::Text
        | DataType::Varchar(_)
        | DataType::String(_)
        | DataType::CharacterVarying(_) => ScalarType::Text,
        DataType::Timestamp(_, _) => ScalarType::Timestamp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources_and_views() {
        let statements = parse_pipeline(
            "CREATE SOURCE clicks (ts TIMESTAMP NOT NULL, city TEXT PATH 'geo.city')\n\
             WITH (topic = 'c', lateness = '5s');\n\
             CREATE VIEW v AS SELECT city FROM clicks;",
        )
        .unwrap();
        assert_eq!(statements.len(), 2);
        let PipelineStatement::Source(source) = &statements[0] else {
            panic!("a source first")
        };
        assert_eq!(source.columns.len(), 2);
        assert!(source.columns[0].not_null);
        assert_eq!(source.columns[1].path.as_ref().unwrap().0, "geo.city");
        assert_eq!(source.options[1].value, "5s");
        assert!(
            matches!(&statements[1], PipelineStatement::View { name, .. } if name.value == "v")
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let error = parse_pipeline("CREATE VIEW v AS\nSELECT (a FROM t;").unwrap_err();
        assert!(matches!(error.kind, ErrorKind::Syntax(_)));
        assert_eq!(error.span.start.line, 2);
    }
}
