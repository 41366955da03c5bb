//! A hand-built plan run end to end over an in-memory log: the runtime's smoke test,
//! independent of the SQL front end.

use std::sync::Arc;

use kappa_dataflow::{start, RunConfig};
use kappa_log::{Log, MemLog, NewRecord};
use kappa_sql::expr::Expr;
use kappa_sql::plan::{
    AggFunc, Aggregate, Column, Format, Node, Plan, PlanNode, SourceColumn, SourceDef, ViewDef,
};
use kappa_sql::{ScalarType, Value};

fn column(name: &str, ty: ScalarType, nullable: bool) -> Column {
    Column {
        name: name.into(),
        ty,
        nullable,
    }
}

fn plan() -> Plan {
    let cols = vec![
        column("ts", ScalarType::Timestamp, false),
        column("page", ScalarType::Text, false),
        column("user", ScalarType::Text, true),
    ];
    Plan {
        name: "clicks".into(),
        sources: vec![SourceDef {
            name: "clicks".into(),
            topic: "clicks".into(),
            format: Format::Json,
            columns: cols
                .iter()
                .map(|c| SourceColumn {
                    column: c.clone(),
                    path: vec![c.name.clone()],
                })
                .collect(),
            event_time: Some(0),
            lateness_ms: 1000,
            key_column: None,
        }],
        nodes: vec![
            PlanNode {
                node: Node::Source { source: 0 },
                columns: cols,
            },
            PlanNode {
                node: Node::Reduce {
                    input: 0,
                    key: vec![1],
                    aggregates: vec![
                        Aggregate {
                            func: AggFunc::CountStar,
                            arg: Expr::Literal(Value::Null),
                            distinct: false,
                        },
                        Aggregate {
                            func: AggFunc::Count,
                            arg: Expr::Column(2),
                            distinct: true,
                        },
                        Aggregate {
                            func: AggFunc::Max,
                            arg: Expr::Column(0),
                            distinct: false,
                        },
                    ],
                },
                columns: vec![
                    column("page", ScalarType::Text, false),
                    column("n", ScalarType::Int, false),
                    column("users", ScalarType::Int, false),
                    column("last", ScalarType::Timestamp, true),
                ],
            },
        ],
        views: vec![ViewDef {
            name: "per_page".into(),
            node: 1,
            key: vec![0],
            order_by: vec![],
        }],
    }
}

#[test]
fn counts_pages_and_routes_bad_records_to_dead_letters() {
    let log = Arc::new(MemLog::new());
    log.create_topic("clicks", 2).unwrap();
    let events = [
        (0, r#"{"ts":10000,"page":"a","user":"u1"}"#),
        (1, r#"{"ts":10001,"page":"a","user":"u2"}"#),
        (0, r#"{"ts":10002,"page":"a","user":"u1"}"#),
        (1, r#"{"ts":10003,"page":"b"}"#),
        (0, r#"not json"#),
        (0, r#"{"ts":5000,"page":"late","user":"u9"}"#),
    ];
    for (partition, payload) in events {
        log.append(
            "clicks",
            partition,
            &[NewRecord::new(payload.as_bytes().to_vec(), 0)],
        )
        .unwrap();
    }
    for workers in [1, 2, 3] {
        let mut config = RunConfig::threads(workers);
        config.source.bounded = true;
        config.write_outputs = workers == 1;
        let running = start(Arc::new(plan()), log.clone(), config).unwrap();
        let store = running.store().clone();
        running.join().unwrap();
        store.read(|s| {
            assert!(s.complete);
            let rows: Vec<_> = s.view("per_page").unwrap().iter_rows().collect();
            assert_eq!(
                rows,
                vec![
                    vec![
                        Value::text("a"),
                        Value::Int(3),
                        Value::Int(2),
                        Value::Timestamp(10002)
                    ],
                    vec![
                        Value::text("b"),
                        Value::Int(1),
                        Value::Int(0),
                        Value::Timestamp(10003)
                    ],
                ],
                "workers = {workers}"
            );
            assert_eq!(s.error_count, 1);
            let late: u64 = s.offsets.values().map(|p| p.late).sum();
            assert_eq!(late, 1);
            assert_eq!(s.offsets[&("clicks".to_string(), 0)].next_offset, 4);
        });
    }
    let dead = log.read("clicks.dead_letter", 0, 0, 10, 1 << 20).unwrap();
    assert_eq!(dead.len(), 1);
    let letter: serde_json::Value = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(letter["origin"]["offset"], 2);
    assert_eq!(letter["payload"], "not json");
    let changes = log.read("clicks.per_page", 0, 0, 100, 1 << 20).unwrap();
    assert!(!changes.is_empty());
}
