//! The embedded log against real files: round trips across segments and reopen, torn
//! writes and corruption (for `read` and `read_batch`), batch reads across segment
//! boundaries, the writer lock, durability policies, and followers.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, LogError, NewRecord, Record};

fn opts(segment_bytes: u64) -> EmbeddedOptions {
    EmbeddedOptions {
        segment_bytes,
        ..EmbeddedOptions::default()
    }
}

fn batch(start: usize, n: usize) -> Vec<NewRecord> {
    (start..start + n)
        .map(|i| NewRecord::with_key(format!("k{i}"), format!("{{\"n\":{i}}}"), i as i64))
        .collect()
}

fn payloads(log: &dyn Log, topic: &str, partition: u32, from: u64) -> Vec<String> {
    log.read(topic, partition, from, usize::MAX, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
        .collect()
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{{\"n\":{i}}}")).collect()
}

fn segments(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("topics").join(topic).join(partition.to_string()))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
    files.sort();
    files
}

#[test]
fn round_trip_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), opts(1024)).unwrap();
        log.create_topic("t", 2).unwrap();
        assert!(matches!(
            log.create_topic("t", 2),
            Err(LogError::TopicExists(_))
        ));
        for i in 0..20 {
            let r = log.append("t", 1, &batch(i * 7, 7)).unwrap();
            assert_eq!((r.start, r.end), (i as u64 * 7, i as u64 * 7 + 7));
        }
        assert_eq!(payloads(&log, "t", 1, 0), expected(0..140));
    }
    assert!(
        segments(dir.path(), "t", 1).len() > 3,
        "small segments roll"
    );
    let log = EmbeddedLog::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(log.list_topics().unwrap(), vec!["t".to_string()]);
    assert_eq!(log.end_offset("t", 1).unwrap(), 140);
    assert_eq!(payloads(&log, "t", 1, 0), expected(0..140));
    for from in [1, 6, 7, 8, 63, 139] {
        assert_eq!(
            payloads(&log, "t", 1, from),
            expected(from as usize..140),
            "from {from}"
        );
    }
    assert!(payloads(&log, "t", 1, 140).is_empty());
    assert!(matches!(
        log.read("t", 1, 141, 1, 1),
        Err(LogError::OffsetOutOfRange { end: 140, .. })
    ));
    assert!(matches!(
        log.read("t", 2, 0, 1, 1),
        Err(LogError::UnknownPartition { partitions: 2, .. })
    ));
    assert!(matches!(
        log.read("nope", 0, 0, 1, 1),
        Err(LogError::UnknownTopic(_))
    ));
    // Limits: records and bytes (the first record always comes back).
    assert_eq!(log.read("t", 1, 3, 5, usize::MAX).unwrap().len(), 5);
    assert_eq!(log.read("t", 1, 3, 100, 1).unwrap().len(), 1);
    let r = log.append("t", 1, &batch(140, 3)).unwrap();
    assert_eq!(r.start, 140);
    let d = log.describe_topic("t").unwrap();
    assert_eq!(d.partitions[1].end_offset, 143);
    assert_eq!(d.partitions[0].end_offset, 0);
    let on_disk: u64 = segments(dir.path(), "t", 1)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert_eq!(d.partitions[1].bytes, on_disk);
}

#[test]
fn keys_and_timestamps_survive_and_routing_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
    log.create_topic("r", 4).unwrap();
    let mut records = batch(0, 40);
    records.extend((0..8).map(|i| NewRecord::new(format!("nokey{i}"), -5)));
    let placed = log.append_routed("r", &records).unwrap();
    for (record, &(p, offset)) in records.iter().zip(&placed) {
        if let Some(key) = &record.key {
            assert_eq!(p, kappa_log::partition_for_key(key, 4));
        }
        let back = &log.read("r", p, offset, 1, usize::MAX).unwrap()[0];
        assert_eq!(
            (&back.key, &back.payload, back.timestamp_ms),
            (&record.key, &record.payload, record.timestamp_ms)
        );
    }
    let keyless: Vec<u32> = placed[40..].iter().map(|&(p, _)| p).collect();
    for w in keyless.windows(2) {
        assert_eq!(w[1], (w[0] + 1) % 4, "round-robin: {keyless:?}");
    }
}

