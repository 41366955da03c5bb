//! The JSON source format: record payloads to typed rows.
//!
//! A [`JsonDecoder`] is built once per source from its columns' JSON paths and
//! walks each payload in one pass with serde_json, without building a DOM: object
//! keys are matched against the schema in place, values are converted straight to
//! [`Value`]s, and fields the source does not declare are skipped. Every failure is
//! a [`DecodeError`] naming the column; the dataflow sends those records to the
//! dead-letter topic.
//!
//! Payloads that are flat objects of plain scalars (the common case) take a fast
//! path ([`flat`]) that scans the bytes directly; anything else, and every
//! failure, goes through serde_json, which also words the errors.
//!
//! Short strings of a column whose values repeat go through a small bounded cache,
//! so that a value repeated across records (a page, an action) is one shared
//! allocation ([`strings`]).

mod flat;
mod strings;

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use self::strings::StringCache;
use crate::plan::SourceDef;
use crate::types::{parse_timestamp, Row, ScalarType, Value};

/// Why a payload did not decode into a row.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON, not an object, or a value of the wrong type.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// A `NOT NULL` or event-time column is absent or null.
    #[error("missing field `{0}`")]
    MissingField(String),
}

/// One level of the schema: object keys and what each leads to.
#[derive(Debug, Default)]
struct ObjectShape {
    fields: Vec<(String, Slot)>,
}

#[derive(Debug)]
enum Slot {
    Column(usize),
    Object(ObjectShape),
}

/// Decodes JSON payloads for one source.
#[derive(Debug)]
pub struct JsonDecoder {
    root: ObjectShape,
    types: Vec<ScalarType>,
    names: Vec<String>,
    required: Vec<bool>,
    strings: StringCache,
}

impl JsonDecoder {
    /// A decoder for the source's columns and paths.
    pub fn new(source: &SourceDef) -> Self {
        let mut root = ObjectShape::default();
        for (index, col) in source.columns.iter().enumerate() {
            let mut shape = &mut root;
            let (last, parents) = col
                .path
                .split_last()
                .expect("a source column has a non-empty path");
            for part in parents {
                let pos = match shape.fields.iter().position(|(k, _)| k == part) {
                    Some(p) => p,
                    None => {
                        shape
                            .fields
                            .push((part.clone(), Slot::Object(ObjectShape::default())));
                        shape.fields.len() - 1
                    }
                };
                shape = match &mut shape.fields[pos].1 {
                    Slot::Object(o) => o,
                    Slot::Column(_) => {
                        unreachable!("planner rejects a column that is also a parent path")
                    }
                };
            }
            shape.fields.push((last.clone(), Slot::Column(index)));
        }
        JsonDecoder {
            root,
            types: source.columns.iter().map(|c| c.column.ty).collect(),
            names: source.columns.iter().map(|c| c.path.join(".")).collect(),
            required: source
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| !c.column.nullable || Some(i) == source.event_time)
                .collect(),
            strings: StringCache::default(),
        }
    }

    /// Decodes one payload.
    pub fn decode(&self, payload: &[u8]) -> Result<Row, DecodeError> {
        let mut row = Row::with_capacity(self.types.len() + ROW_HEADROOM);
        self.decode_into(payload, &mut row)?;
        Ok(row)
    }

    /// Decodes one payload into `row`, replacing what it held: a caller that decodes
    /// record after record into one buffer allocates no row per record. On an error
    /// `row` holds no meaningful values.
    pub fn decode_into(&self, payload: &[u8], row: &mut Row) -> Result<(), DecodeError> {
        if flat::decode_into(self, payload, row).is_some() {
            return Ok(());
        }
        *row = self.decode_with_serde(payload)?;
        Ok(())
    }

    /// The general path, and the one that explains every failure: serde_json.
    fn decode_with_serde(&self, payload: &[u8]) -> Result<Row, DecodeError> {
        let mut values: Vec<Option<Value>> = vec![None; self.types.len()];
        let mut de = serde_json::Deserializer::from_slice(payload);
        ObjectSeed {
            shape: &self.root,
            decoder: self,
            values: &mut values,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let mut row = Vec::with_capacity(values.len() + ROW_HEADROOM);
        for (i, v) in values.into_iter().enumerate() {
            match v {
                Some(Value::Null) | None if self.required[i] => {
                    return Err(DecodeError::MissingField(self.names[i].clone()))
                }
                Some(v) => row.push(v),
                None => row.push(Value::Null),
            }
        }
        Ok(row)
    }
}

