//! Property tests of the embedded log against a plain in-memory model: random batches,
//! random segment and frame sizes, reopen between appends, reads from random offsets
//! with random limits. What is read back equals what was acknowledged, in order, with
//! the same offsets; MemLog is held to the same model. `read_batch` returns a prefix of
//! what `read` does with the same limits, cut short only at a segment boundary (or, in
//! a read-only reader, anywhere), and batches read on from `next_offset` replay it all.

use std::time::Duration;

use bytes::Bytes;
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, LogError, MemLog, NewRecord};
use proptest::prelude::*;

/// A record as generated: key, payload, timestamp.
type Rec = (Option<Vec<u8>>, Vec<u8>, i64);

#[derive(Debug, Clone)]
enum Op {
    Append { partition: u32, records: Vec<Rec> },
    Reopen,
}

fn record() -> impl Strategy<Value = Rec> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        proptest::collection::vec(any::<u8>(), 0..120),
        any::<i64>(),
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u32..2, proptest::collection::vec(record(), 0..25))
            .prop_map(|(partition, records)| Op::Append { partition, records }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct Read {
    partition: u32,
    from_permille: u32,
    max_records: usize,
    max_bytes: usize,
}

fn read() -> impl Strategy<Value = Read> {
    (0u32..2, 0u32..=1000, 1usize..50, 0usize..3000).prop_map(
        |(partition, from_permille, max_records, max_bytes)| Read {
            partition,
            from_permille,
            max_records,
            max_bytes,
        },
    )
}

fn to_new(records: &[Rec]) -> Vec<NewRecord> {
    records
        .iter()
        .map(|(k, p, ts)| NewRecord {
            key: k.clone().map(Bytes::from),
            payload: Bytes::from(p.clone()),
            timestamp_ms: *ts,
        })
        .collect()
}

type Model = [Vec<NewRecord>; 2];

/// Where a log's batches may end early: at these offsets of each partition (segment
/// bases), or anywhere (`None`).
type Cuts = Option<[Vec<u64>; 2]>;

fn segment_bases(dir: &std::path::Path) -> [Vec<u64>; 2] {
    [0, 1].map(|p| {
        let files = std::fs::read_dir(dir.join("topics/t").join(p.to_string())).unwrap();
        files
            .filter_map(|f| {
                f.unwrap()
                    .file_name()
                    .to_str()?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect()
    })
}

/// Checks `read_batch` against `read` with the same arguments.
fn check_batch(
    log: &dyn Log,
    (partition, from, max_records, max_bytes): (u32, u64, usize, usize),
    cuts: &Cuts,
) -> Result<(), TestCaseError> {
    let records = log
        .read("t", partition, from, max_records, max_bytes)
        .unwrap();
    let batch = log
        .read_batch("t", partition, from, max_records, max_bytes)
        .unwrap();
    prop_assert_eq!(batch.first_offset(), from);
    prop_assert_eq!(batch.is_empty(), records.is_empty());
    prop_assert!(batch.len() <= records.len());
    prop_assert_eq!(batch.to_records(), &records[..batch.len()]);
    prop_assert_eq!(
        batch.last_timestamp_ms(),
        records
            .get(batch.len().wrapping_sub(1))
            .map(|r| r.timestamp_ms)
    );
    for (view, record) in batch.iter().zip(&records) {
        prop_assert_eq!(view.offset, record.offset);
        prop_assert_eq!(view.key, record.key.as_deref());
        prop_assert_eq!(view.payload, &record.payload[..]);
        prop_assert_eq!(view.timestamp_ms, record.timestamp_ms);
    }
    if let Some(bases) = cuts {
        if batch.len() < records.len() {
            prop_assert!(
                bases[partition as usize].contains(&batch.next_offset()),
                "a batch ended at {} of {:?}, not at a segment boundary",
                batch.next_offset(),
                bases[partition as usize]
            );
        }
    }
    Ok(())
}

fn check_reads(
    log: &dyn Log,
    model: &Model,
    reads: &[Read],
    cuts: &Cuts,
) -> Result<(), TestCaseError> {
    for (p, expected) in model.iter().enumerate() {
        let p = p as u32;
        prop_assert_eq!(log.end_offset("t", p).unwrap(), expected.len() as u64);
        let all = log.read("t", p, 0, usize::MAX, usize::MAX).unwrap();
        prop_assert_eq!(all.len(), expected.len());
        for (i, (got, want)) in all.iter().zip(expected).enumerate() {
            prop_assert_eq!(got.offset, i as u64);
            prop_assert_eq!(
                (&got.key, &got.payload, got.timestamp_ms),
                (&want.key, &want.payload, want.timestamp_ms)
            );
        }
        let mut next = 0;
        let mut batched = Vec::new();
        while next < expected.len() as u64 {
            let batch = log
                .read_batch("t", p, next, usize::MAX, usize::MAX)
                .unwrap();
            prop_assert!(!batch.is_empty(), "no batch at {}", next);
            next = batch.next_offset();
            batched.extend(batch.to_records());
        }
        prop_assert_eq!(batched, all);
        prop_assert!(log.read_batch("t", p, next, 10, 10).unwrap().is_empty());
        let beyond = log.read_batch("t", p, next + 1, 10, 10);
        prop_assert!(
            matches!(beyond, Err(LogError::OffsetOutOfRange { .. })),
            "read_batch beyond the end: {:?}",
            beyond.map(|b| b.len())
        );
    }
    for r in reads {
        let expected = &model[r.partition as usize];
        let from = (expected.len() as u64 * u64::from(r.from_permille)) / 1000;
        let got = log
            .read("t", r.partition, from, r.max_records, r.max_bytes)
            .unwrap();
        check_batch(log, (r.partition, from, r.max_records, r.max_bytes), cuts)?;
        let available = expected.len() as u64 - from;
        prop_assert!(got.len() <= r.max_records);
        if available > 0 {
            prop_assert!(
                !got.is_empty(),
                "a read with data available returns at least one record"
            );
        }
        let size = |n: &NewRecord| n.payload.len() + n.key.as_ref().map_or(0, |k| k.len());
        let bytes: usize = got
            .iter()
            .skip(1)
            .map(|g| g.payload.len() + g.key.as_ref().map_or(0, |k| k.len()))
            .sum();
        if got.len() > 1 {
            prop_assert!(bytes + size(&expected[from as usize]) <= r.max_bytes);
        }
        for (i, g) in got.iter().enumerate() {
            let want = &expected[from as usize + i];
            prop_assert_eq!(g.offset, from + i as u64);
            prop_assert_eq!((&g.key, &g.payload), (&want.key, &want.payload));
        }
        // Maximal: the next record would have broken a limit (or there is none).
        let next = from as usize + got.len();
        if next < expected.len() && got.len() < r.max_records {
            let used: usize = got
                .iter()
                .map(|g| g.payload.len() + g.key.as_ref().map_or(0, |k| k.len()))
                .sum();
            prop_assert!(
                used + size(&expected[next]) > r.max_bytes,
                "read stopped early"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn embedded_log_returns_what_was_acknowledged(
        ops in proptest::collection::vec(op(), 1..30),
        reads in proptest::collection::vec(read(), 1..20),
        segment_bytes in 100u64..5000,
        max_frame_bytes in 400u32..3000,
        index_interval_bytes in 1u64..2000,
        interval in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            segment_bytes,
            max_frame_bytes,
            index_interval_bytes,
            durability: if interval { Durability::Interval(Duration::from_millis(3)) } else { Durability::PerBatch },
        };
        let mut log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
        log.create_topic("t", 2).unwrap();
        let mut model: Model = [Vec::new(), Vec::new()];
        for op in &ops {
            match op {
                Op::Append { partition, records } => {
                    let records = to_new(records);
                    let range = log.append("t", *partition, &records).unwrap();
                    let expected = &mut model[*partition as usize];
                    prop_assert_eq!(range.start, expected.len() as u64);
                    prop_assert_eq!(range.end, (expected.len() + records.len()) as u64);
                    expected.extend(records);
                }
                Op::Reopen => {
                    drop(log);
                    log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
                }
            }
        }
        let cuts = Some(segment_bases(dir.path()));
        check_reads(&log, &model, &reads, &cuts)?;
        let reader = EmbeddedLog::open_read_only(dir.path(), options.clone()).unwrap();
        check_reads(&reader, &model, &reads, &None)?;
        drop(log);
        let log = EmbeddedLog::open(dir.path(), options).unwrap();
        check_reads(&log, &model, &reads, &cuts)?;
    }

    #[test]
    fn mem_log_matches_the_same_model(
        ops in proptest::collection::vec(op(), 1..30),
        reads in proptest::collection::vec(read(), 1..20),
    ) {
        let log = MemLog::new();
        log.create_topic("t", 2).unwrap();
        let mut model: Model = [Vec::new(), Vec::new()];
        for op in &ops {
            if let Op::Append { partition, records } = op {
                let records = to_new(records);
                log.append("t", *partition, &records).unwrap();
                model[*partition as usize].extend(records);
            }
        }
        // The default `read_batch`, built on `read`, is never cut short.
        check_reads(&log, &model, &reads, &Some([vec![], vec![]]))?;
    }
}