#[test]
fn torn_tail_is_truncated_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        log.create_topic("t", 1).unwrap();
        log.append("t", 0, &batch(0, 10)).unwrap();
        log.append("t", 0, &batch(10, 10)).unwrap();
    }
    let seg = segments(dir.path(), "t", 0).pop().unwrap();
    let full = seg.metadata().unwrap().len();
    // Cut into the second batch at several depths; each reopen keeps exactly batch one.
    for cut in [1, 7, 30, 100] {
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(full - cut).unwrap();
        drop(f);
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        assert_eq!(payloads(&log, "t", 0, 0), expected(0..10), "cut {cut}");
        let r = log.append("t", 0, &batch(10, 10)).unwrap();
        assert_eq!(r.start, 10);
        assert_eq!(seg.metadata().unwrap().len(), full);
    }
    // Garbage after the last frame (e.g. zeros from a file extended before a crash).
    let f = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut &f, &[0u8; 4096]).unwrap();
    drop(f);
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(payloads(&log, "t", 0, 0), expected(0..20));
    assert_eq!(seg.metadata().unwrap().len(), full);
}

#[test]
fn corruption_in_the_middle_is_an_error_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let first_batch_len;
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        log.create_topic("t", 1).unwrap();
        log.append("t", 0, &batch(0, 5)).unwrap();
        first_batch_len = log.describe_topic("t").unwrap().partitions[0].bytes;
        log.append("t", 0, &batch(5, 5)).unwrap();
        log.append("t", 0, &batch(10, 5)).unwrap();
    }
    let seg = segments(dir.path(), "t", 0).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = first_batch_len as usize + 30; // inside the second batch's records
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let err = EmbeddedLog::open(dir.path(), EmbeddedOptions::default())
        .err()
        .expect("must fail");
    let msg = err.to_string();
    match err {
        LogError::Corrupt {
            file,
            position,
            offset,
            ..
        } => {
            assert_eq!(file, seg);
            assert_eq!(position, first_batch_len);
            assert_eq!(offset, 5);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains("checksum"),
        "{msg}"
    );
    // Nothing was truncated.
    assert_eq!(std::fs::read(&seg).unwrap().len(), bytes.len());
}

#[test]
fn corruption_in_a_sealed_segment_is_reported_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_sealed_segments(dir.path());
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // a payload byte: framing intact, checksum wrong
    std::fs::write(&first, &bytes).unwrap();
    let log = EmbeddedLog::open(dir.path(), opts(512)).unwrap();
    assert_read_corrupt(&log, &first);
}

/// Writes 50 records in segments of at most 512 bytes and closes the log; returns the
/// first (sealed) segment.
fn write_sealed_segments(dir: &Path) -> PathBuf {
    let log = EmbeddedLog::open(dir, opts(512)).unwrap();
    log.create_topic("t", 1).unwrap();
    for i in 0..10 {
        log.append("t", 0, &batch(i * 5, 5)).unwrap();
    }
    segments(dir, "t", 0).remove(0)
}

/// Asserts that reading topic `t` from offset 0, with `read` and with `read_batch`,
/// fails with corruption found in `file`.
fn assert_read_corrupt(log: &dyn Log, file: &Path) {
    let errs = [
        log.read("t", 0, 0, usize::MAX, usize::MAX).unwrap_err(),
        read_batches(log, 0).unwrap_err(),
    ];
    for err in errs {
        assert!(
            matches!(&err, LogError::Corrupt { file: f, .. } if f == file),
            "{err}"
        );
    }
}

/// Reads topic `t`, partition 0, from `from` to the end with [`Log::read_batch`],
/// checking that every batch continues where the last one ended.
fn read_batches(log: &dyn Log, from: u64) -> Result<Vec<Record>, LogError> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batch = log.read_batch("t", 0, next, usize::MAX, usize::MAX)?;
        assert_eq!(batch.first_offset(), next);
        if batch.is_empty() {
            return Ok(out);
        }
        next = batch.next_offset();
        out.extend(batch.to_records());
    }
}

