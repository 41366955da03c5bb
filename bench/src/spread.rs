//! Figures repeated over several rounds of a benchmark, summarized as the median and
//! the range: these machines are shared and noisy, so one run's ratio can land on
//! either side of a target by chance.

/// A figure over rounds: median, least and greatest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The least value.
    pub min: f64,
    /// The greatest value.
    pub max: f64,
}

impl Spread {
    /// The spread of the finite `values`; `None` if there are none.
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let (min, max) = (*values.first()?, *values.last()?);
        let middle = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]) / 2.0
        } else {
            values[middle]
        };
        Some(Spread { median, min, max })
    }

    /// `median (min–max)` with `unit` after the median, two decimals; just the
    /// median when the range shows no difference at that precision.
    pub fn show(&self, unit: &str) -> String {
        let [median, min, max] = [self.median, self.min, self.max].map(|v| format!("{v:.2}"));
        if min == max {
            format!("{median}{unit}")
        } else {
            format!("{median}{unit} ({min}–{max})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        let spread = Spread::of(vec![1.9, 1.5, 1.7]).unwrap();
        assert_eq!((spread.median, spread.min, spread.max), (1.7, 1.5, 1.9));
        assert_eq!(spread.show("×"), "1.70× (1.50–1.90)");
    }

    #[test]
    fn the_median_of_an_even_count_lies_between_the_middle_values() {
        let spread = Spread::of(vec![53.5, 46.5]).unwrap();
        assert_eq!(spread.median, 50.0);
    }

    #[test]
    fn missing_figures_are_left_out_and_none_make_no_spread() {
        assert_eq!(Spread::of(vec![]), None);
        assert_eq!(Spread::of(vec![f64::NAN]), None);
        let one = Spread::of(vec![f64::NAN, 0.614]).unwrap();
        assert_eq!(one.show("×"), "0.61×");
    }
}