/// Spare capacity in every decoded row: window assignment appends two columns
/// (start, end), which would otherwise reallocate every row of a windowed source.
pub const ROW_HEADROOM: usize = 2;

struct ObjectSeed<'a> {
    shape: &'a ObjectShape,
    decoder: &'a JsonDecoder,
    values: &'a mut Vec<Option<Value>>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(slot) = map.next_key_seed(KeySeed(self.shape))? {
            match slot.map(|i| &self.shape.fields[i].1) {
                Some(Slot::Column(c)) => {
                    let value = map.next_value_seed(ValueSeed {
                        ty: self.decoder.types[*c],
                        name: &self.decoder.names[*c],
                        strings: &self.decoder.strings,
                        column: *c,
                    })?;
                    self.values[*c] = Some(value);
                }
                Some(Slot::Object(shape)) => map.next_value_seed(NestedSeed(ObjectSeed {
                    shape,
                    decoder: self.decoder,
                    values: self.values,
                }))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A nested object that may also be `null` (then its columns are absent).
struct NestedSeed<'a>(ObjectSeed<'a>);

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.deserialize(d)
    }
}

/// Matches an object key against a shape without allocating: the field's index.
struct KeySeed<'a>(&'a ObjectShape);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.fields.iter().position(|(k, _)| k == key))
    }
}

/// Converts one JSON value to a column's type.
struct ValueSeed<'a> {
    ty: ScalarType,
    name: &'a str,
    strings: &'a StringCache,
    column: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.ty {
            ScalarType::Timestamp => write!(
                f,
                "TIMESTAMP (epoch milliseconds or RFC 3339 string) for field `{}`",
                self.name
            ),
            ty => write!(f, "{ty} for field `{}`", self.name),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        convert(self.ty, Scalar::Bool(b), self.strings, self.column)
            .ok_or_else(|| E::invalid_type(de::Unexpected::Bool(b), &self))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        convert(self.ty, Scalar::Int(i), self.strings, self.column)
            .ok_or_else(|| E::invalid_type(de::Unexpected::Signed(i), &self))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        match i64::try_from(u) {
            Ok(i) => self.visit_i64(i),
            Err(_) if self.ty == ScalarType::Float => Ok(Value::float(u as f64)),
            Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(u), &self)),
        }
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
        convert(self.ty, Scalar::Float(x), self.strings, self.column)
            .ok_or_else(|| E::invalid_type(de::Unexpected::Float(x), &self))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        convert(self.ty, Scalar::Str(s), self.strings, self.column).ok_or_else(|| match self.ty {
            ScalarType::Timestamp => E::invalid_value(de::Unexpected::Str(s), &self),
            _ => E::invalid_type(de::Unexpected::Str(s), &self),
        })
    }
}