/// The base offsets of a partition's segments, from their file names.
fn segment_bases(dir: &Path, topic: &str, partition: u32) -> Vec<u64> {
    segments(dir, topic, partition)
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn read_batch_reads_up_to_a_segment_boundary_and_on_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), opts(1024)).unwrap();
    log.create_topic("t", 1).unwrap();
    for i in 0..20 {
        log.append("t", 0, &batch(i * 7, 7)).unwrap();
    }
    let bases = segment_bases(dir.path(), "t", 0);
    assert!(bases.len() > 3, "several segments: {bases:?}");
    let all = log.read("t", 0, 0, usize::MAX, usize::MAX).unwrap();
    let reader = EmbeddedLog::open_read_only(dir.path(), opts(1024)).unwrap();
    for log in [&log as &dyn Log, &reader] {
        // Unlimited batches end exactly at segment boundaries.
        let mut next = 0;
        for &base in &bases[1..] {
            let batch = log
                .read_batch("t", 0, next, usize::MAX, usize::MAX)
                .unwrap();
            assert_eq!((batch.first_offset(), batch.next_offset()), (next, base));
            next = base;
        }
        assert_eq!(read_batches(log, 0).unwrap(), all);
        assert_eq!(read_batches(log, 61).unwrap(), all[61..]);

        let batch = log.read_batch("t", 0, 3, 2, usize::MAX).unwrap();
        assert_eq!(batch.to_records(), all[3..5]);
        let batch = log.read_batch("t", 0, 3, 100, 1).unwrap();
        assert_eq!(batch.len(), 1, "the first record even over max_bytes");
        assert_eq!(batch.last_timestamp_ms(), Some(3));
        let batch = log.read_batch("t", 0, 3, 0, usize::MAX).unwrap();
        assert!(batch.is_empty() && batch.next_offset() == 3);
        let at_end = log.read_batch("t", 0, 140, 10, 1 << 20).unwrap();
        assert!(at_end.is_empty() && at_end.next_offset() == 140);
        assert!(matches!(
            log.read_batch("t", 0, 141, 10, 1 << 20),
            Err(LogError::OffsetOutOfRange {
                offset: 141,
                end: 140,
                ..
            })
        ));
        assert!(matches!(
            log.read_batch("t", 1, 0, 10, 1 << 20),
            Err(LogError::UnknownPartition { .. })
        ));
        assert!(matches!(
            log.read_batch("nope", 0, 0, 10, 1 << 20),
            Err(LogError::UnknownTopic(_))
        ));
    }
}

#[test]
fn a_read_only_reader_batches_what_the_writer_appends_later() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), opts(1024)).unwrap();
    log.create_topic("t", 1).unwrap();
    let reader = EmbeddedLog::open_read_only(dir.path(), opts(1024)).unwrap();
    assert!(reader
        .read_batch("t", 0, 0, 10, 1 << 20)
        .unwrap()
        .is_empty());
    log.append("t", 0, &batch(0, 3)).unwrap();
    let got = reader.read_batch("t", 0, 0, 10, 1 << 20).unwrap();
    assert_eq!(got.to_records(), log.read("t", 0, 0, 10, 1 << 20).unwrap());
    let keys: Vec<&[u8]> = got.iter().map(|r| r.key.unwrap()).collect();
    assert_eq!(keys, [&b"k0"[..], b"k1", b"k2"]);
}

#[test]
fn second_writer_gets_the_lock_error_and_readers_are_free() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
    log.create_topic("t", 1).unwrap();
    let err = EmbeddedLog::open(dir.path(), EmbeddedOptions::default())
        .err()
        .expect("locked");
    let expected = format!(
        "data directory {} is locked by another kappa process (pid {})",
        dir.path().display(),
        std::process::id()
    );
    assert_eq!(err.to_string(), expected);
    let reader = EmbeddedLog::open_read_only(dir.path(), EmbeddedOptions::default()).unwrap();
    let reader2 = EmbeddedLog::open_read_only(dir.path(), EmbeddedOptions::default()).unwrap();
    assert!(matches!(
        reader.append("t", 0, &batch(0, 1)),
        Err(LogError::ReadOnly)
    ));
    assert_eq!(reader2.list_topics().unwrap(), vec!["t".to_string()]);
    drop(log);
    EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("lock released");
}

