//! Event-time window assignment, shared by the oracle and the dataflow.
//!
//! Windows start at multiples of `slide` since the epoch and last `size`
//! milliseconds; a timestamp `t` belongs to every window with
//! `start <= t < start + size`. `TUMBLE` is the case `slide == size`.

/// The starts of the windows covering `ts`, earliest first.
pub fn window_starts(ts: i64, size_ms: i64, slide_ms: i64) -> impl Iterator<Item = i64> {
    debug_assert!(size_ms > 0 && slide_ms > 0);
    let last = ts - ts.rem_euclid(slide_ms);
    // The earliest start whose window still covers `ts`.
    let span = (size_ms - 1) / slide_ms;
    let first = last - span * slide_ms;
    (0..=span)
        .map(move |i| first + i * slide_ms)
        .filter(move |start| ts < start + size_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_cover_once() {
        assert_eq!(
            window_starts(119_999, 60_000, 60_000).collect::<Vec<_>>(),
            vec![60_000]
        );
        assert_eq!(
            window_starts(-1, 60_000, 60_000).collect::<Vec<_>>(),
            vec![-60_000]
        );
    }

    #[test]
    fn hopping_windows_cover_size_over_slide_times() {
        assert_eq!(
            window_starts(65_000, 60_000, 20_000).collect::<Vec<_>>(),
            vec![20_000, 40_000, 60_000]
        );
        // A slide that does not divide the size.
        assert_eq!(window_starts(100, 50, 30).collect::<Vec<_>>(), vec![60, 90]);
    }
}
