//! The fast path of JSON decoding: objects of plain scalars, scanned in place.
//!
//! Event payloads are nearly always small objects of numbers and short strings
//! without escapes. For those, a direct scan of the bytes against the source's
//! schema does what serde_json's visitor machinery does at a fraction of the cost:
//! the payload's UTF-8 is checked once, not once per string; keys are compared as
//! bytes; numbers are parsed from their text.
//!
//! The scan accepts only what it is sure of and gives up (`None`) on anything
//! else — an escape sequence, an array or object in a field the source ignores, a
//! number out of `i64` range, a type mismatch, a missing required field, any
//! syntax error. The caller then decodes the payload with serde_json, which
//! handles every case and words every error. So this path never changes what a
//! payload decodes to, only how fast: a property test checks that, for any
//! payload, it gives up or agrees with serde_json.

use super::{convert, JsonDecoder, ObjectShape, Scalar, Slot, ROW_HEADROOM};
use crate::types::{Row, Value};

/// Decodes `payload` into `row` if it is an object the fast path handles.
pub(super) fn decode_into(decoder: &JsonDecoder, payload: &[u8], row: &mut Row) -> Option<()> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut scan = Scan { text, pos: 0 };
    row.clear();
    row.reserve(decoder.types.len() + ROW_HEADROOM);
    row.resize(decoder.types.len(), Value::Null);
    scan.whitespace();
    scan.object(decoder, &decoder.root, row)?;
    scan.whitespace();
    if scan.pos != text.len() {
        return None;
    }
    let missing = decoder
        .required
        .iter()
        .zip(row.iter())
        .any(|(required, value)| *required && value.is_null());
    (!missing).then_some(())
}

/// Decodes `payload` into a new row if it is an object the fast path handles.
#[cfg(test)]
fn decode(decoder: &JsonDecoder, payload: &[u8]) -> Option<Row> {
    let mut row = Row::new();
    decode_into(decoder, payload, &mut row).map(|()| row)
}

/// The bytes that end the plain part of a JSON string: its closing quote, an
/// escape, or a control character (which JSON does not allow raw).
static ENDS_PLAIN_STRING: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Powers of ten that are exact in an `f64`.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal without exponent (`-12.50`) whose digits make an integer below 2^53
/// and whose fraction has at most 22 digits: that integer and the power of ten are
/// both exact in an `f64`, so one division rounds correctly (Clinger's fast path),
/// as the general parser would. Anything else is left to it.
fn short_decimal(text: &str) -> Option<f64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut fraction_digits: Option<usize> = None;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                if let Some(n) = &mut fraction_digits {
                    *n += 1;
                }
            }
            b'.' if fraction_digits.is_none() => fraction_digits = Some(0),
            _ => return None,
        }
    }
    if mantissa >= 1 << 53 {
        return None;
    }
    let x = mantissa as f64 / *EXACT_POWERS_OF_TEN.get(fraction_digits.unwrap_or(0))?;
    Some(if negative { -x } else { x })
}