#[test]
fn interval_durability_acknowledges_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        durability: Durability::Interval(Duration::from_millis(5)),
        ..opts(4096)
    };
    {
        let log = EmbeddedLog::open(dir.path(), o.clone()).unwrap();
        log.create_topic("t", 1).unwrap();
        for i in 0..50 {
            log.append("t", 0, &batch(i * 4, 4)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        log.flush().unwrap();
    }
    let log = EmbeddedLog::open(dir.path(), o).unwrap();
    assert_eq!(payloads(&log, "t", 0, 0), expected(0..200));
}

#[test]
fn oversized_records_are_refused_and_large_batches_split() {
    let dir = tempfile::tempdir().unwrap();
    let o = EmbeddedOptions {
        max_frame_bytes: 1000,
        ..EmbeddedOptions::default()
    };
    let log = EmbeddedLog::open(dir.path(), o).unwrap();
    log.create_topic("t", 1).unwrap();
    let big = [NewRecord::new(vec![b'x'; 2000], 0)];
    assert!(matches!(
        log.append("t", 0, &big),
        Err(LogError::RecordTooLarge { .. })
    ));
    assert_eq!(log.end_offset("t", 0).unwrap(), 0);
    let r = log.append("t", 0, &batch(0, 100)).unwrap();
    assert_eq!(r.end, 100);
    assert_eq!(payloads(&log, "t", 0, 0), expected(0..100));
}

#[test]
fn in_process_followers_wake_within_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap());
    log.create_topic("t", 1).unwrap();
    assert!(!log.wait_for("t", 0, 0, Duration::from_millis(5)).unwrap());
    let (tx, rx) = mpsc::channel();
    log.notify_when_beyond(
        "t",
        0,
        0,
        Box::new(move || tx.send(Instant::now()).unwrap()),
    )
    .unwrap();
    let follower = {
        let log = log.clone();
        std::thread::spawn(move || {
            assert!(log.wait_for("t", 0, 0, Duration::from_secs(10)).unwrap());
            let woke = Instant::now();
            (woke, log.read("t", 0, 0, 10, usize::MAX).unwrap().len())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let appended = Instant::now();
    log.append("t", 0, &batch(0, 3)).unwrap();
    let (woke, n) = follower.join().unwrap();
    assert_eq!(n, 3);
    assert!(woke.duration_since(appended) < Duration::from_millis(100));
    let fired = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(fired.duration_since(appended) < Duration::from_millis(100));
}

#[test]
fn read_only_followers_see_appends_and_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let writer = EmbeddedLog::open(dir.path(), opts(600)).unwrap();
    let reader = Arc::new(EmbeddedLog::open_read_only(dir.path(), opts(600)).unwrap());
    assert!(matches!(
        reader.end_offset("later", 0),
        Err(LogError::UnknownTopic(_))
    ));
    writer.create_topic("later", 1).unwrap();
    assert_eq!(reader.end_offset("later", 0).unwrap(), 0);
    let (tx, rx) = mpsc::channel();
    reader
        .notify_when_beyond(
            "later",
            0,
            0,
            Box::new(move || tx.send(Instant::now()).unwrap()),
        )
        .unwrap();
    let follower = {
        let reader = reader.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while seen.len() < 60 {
                let next = seen.len() as u64;
                if reader
                    .wait_for("later", 0, next, Duration::from_secs(10))
                    .unwrap()
                {
                    for r in reader.read("later", 0, next, 1000, usize::MAX).unwrap() {
                        seen.push(String::from_utf8(r.payload.to_vec()).unwrap());
                    }
                }
            }
            seen
        })
    };
    let appended = Instant::now();
    for i in 0..20 {
        writer.append("later", 0, &batch(i * 3, 3)).unwrap();
    }
    let fired = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(fired.duration_since(appended) < Duration::from_millis(200));
    assert_eq!(follower.join().unwrap(), expected(0..60));
    assert!(
        segments(dir.path(), "later", 0).len() > 2,
        "the follower crossed segment rolls"
    );
    let d = reader.describe_topic("later").unwrap();
    assert_eq!(d.partitions[0].end_offset, 60);
}

#[test]
fn invalid_names_and_counts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert!(matches!(
        log.create_topic("../x", 1),
        Err(LogError::InvalidTopicName(_))
    ));
    assert!(matches!(
        log.create_topic("x", 0),
        Err(LogError::InvalidPartitionCount(0))
    ));
    assert!(log.list_topics().unwrap().is_empty());
}

