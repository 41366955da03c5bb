//! `kappa topic create | list | describe | mirror`.

use clap::Subcommand;
use kappa_log::Durability;

use super::backend::{open_log, Access};
use crate::Context;

/// Topic management.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (an error if it exists).
    Create {
        /// The topic's name: 1 to 200 of A-Z a-z 0-9 . _ -
        name: String,
        /// Number of partitions.
        #[arg(long, short, default_value_t = 1)]
        partitions: u32,
    },
    /// List topic names, one per line.
    List,
    /// Show a topic's partitions with their offsets and size on disk.
    Describe {
        /// The topic.
        name: String,
    },
    /// Copy a topic between the embedded log and Fluvio (resumable).
    Mirror(super::mirror::MirrorArgs),
}

/// Runs a topic command.
pub fn run(ctx: &Context, cmd: TopicCommand) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Create { name, partitions } => {
            let log = open_log(ctx, Access::Write(Durability::PerBatch))?;
            log.create_topic(&name, partitions)?;
            eprintln!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::List => {
            for name in open_log(ctx, Access::Read)?.list_topics()? {
                println!("{name}");
            }
        }
        TopicCommand::Describe { name } => {
            let d = open_log(ctx, Access::Read)?.describe_topic(&name)?;
            print!("{}", describe_table(&d));
        }
        TopicCommand::Mirror(args) => super::mirror::run(ctx, args)?,
    }
    Ok(())
}

/// The `describe` output: a header line, then one aligned row per partition.
fn describe_table(d: &kappa_log::TopicDescription) -> String {
    let records: u64 = d
        .partitions
        .iter()
        .map(|p| p.end_offset - p.start_offset)
        .sum();
    let bytes: u64 = d.partitions.iter().map(|p| p.bytes).sum();
    let mut out = format!(
        "topic {}: {} partition(s), {records} record(s), {} on disk\n",
        d.name,
        d.partitions.len(),
        human_bytes(bytes)
    );
    let header = ["PARTITION", "START", "END", "RECORDS", "BYTES"];
    let rows: Vec<[String; 5]> = d
        .partitions
        .iter()
        .map(|p| {
            [
                p.partition.to_string(),
                p.start_offset.to_string(),
                p.end_offset.to_string(),
                (p.end_offset - p.start_offset).to_string(),
                p.bytes.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let cols: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        format!("{}\n", cols.join("  "))
    };
    out.push_str(&line(header));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kappa_log::{PartitionInfo, TopicDescription};

    #[test]
    fn table_is_aligned() {
        let d = TopicDescription {
            name: "t".into(),
            partitions: vec![
                PartitionInfo {
                    partition: 0,
                    start_offset: 0,
                    end_offset: 12345,
                    bytes: 2048,
                },
                PartitionInfo {
                    partition: 1,
                    start_offset: 0,
                    end_offset: 0,
                    bytes: 0,
                },
            ],
        };
        let table = describe_table(&d);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "topic t: 2 partition(s), 12345 record(s), 2.0 KiB on disk"
        );
        assert_eq!(lines[1], "PARTITION  START    END  RECORDS  BYTES");
        assert_eq!(lines[2], "        0      0  12345    12345   2048");
        assert_eq!(lines[3], "        1      0      0        0      0");
    }
}