/// A position in a payload known to be UTF-8.
struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// An object whose fields fill `row` per `shape`; at its `{`.
    fn object(&mut self, decoder: &JsonDecoder, shape: &ObjectShape, row: &mut Row) -> Option<()> {
        self.eat(b'{')?;
        self.whitespace();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        // Payloads of one source usually list fields in one order: try the field
        // after the last one matched first.
        let mut next_field = 0;
        loop {
            self.eat(b'"')?;
            let key = self.string_body()?;
            self.whitespace();
            self.eat(b':')?;
            self.whitespace();
            let field = match shape.fields.get(next_field) {
                Some((k, _)) if k == key => Some(next_field),
                _ => shape.fields.iter().position(|(k, _)| k == key),
            };
            if let Some(i) = field {
                next_field = i + 1;
            }
            match field.map(|i| &shape.fields[i].1) {
                Some(Slot::Column(c)) => {
                    let scalar = self.scalar()?;
                    row[*c] = convert(decoder.types[*c], scalar, &decoder.strings, *c)?;
                }
                Some(Slot::Object(nested)) if self.peek() == Some(b'{') => {
                    self.object(decoder, nested, row)?;
                }
                // A nested object may be null (its columns are then absent).
                Some(Slot::Object(_)) => {
                    matches!(self.scalar()?, Scalar::Null).then_some(())?;
                }
                // A field the source ignores.
                None => {
                    self.scalar()?;
                }
            }
            self.whitespace();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.whitespace();
                }
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The rest of a string after its opening quote, without escapes.
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let rest = &self.text.as_bytes()[start..];
        let len = rest
            .iter()
            .position(|b| ENDS_PLAIN_STRING[usize::from(*b)])?;
        // Escapes and raw control characters are left to serde_json.
        if rest[len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A string, number, boolean or null.
    // Inlined into `object`: returned through memory, the scalar was read back with
    // one wide load from two narrower stores, a store-forwarding stall that cost a
    // quarter of `object`'s own time.
    #[inline(always)]
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.string_body().map(Scalar::Str)
            }
            b't' => self.word("true", Scalar::Bool(true)),
            b'f' => self.word("false", Scalar::Bool(false)),
            b'n' => self.word("null", Scalar::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn word(&mut self, word: &str, scalar: Scalar<'a>) -> Option<Scalar<'a>> {
        let end = self.pos + word.len();
        (self.text.get(self.pos..end)? == word).then(|| {
            self.pos = end;
            scalar
        })
    }

    /// A number per JSON's grammar: integers that fit `i64`, or finite floats.
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.pos;
        let negative = self.eat(b'-').is_some();
        match self.peek()? {
            // serde_json reads `-0` as the float -0.0; leave that corner to it.
            b'0' if negative => return None,
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut float = false;
        if self.eat(b'.').is_some() {
            float = true;
            self.required_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        let text = &self.text[start..self.pos];
        if float {
            if let Some(x) = short_decimal(text) {
                return Some(Scalar::Float(x));
            }
            // Correctly rounded, as serde_json is with `float_roundtrip`.
            let x: f64 = text.parse().ok()?;
            x.is_finite().then_some(Scalar::Float(x))
        } else {
            // The digits are checked already: accumulate, giving up on overflow.
            let digits = &text.as_bytes()[usize::from(negative)..];
            let mut n: i64 = 0;
            for d in digits {
                n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            }
            // `i64::MIN` overflows here; serde_json reads it, the slow path too.
            Some(Scalar::Int(if negative { -n } else { n }))
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::types::ScalarType;

    fn decoder() -> JsonDecoder {
        JsonDecoder::new(&super::super::tests::source_of(&[
            ("ts", &["ts"], ScalarType::Timestamp, false),
            ("user", &["user"], ScalarType::Text, true),
            ("amount", &["amount"], ScalarType::Float, true),
            ("n", &["n"], ScalarType::Int, true),
            ("ok", &["ok"], ScalarType::Bool, true),
            ("city", &["geo", "city"], ScalarType::Text, true),
        ]))
    }

    #[test]
    fn clickstream_events_take_the_fast_path() {
        let d = decoder();
        let payload = br#"{"ts":1700000000002,"user":"u18289","page":"/p/281","action":"click","amount":0.0}"#;
        let row = decode(&d, payload).expect("fast path");
        assert_eq!(row, d.decode_with_serde(payload).unwrap());
        assert!(row.capacity() >= row.len() + ROW_HEADROOM);
        let nested = br#" { "ts" : 5 , "geo" : { "city" : "Oslo" , "zip" : 1 } , "ok" : true } "#;
        assert_eq!(
            decode(&d, nested),
            Some(d.decode_with_serde(nested).unwrap())
        );
    }

    #[test]
    fn gives_up_on_what_it_does_not_handle() {
        let d = decoder();
        for payload in [
            &br#"{"ts":1,"user":"a\"b"}"#[..],
            br#"{"ts":1,"x":[1,2]}"#,
            br#"{"ts":1,"x":{"a":1}}"#,
            br#"{"ts":-0}"#,
            br#"{"ts":99999999999999999999}"#,
            br#"{"ts":1,"amount":1e999}"#,
            br#"{"ts":1,"n":1.5}"#,
            br#"{"user":"u1"}"#,
            br#"{"ts":01}"#,
            br#"{"ts":1,}"#,
            br#"{"ts":1} x"#,
            b"[1]",
            b"\xff",
        ] {
            assert_eq!(
                decode(&d, payload),
                None,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    /// JSON text for a value of some kind, sometimes odd.
    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|u| u.to_string()),
            any::<f64>().prop_map(|x| format!("{x:?}")),
            (-1000i64..1000, 0u32..20).prop_map(|(m, e)| format!("{m}.{e}e-{e}")),
            "[a-z/0-9 é]{0,12}".prop_map(|s| format!("\"{s}\"")),
            "[a-z\\\\\"]{0,6}".prop_map(|s| format!("\"{s}\"")),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("-0".to_string()),
            Just("0.5e".to_string()),
            Just("[1,{\"a\":2}]".to_string()),
            Just("{\"city\":\"Oslo\"}".to_string()),
            Just("\"2023-11-14T22:13:20Z\"".to_string()),
        ]
    }

    /// A value fit for the named field, or sometimes any value at all.
    fn field_value(name: &'static str) -> BoxedStrategy<String> {
        let fitting = match name {
            "ts" => prop_oneof![
                (0i64..2_000_000_000_000).prop_map(|t| t.to_string()),
                Just("\"2023-11-14T22:13:20Z\"".to_string()),
            ]
            .boxed(),
            "user" => "[a-z/0-9 é]{0,12}".prop_map(|s| format!("\"{s}\"")).boxed(),
            "amount" => prop_oneof![
                (-1000i64..1000, 0u32..100).prop_map(|(m, f)| format!("{m}.{f}")),
                // Around the short-decimal fast path's limits: 2^53, 22 digits.
                (any::<u64>(), 0usize..25).prop_map(|(m, point)| {
                    let digits = m.to_string();
                    let point = point.min(digits.len());
                    let (int, frac) = digits.split_at(digits.len() - point);
                    let int = if int.is_empty() { "0" } else { int };
                    if frac.is_empty() {
                        format!("{int}.0")
                    } else {
                        format!("{int}.{frac}")
                    }
                }),
                (0u64..1 << 54, 0u32..30)
                    .prop_map(|(m, z)| format!("0.{}{m}", "0".repeat(z as usize))),
            ]
            .boxed(),
            "n" => any::<i64>().prop_map(|i| i.to_string()).boxed(),
            "ok" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
            "geo" => "[a-z]{0,6}"
                .prop_map(|c| format!("{{\"city\":\"{c}\"}}"))
                .boxed(),
            _ => json_value().boxed(),
        };
        prop_oneof![4 => fitting, 1 => json_value()].boxed()
    }

    fn field() -> impl Strategy<Value = (&'static str, String)> {
        prop::sample::select(vec!["ts", "user", "amount", "n", "ok", "geo", "other"])
            .prop_flat_map(|name| field_value(name).prop_map(move |v| (name, v)))
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_or_gives_up(
            ts in field_value("ts"),
            fields in prop::collection::vec(field(), 0..7),
            pad in prop::sample::select(vec!["", " ", "\n\t"]),
        ) {
            let body: Vec<String> = std::iter::once(("ts", ts))
                .chain(fields)
                .map(|(k, v)| format!("{pad}\"{k}\"{pad}:{pad}{v}{pad}"))
                .collect();
            let payload = format!("{pad}{{{}}}{pad}", body.join(","));
            let d = decoder();
            if let Some(row) = decode(&d, payload.as_bytes()) {
                prop_assert_eq!(Ok(row), d.decode_with_serde(payload.as_bytes()), "{}", payload);
            }
        }
    }
}