/// A JSON scalar as read from a payload (strings borrowed from it).
#[derive(Clone, Copy, Debug)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// A JSON scalar as a value of a column's type, or `None` when it is not one.
#[inline(always)]
fn convert(
    ty: ScalarType,
    scalar: Scalar<'_>,
    strings: &StringCache,
    column: usize,
) -> Option<Value> {
    match (scalar, ty) {
        (Scalar::Null, _) => Some(Value::Null),
        (Scalar::Bool(b), ScalarType::Bool) => Some(Value::Bool(b)),
        (Scalar::Int(i), ScalarType::Int) => Some(Value::Int(i)),
        (Scalar::Int(i), ScalarType::Float) => Some(Value::float(i as f64)),
        (Scalar::Int(i), ScalarType::Timestamp) => Some(Value::Timestamp(i)),
        (Scalar::Float(x), ScalarType::Float) => Some(Value::float(x)),
        (Scalar::Float(x), ScalarType::Int | ScalarType::Timestamp) => {
            let integral = x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64;
            match ty {
                ScalarType::Int if integral => Some(Value::Int(x as i64)),
                ScalarType::Timestamp if integral => Some(Value::Timestamp(x as i64)),
                _ => None,
            }
        }
        (Scalar::Str(s), ScalarType::Text) => Some(Value::Text(strings.get(column, s))),
        (Scalar::Str(s), ScalarType::Timestamp) => parse_timestamp(s).map(Value::Timestamp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Column, Format, SourceColumn};

    /// A JSON source of `columns` (name, path, type, nullable), the first its event time.
    pub(super) fn source_of(columns: &[(&str, &[&str], ScalarType, bool)]) -> SourceDef {
        let columns = columns
            .iter()
            .map(|(name, path, ty, nullable)| SourceColumn {
                column: Column {
                    name: name.to_string(),
                    ty: *ty,
                    nullable: *nullable,
                },
                path: path.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        SourceDef {
            name: "clicks".into(),
            topic: "clicks".into(),
            format: Format::Json,
            columns,
            event_time: Some(0),
            lateness_ms: 5000,
            key_column: None,
        }
    }

    fn source() -> SourceDef {
        source_of(&[
            ("ts", &["ts"], ScalarType::Timestamp, false),
            ("user", &["user"], ScalarType::Text, true),
            ("amount", &["amount"], ScalarType::Float, true),
            ("city", &["geo", "city"], ScalarType::Text, true),
            ("n", &["n"], ScalarType::Int, true),
        ])
    }

    #[test]
    fn decodes_flat_and_nested_fields_and_ignores_others() {
        let d = JsonDecoder::new(&source());
        let row = d
            .decode(br#"{"ts":1700000000002,"user":"u1","x":[1,{"a":2}],"amount":1.5,"geo":{"city":"Oslo","zip":1},"n":3}"#)
            .unwrap();
        assert_eq!(
            row,
            vec![
                Value::Timestamp(1_700_000_000_002),
                Value::text("u1"),
                Value::float(1.5),
                Value::text("Oslo"),
                Value::Int(3)
            ]
        );
    }

    #[test]
    fn decoding_into_a_reused_row_leaves_nothing_of_the_previous_record() {
        let d = JsonDecoder::new(&source());
        let payloads: [&[u8]; 5] = [
            br#"{"ts":1,"user":"u1","amount":1.5,"geo":{"city":"Oslo"},"n":3}"#,
            br#"{"ts":2}"#,
            br#"{"ts":3,"user":"a\"b","n":"x"}"#,
            br#"{"user":"u2","n":4}"#,
            br#"{"ts":"2023-11-14T22:13:20Z","geo":null,"amount":2}"#,
        ];
        let mut row = Row::new();
        for _ in 0..2 {
            for payload in payloads {
                let into = d.decode_into(payload, &mut row).map(|()| row.clone());
                assert_eq!(
                    into,
                    d.decode(payload),
                    "{}",
                    String::from_utf8_lossy(payload)
                );
            }
        }
    }

    #[test]
    fn missing_nullable_fields_are_null_but_event_time_is_required() {
        let d = JsonDecoder::new(&source());
        let row = d.decode(br#"{"ts":"2023-11-14T22:13:20Z"}"#).unwrap();
        assert_eq!(row[0], Value::Timestamp(1_700_000_000_000));
        assert!(row[1..].iter().all(Value::is_null));
        assert_eq!(
            d.decode(br#"{"user":"u1"}"#),
            Err(DecodeError::MissingField("ts".into()))
        );
    }

    #[test]
    fn short_strings_are_inline_and_repeated_long_ones_share_one_allocation() {
        let d = JsonDecoder::new(&source());
        let url = "https://example.com/products/1234567";
        let a = d
            .decode(format!(r#"{{"ts":1,"user":"{url}"}}"#).as_bytes())
            .unwrap();
        let b = d
            .decode(format!(r#"{{"ts":2,"user":"{url}"}}"#).as_bytes())
            .unwrap();
        let c = d.decode(br#"{"ts":3,"user":"u2"}"#).unwrap();
        match (&a[1], &b[1], &c[1]) {
            (Value::Text(a), Value::Text(b), Value::Text(c)) => {
                assert!(a.is_heap_allocated() && std::ptr::eq(a.as_str(), b.as_str()));
                assert_eq!(a, url);
                assert!(!c.is_heap_allocated());
                assert_eq!(c, "u2");
            }
            other => panic!("expected texts, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let d = JsonDecoder::new(&source());
        let err = d.decode(br#"{"ts":1,"amount":"lots"}"#).unwrap_err();
        assert!(
            err.to_string().contains("DOUBLE for field `amount`"),
            "{err}"
        );
        let err = d.decode(br#"{"ts":1,"n":1.5}"#).unwrap_err();
        assert!(err.to_string().contains("BIGINT for field `n`"), "{err}");
        assert!(matches!(
            d.decode(b"{not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(d.decode(b"[1,2]"), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            d.decode(br#"{"ts":1} trailing"#),
            Err(DecodeError::Malformed(_))
        ));
    }
}