/// Byte positions of the frames of a segment file (`len:u32le crc:u32le body`).
fn frame_positions(bytes: &[u8]) -> Vec<u64> {
    let mut positions = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        positions.push(pos as u64);
        let body_len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
        pos += 8 + body_len as usize;
    }
    positions
}

/// Overwrites bytes of a file in place (no truncation, as a bit flip on disk would).
fn overwrite(path: &Path, pos: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, pos).unwrap();
}

/// [`write_sealed_segments`], reopened so that its sealed segments have not been read
/// yet; returns the log with its first (sealed) segment.
fn reopened_with_sealed_segments(dir: &Path) -> (EmbeddedLog, PathBuf) {
    let first = write_sealed_segments(dir);
    (EmbeddedLog::open(dir, opts(512)).unwrap(), first)
}

#[test]
fn corruption_of_a_sealed_segment_after_open_is_reported_by_the_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let (log, first) = reopened_with_sealed_segments(dir.path());
    let bytes = std::fs::read(&first).unwrap();
    let last_frame = *frame_positions(&bytes).last().unwrap();
    let flip = bytes.len() as u64 - 1; // a payload byte of the last frame
    overwrite(&first, flip, &[bytes[flip as usize] ^ 0x01]);
    let reader = EmbeddedLog::open_read_only(dir.path(), opts(512)).unwrap();
    for log in [&log, &reader] {
        for from in [0, 4] {
            let errs = [
                log.read("t", 0, from, usize::MAX, usize::MAX).unwrap_err(),
                read_batches(log, from).unwrap_err(),
            ];
            for err in errs {
                match err {
                    LogError::Corrupt { file, position, .. } => {
                        assert_eq!((file, position), (first.clone(), last_frame))
                    }
                    other => panic!("expected Corrupt, got {other}"),
                }
            }
        }
    }
}

#[test]
fn a_frame_verified_once_is_trusted_until_the_log_is_reopened() {
    // The documented contract (embedded/mapping.rs): a frame's checksum is checked once
    // per open log; a change to its bytes after that is found by the next open.
    let dir = tempfile::tempdir().unwrap();
    let (log, first) = reopened_with_sealed_segments(dir.path());
    assert_eq!(payloads(&log, "t", 0, 0), expected(0..50));
    let bytes = std::fs::read(&first).unwrap();
    let flip = bytes.len() as u64 - 2; // a digit of the last record's payload
    overwrite(&first, flip, &[bytes[flip as usize] ^ 0x01]);
    assert_ne!(payloads(&log, "t", 0, 0), expected(0..50), "not re-checked");
    drop(log);
    let log = EmbeddedLog::open(dir.path(), opts(512)).unwrap();
    assert_read_corrupt(&log, &first);
}

#[test]
fn a_frame_length_changed_under_a_mapped_segment_is_an_error_not_a_crash() {
    // Segments are memory-mapped; a frame claiming to extend past the committed bytes
    // must be reported before anything beyond them (or beyond the file) is touched.
    let dir = tempfile::tempdir().unwrap();
    let (log, first) = reopened_with_sealed_segments(dir.path());
    log.append("t", 0, &batch(50, 5)).unwrap();
    assert_eq!(payloads(&log, "t", 0, 0), expected(0..55));
    let active = segments(dir.path(), "t", 0).pop().unwrap();
    for path in [&first, &active] {
        let bytes = std::fs::read(path).unwrap();
        let last_frame = *frame_positions(&bytes).last().unwrap();
        let body_len = u32::from_le_bytes(bytes[last_frame as usize..][..4].try_into().unwrap());
        overwrite(path, last_frame, &(body_len + 4096).to_le_bytes());
        let errs = [
            log.read("t", 0, 0, usize::MAX, usize::MAX).unwrap_err(),
            read_batches(&log, 0).unwrap_err(),
        ];
        for err in errs {
            match err {
                LogError::Corrupt {
                    file,
                    position,
                    reason,
                    ..
                } => {
                    assert_eq!((&file, position), (path, last_frame));
                    assert!(reason.contains("past the committed data"), "{reason}");
                }
                other => panic!("expected Corrupt, got {other}"),
            }
        }
        overwrite(path, last_frame, &body_len.to_le_bytes());
    }
    assert_eq!(payloads(&log, "t", 0, 0), expected(0..55));
}
