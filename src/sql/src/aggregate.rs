//! Exact, order-independent accumulation for `SUM` and `AVG`.
//!
//! Incremental aggregation adds and retracts values in whatever order batches
//! arrive; floating-point addition would make the result depend on that order.
//! So `SUM`/`AVG` accumulate in `i128`: integers as they are, `DOUBLE`s in
//! decimal fixed point with [`FLOAT_DECIMALS`] decimal places (Materialize takes
//! the same approach with binary places; decimal ones make sums of money-like
//! values come out as written: `0.1 + 0.2 = 0.3`). The result is exact for values
//! with at most 9 decimal places and magnitudes below ~1e29 (larger magnitudes
//! saturate); the oracle and the dataflow both use these functions, so they agree
//! bit for bit.

use crate::types::{ScalarType, Value};

/// Decimal places of the fixed-point accumulator for `DOUBLE` sums.
pub const FLOAT_DECIMALS: i32 = 9;

/// `10^FLOAT_DECIMALS`, the accumulator's unit.
const FLOAT_SCALE: f64 = 1e9;

/// The accumulator contribution of one non-NULL value of the given type.
pub fn to_accumulator(value: &Value) -> i128 {
    match value {
        Value::Int(i) => *i as i128,
        Value::Float(f) => {
            let x = f.get();
            if x.is_nan() {
                0
            } else {
                // `as` saturates at the i128 bounds, which is the documented behaviour.
                (x * FLOAT_SCALE).round() as i128
            }
        }
        Value::Timestamp(t) => *t as i128,
        Value::Bool(b) => *b as i128,
        Value::Null | Value::Text(_) => 0,
    }
}

/// The `SUM` of values of type `ty` whose accumulator is `acc` over `count` non-NULL values.
/// `BIGINT` sums outside the 64-bit range saturate at its bounds.
pub fn finish_sum(ty: ScalarType, acc: i128, count: i64) -> Value {
    if count == 0 {
        return Value::Null;
    }
    match ty {
        ScalarType::Float => Value::float(acc as f64 / FLOAT_SCALE),
        _ => Value::Int(acc.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
    }
}

/// The `AVG` of values of type `ty` whose accumulator is `acc` over `count` non-NULL values.
pub fn finish_avg(ty: ScalarType, acc: i128, count: i64) -> Value {
    if count == 0 {
        return Value::Null;
    }
    let sum = match ty {
        ScalarType::Float => acc as f64 / FLOAT_SCALE,
        _ => acc as f64,
    };
    Value::float(sum / count as f64)
}

/// The accumulator contribution of one non-NULL argument of an accumulable
/// aggregate (`SUM`, `AVG`) whose result has type `result_ty`. `AVG` always
/// accumulates in fixed point; `SUM` in its result's type. Oracle and dataflow
/// both call this, so their sums agree bit for bit.
pub fn accumulate(func: crate::plan::AggFunc, result_ty: ScalarType, value: &Value) -> i128 {
    use crate::plan::AggFunc;
    match (func, value) {
        (AggFunc::Avg, Value::Int(i)) => to_accumulator(&Value::float(*i as f64)),
        (AggFunc::Sum, Value::Int(i)) if result_ty == ScalarType::Float => {
            to_accumulator(&Value::float(*i as f64))
        }
        _ => to_accumulator(value),
    }
}

/// The final value of an accumulable aggregate from its accumulator and the number
/// of non-NULL arguments it saw (see [`accumulate`]).
pub fn finish(func: crate::plan::AggFunc, result_ty: ScalarType, acc: i128, count: i64) -> Value {
    use crate::plan::AggFunc;
    match func {
        AggFunc::Avg => finish_avg(ScalarType::Float, acc, count),
        AggFunc::Sum => finish_sum(result_ty, acc, count),
        AggFunc::Count | AggFunc::CountStar => Value::Int(count),
        AggFunc::Min | AggFunc::Max => unreachable!("MIN and MAX are not accumulable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_sums_are_order_independent() {
        let xs = [0.1, 0.2, 0.3, 1e9, -1e9, 123.45];
        let forward: i128 = xs.iter().map(|x| to_accumulator(&Value::float(*x))).sum();
        let backward: i128 = xs
            .iter()
            .rev()
            .map(|x| to_accumulator(&Value::float(*x)))
            .sum();
        assert_eq!(forward, backward);
        let Value::Float(s) = finish_sum(ScalarType::Float, forward, 6) else {
            panic!("a float sum")
        };
        assert!((s.get() - 124.05).abs() < 1e-6);
    }

    #[test]
    fn empty_sums_are_null_and_int_sums_saturate() {
        assert_eq!(finish_sum(ScalarType::Int, 0, 0), Value::Null);
        assert_eq!(
            finish_sum(ScalarType::Int, i64::MAX as i128 + 5, 2),
            Value::Int(i64::MAX)
        );
        assert_eq!(finish_avg(ScalarType::Int, 7, 2), Value::float(3.5));
    }
}
