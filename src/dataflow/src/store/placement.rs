//! Where a view's rows sit in the store's hash table ([`Placement`]): by the hash of
//! the whole row, or, for a view whose key identifies its rows, by the hash of the
//! key's values, so that a read that fixes the whole key finds its row by one probe
//! instead of testing every row of the view.

use smallvec::SmallVec;

use crate::render::PackedRow;

/// How a view's rows are hashed into the store's table.
///
/// A keyed view (`GROUP BY` columns, or a view selecting a keyed view's key) holds
/// one row per key at any frontier, so hashing rows by their key keeps buckets as
/// short as hashing whole rows does (a key's old and new rows meet only within the
/// batch that replaces one by the other), and a lookup by the whole key becomes a
/// probe. A view without a key is placed by the row's own hash: hashing its rows by
/// a few columns could pile many rows into one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Placement {
    /// By the hash the row carries (of all its bytes).
    #[default]
    Row,
    /// By the hash of the encodings of these columns (sorted, distinct), back to back.
    Key {
        columns: Vec<usize>,
        /// The columns are `0..columns.len()`: their encodings are the row's first
        /// bytes, hashed where they lie.
        leading: bool,
    },
}

/// The bytes a key hash is taken over, gathered on the stack for keys that fit.
pub(crate) type KeyBytes = SmallVec<[u8; 64]>;

impl Placement {
    /// Placement by `key` (a view's key columns, in any order); by row for no key.
    pub(crate) fn by_key(key: &[usize]) -> Self {
        let mut columns = key.to_vec();
        columns.sort_unstable();
        columns.dedup();
        if columns.is_empty() {
            return Placement::Row;
        }
        let leading = columns.iter().enumerate().all(|(i, c)| i == *c);
        Placement::Key { columns, leading }
    }

    /// The hash `row` is placed by.
    #[inline]
    pub(crate) fn of(&self, row: &PackedRow) -> u64 {
        match self {
            Placement::Row => row.hash_code(),
            Placement::Key { columns, leading } => {
                let bytes = row.as_bytes();
                if *leading {
                    key_hash(&bytes[..row.leading_len(columns.len())])
                } else {
                    let mut key = KeyBytes::new();
                    let mut wanted = columns.iter().peekable();
                    for (column, encoded) in row.encoded_values().enumerate() {
                        match wanted.peek() {
                            Some(&&c) if c == column => {
                                key.extend_from_slice(encoded);
                                wanted.next();
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                    key_hash(&key)
                }
            }
        }
    }

    /// The hash of the rows whose key columns have these encodings (`encoded`
    /// gives a column's encoding, or `None` when it is not fixed), if every key
    /// column is fixed: what a lookup probes.
    pub(crate) fn of_key<'a>(
        &self,
        mut encoded: impl FnMut(usize) -> Option<&'a [u8]>,
    ) -> Option<u64> {
        let Placement::Key { columns, .. } = self else {
            return None;
        };
        let mut key = KeyBytes::new();
        for &column in columns {
            key.extend_from_slice(encoded(column)?);
        }
        Some(key_hash(&key))
    }
}

/// The hash of a key's encodings: the hash a [`PackedRow`] of the key alone
/// carries.
fn key_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use kappa_sql::Value;

    use super::*;

    fn row(values: &[Value]) -> PackedRow {
        PackedRow::pack(values)
    }

    #[test]
    fn a_row_is_placed_by_its_key_wherever_the_key_columns_are() {
        let leading = Placement::by_key(&[1, 0]);
        assert!(matches!(leading, Placement::Key { leading: true, .. }));
        let a = row(&[Value::text("/p/1"), Value::Int(7), Value::Int(1)]);
        let b = row(&[Value::text("/p/1"), Value::Int(7), Value::Int(2)]);
        let c = row(&[Value::text("/p/1"), Value::Int(8), Value::Int(1)]);
        assert_eq!(leading.of(&a), leading.of(&b));
        assert_ne!(leading.of(&a), leading.of(&c));

        let inner = Placement::by_key(&[2, 0]);
        assert!(matches!(inner, Placement::Key { leading: false, .. }));
        let d = row(&[Value::text("/p/1"), Value::Int(1), Value::Int(7)]);
        let e = row(&[Value::text("/p/1"), Value::Int(2), Value::Int(7)]);
        assert_eq!(inner.of(&d), inner.of(&e));
        let probe = |column: usize| match column {
            0 => Some(row(&[Value::text("/p/1")])),
            2 => Some(row(&[Value::Int(7)])),
            _ => None,
        };
        let fixed = [probe(0), probe(1), probe(2)];
        let probed = inner.of_key(|c| fixed[c].as_ref().map(PackedRow::as_bytes));
        assert_eq!(probed, Some(inner.of(&d)));
        assert_eq!(
            leading.of_key(|c| fixed[c].as_ref().map(PackedRow::as_bytes)),
            None,
            "column 1 is not fixed"
        );
    }

    #[test]
    fn a_view_without_a_key_is_placed_by_row() {
        assert_eq!(Placement::by_key(&[]), Placement::Row);
        let a = row(&[Value::Int(1)]);
        assert_eq!(Placement::Row.of(&a), a.hash_code());
        assert_eq!(Placement::Row.of_key(|_| Some(&[][..])), None);
    }
}
