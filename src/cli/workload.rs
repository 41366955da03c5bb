//! Reference workload generators (`../shared/workloads/`), for the demo, tests and
//! benchmarks.
//!
//! [`clicks`] follows `gen_clicks.py`: the same shapes and distributions (time
//! advancing 0–2 ms per event, 5% of events up to 5 s late, Zipf(1.1) pages over
//! 10,000, uniform users over 100,000, 75/23/2% view/click/buy, amounts 1–500 with
//! 2 decimals on buys) and the same JSON layout, but drawn from SplitMix64 rather
//! than Python's Mersenne Twister, so individual lines differ from the script's for
//! the same seed. Output is deterministic for a given `(n, seed)`.

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer uniform in `low..=high`.
    pub fn range_inclusive(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next_u64() % (high - low + 1) as u64) as i64
    }
}

const PAGES: usize = 10_000;
const USERS: u64 = 100_000;

/// Generates `n` clickstream events as JSON lines (without line endings).
pub fn clicks(n: usize, seed: u64) -> impl Iterator<Item = String> {
    let mut rng = SplitMix64::new(seed);
    let mut cumulative = Vec::with_capacity(PAGES);
    let mut total = 0.0;
    for rank in 1..=PAGES {
        total += 1.0 / (rank as f64).powf(1.1);
        cumulative.push(total);
    }
    let mut t: i64 = 1_700_000_000_000;
    (0..n).map(move |_| {
        t += rng.range_inclusive(0, 2);
        let ts = if rng.next_f64() < 0.05 {
            t - rng.range_inclusive(0, 5000)
        } else {
            t
        };
        let target = rng.next_f64() * total;
        let page = cumulative.partition_point(|c| *c < target);
        let a = rng.next_f64();
        let action = if a < 0.02 {
            "buy"
        } else if a < 0.25 {
            "click"
        } else {
            "view"
        };
        let amount = if action == "buy" {
            ((1.0 + rng.next_f64() * 499.0) * 100.0).round() / 100.0
        } else {
            0.0
        };
        let user = rng.next_u64() % USERS;
        format!(
            r#"{{"ts":{ts},"user":"u{user}","page":"/p/{page}","action":"{action}","amount":{amount:?}}}"#
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_are_deterministic_json_with_the_reference_shape() {
        let a: Vec<String> = clicks(1000, 42).collect();
        assert_eq!(a, clicks(1000, 42).collect::<Vec<_>>());
        assert_ne!(a, clicks(1000, 7).collect::<Vec<_>>());
        let mut buys = 0;
        for line in &a {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["ts"].as_i64().unwrap() >= 1_700_000_000_000 - 5000);
            assert!(v["page"].as_str().unwrap().starts_with("/p/"));
            if v["action"] == "buy" {
                buys += 1;
                assert!(v["amount"].as_f64().unwrap() >= 1.0);
            } else {
                assert_eq!(v["amount"].as_f64(), Some(0.0));
            }
        }
        assert!((5..=50).contains(&buys), "about 2% buys, got {buys}");
        assert!(a[0].contains(r#""amount":0.0"#) || a[0].contains(r#""action":"buy""#));
    }
}
