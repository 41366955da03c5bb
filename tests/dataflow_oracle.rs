//! The core claim, tested: a view's final state over a log equals the batch
//! oracle's evaluation (`kappa_sql::oracle::evaluate`) of the same SQL over the same
//! events, for any batching, worker count and partition count.
//!
//! Random event sets — late events, malformed records (bad JSON, a missing NOT NULL
//! field, wrong types), NULLs and duplicates — are placed on 1 or 3 partitions of an
//! in-memory log and run through `kappa_dataflow::start` with 1, 2 or 4 workers and
//! batches of 1..=64 records. Every view must equal the oracle's rows, and the dead
//! letters must agree: the store's net error count with the oracle's `errors`, its
//! decode errors with the oracle's undecodable records, its late count with `late`.
//!
//! Pipelines: `pipelines/clickstream.sql`, `pipelines/wordcount.sql`, and hand-written
//! ones covering expressions (filters, CASE, COALESCE, LIKE, IN, casts, division by
//! zero), aggregates (every function, DISTINCT, HAVING, global aggregates also over
//! empty input, TUMBLE and HOP windows, views over views whose errors come and go),
//! joins (inner, left, residual filters, windows, NULL keys) and relations (top-k by
//! ORDER BY … LIMIT and ROW_NUMBER, UNION ALL, DISTINCT).
//!
//! The replay properties run one log twice (bounded runs, writing changelogs and dead
//! letters) and once live, appending while the dataflow follows the log; every final
//! state must equal the oracle's, and the changelogs must fold to the views.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_dataflow::{start, RunConfig, ViewStore};
use kappa_log::{Log, MemLog, NewRecord};
use kappa_sql::oracle::{self, ErrorOrigin, OracleInput};
use kappa_sql::plan::Plan;
use kappa_sql::Row;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value as Json};

/// Event times are `BASE_TS + index * STEP_MS + jitter`: mostly increasing, with
/// enough jitter to make some events late under every pipeline's lateness bound.
const BASE_TS: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 400;

// ---------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------

const EXPRESSIONS: &str = r#"
CREATE SOURCE t (id BIGINT NOT NULL, name TEXT, x BIGINT, y DOUBLE, ts TIMESTAMP NOT NULL,
                 ok BOOLEAN, city TEXT PATH 'geo.city')
  WITH (topic = 't', event_time = 'ts', lateness = '2s', key = 'id');

CREATE VIEW projected AS
  SELECT id, x * 2 + 1 AS odd, y / 2 AS half, name || '!' AS shout,
         CASE WHEN x > 3 THEN 'big' WHEN x > 0 THEN 'small' ELSE 'other' END AS size,
         CASE id WHEN 1 THEN 'one' ELSE 'many' END AS word,
         COALESCE(name, city, 'anonymous') AS who, 100 / x AS ratio,
         UPPER(TRIM(name)) AS u, LENGTH(name) AS len, SUBSTRING(name, 2) AS tail,
         CONCAT(name, '-', id) AS c, ABS(x) AS a, MOD(id, 3) AS m,
         date_trunc('second', ts) AS second, ts + INTERVAL '1' MINUTE AS later
  FROM t
  WHERE (name NOT LIKE 'b%' AND id IN (1, 2, 3, 5)) OR ok OR x BETWEEN 2 AND 4;

CREATE VIEW casts AS
  SELECT id, CAST(name AS BIGINT) AS n, x::DOUBLE AS xd, CAST(y AS BIGINT) AS yi,
         CAST(ok AS TEXT) AS okt
  FROM t WHERE name ILIKE '_%' OR name IS NULL;

CREATE VIEW null_logic AS
  SELECT id, x IN (1, NULL) AS in_null, ok AND x > 0 AS both_true, ok OR x > 0 AS either,
         NOT ok AS negated, x IS NULL AS no_x, city IS NOT NULL AS has_city
  FROM t;

CREATE VIEW names AS SELECT DISTINCT name, city FROM t;

CREATE VIEW either AS
  SELECT id, name FROM t WHERE x > 2
  UNION ALL SELECT id, city FROM t WHERE ok;

CREATE VIEW per_who AS SELECT who, COUNT(*) AS n, SUM(ratio) AS total FROM projected GROUP BY who;

CREATE VIEW shaky AS SELECT who, 10 / (n - 2) AS r FROM per_who;
"#;

const AGGREGATES: &str = r#"
CREATE SOURCE s (k TEXT, v BIGINT, f DOUBLE, ts TIMESTAMP NOT NULL)
  WITH (topic = 's', event_time = 'ts', lateness = '3s');

CREATE VIEW per_key AS
  SELECT k, COUNT(*) AS n, COUNT(v) AS nv, COUNT(DISTINCT v) AS dv, SUM(v) AS sv,
         SUM(DISTINCT v) AS sdv, MIN(v) AS lo, MAX(v) AS hi, AVG(f) AS mean,
         SUM(f) AS sf, MIN(f) AS flo, MAX(f) AS fhi, AVG(DISTINCT v) AS dmean,
         MAX(ts) AS last, MIN(k) AS first_k, COUNT(DISTINCT f) AS df
  FROM s GROUP BY k;

CREATE VIEW busy AS
  SELECT k, COUNT(*) AS n, MAX(v) AS hi FROM s GROUP BY k HAVING COUNT(*) > 2 AND MAX(v) >= 0;

CREATE VIEW by_parity AS SELECT MOD(v, 2) AS parity, COUNT(*) AS n, SUM(f) AS sf FROM s GROUP BY 1;

CREATE VIEW overall AS
  SELECT COUNT(*) AS n, SUM(v) AS sv, MIN(f) AS lo, MAX(k) AS hi, AVG(v) AS mean,
         COUNT(DISTINCT k) AS keys
  FROM s;

CREATE VIEW nothing AS
  SELECT COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS sv, MAX(k) AS hi, AVG(f) AS mean
  FROM s WHERE k = 'never';

CREATE VIEW tumbling AS
  SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS sv, MIN(f) AS lo
  FROM TUMBLE(s, ts, INTERVAL '10' SECOND)
  GROUP BY k, window_start, window_end;

CREATE VIEW hopping AS
  SELECT window_start, COUNT(*) AS n, MAX(v) AS hi, COUNT(DISTINCT k) AS keys
  FROM HOP(s, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND)
  GROUP BY window_start;

CREATE VIEW ratios AS SELECT k, n / (nv - 1) AS r, sv * 2 AS twice FROM per_key;

CREATE VIEW inverse AS SELECT k, COUNT(*) AS n, SUM(60 / v) AS inv, MAX(10 / v) AS top FROM s GROUP BY k;

CREATE VIEW busiest_windows AS
  SELECT k, window_start, n FROM tumbling ORDER BY n DESC, k, window_start LIMIT 3;
"#;

const JOINS: &str = r#"
CREATE SOURCE orders (id BIGINT NOT NULL, customer BIGINT, amount BIGINT, ts TIMESTAMP NOT NULL)
  WITH (topic = 'orders', event_time = 'ts', lateness = '2s');
CREATE SOURCE customers (id BIGINT, name TEXT, ts TIMESTAMP) WITH (topic = 'customers');

CREATE VIEW inner_join AS
  SELECT o.id, c.name, o.amount FROM orders AS o JOIN customers AS c ON o.customer = c.id;

CREATE VIEW left_join AS
  SELECT o.id, o.customer, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer;

CREATE VIEW filtered_join AS
  SELECT o.id, c.name FROM orders o INNER JOIN customers c
    ON o.customer = c.id AND o.amount > 5 AND c.name <> 'bo';

CREATE VIEW same_window AS
  SELECT a.customer, a.window_start, a.n, b.m
  FROM (SELECT customer, window_start, COUNT(*) AS n
        FROM TUMBLE(orders, ts, INTERVAL '10' SECOND) GROUP BY customer, window_start) AS a
  JOIN (SELECT id, window_start, COUNT(*) AS m
        FROM TUMBLE(customers, ts, INTERVAL '10' SECOND) GROUP BY id, window_start) AS b
  ON a.customer = b.id AND a.window_start = b.window_start;

CREATE VIEW pairs AS
  SELECT x.id AS first, y.id AS second FROM orders x JOIN orders y ON x.customer = y.customer
  WHERE x.id < y.id;

CREATE VIEW spend AS
  SELECT c.name, SUM(o.amount) AS total, COUNT(*) AS n, COUNT(c.id) AS matched
  FROM orders o LEFT JOIN customers c ON o.customer = c.id
  GROUP BY c.name;

-- COUNT(DISTINCT) over an input that retracts (a LEFT JOIN's unmatched rows): the
-- arrangement path, not the monotonic one a source's rows take.
CREATE VIEW distinct_spenders AS
  SELECT c.name, COUNT(DISTINCT o.amount) AS amounts, COUNT(DISTINCT o.customer) AS buyers
  FROM orders o LEFT JOIN customers c ON o.customer = c.id
  GROUP BY c.name;

-- A global top-k over counts that fall (unmatched orders retracted as customers
-- arrive): leaders leave and are refilled from the counts.
CREATE VIEW top_buyers AS
  SELECT c.name, COUNT(*) AS n FROM orders o LEFT JOIN customers c ON o.customer = c.id
  GROUP BY c.name ORDER BY n DESC, name LIMIT 2;

CREATE VIEW a_customers AS
  SELECT o.id, c.name
  FROM orders o LEFT JOIN (SELECT id, name FROM customers WHERE name LIKE 'a%') AS c
    ON o.customer = c.id;

CREATE VIEW everyone AS
  SELECT customer AS who, amount AS n FROM orders
  UNION ALL SELECT id, LENGTH(name) FROM customers;
"#;

const RELATIONS: &str = r#"
CREATE SOURCE scores (player TEXT NOT NULL, team TEXT, points BIGINT, ts TIMESTAMP NOT NULL)
  WITH (topic = 'scores', event_time = 'ts', lateness = '1s');
CREATE SOURCE bonus (player TEXT, points BIGINT) WITH (topic = 'bonus');

CREATE VIEW best AS SELECT player, points FROM scores ORDER BY points DESC, player LIMIT 3;

CREATE VIEW next_best AS
  SELECT player, team, points FROM scores ORDER BY points NULLS FIRST, player LIMIT 4 OFFSET 2;

CREATE VIEW best_per_team AS
  SELECT team, player, points, rn FROM (
    SELECT team, player, points,
           ROW_NUMBER() OVER (PARTITION BY team ORDER BY points DESC, player) AS rn
    FROM scores
  ) WHERE rn <= 2;

CREATE VIEW leaders AS
  SELECT team, player FROM (
    SELECT team, player, points,
           ROW_NUMBER() OVER (PARTITION BY team ORDER BY points DESC, player) AS rn
    FROM scores
  ) WHERE rn = 1;

CREATE VIEW all_points AS
  SELECT player, points FROM scores UNION ALL SELECT player, points FROM bonus;

CREATE VIEW distinct_points AS SELECT player, points FROM scores UNION SELECT player, points FROM bonus;

CREATE VIEW teams AS SELECT DISTINCT team FROM scores;

CREATE VIEW totals AS SELECT player, SUM(points) AS total FROM all_points GROUP BY player;

CREATE VIEW top_totals AS SELECT player, total FROM totals ORDER BY total DESC NULLS LAST, player LIMIT 2;

-- Global top-k over plain counts: ranked from the running counts themselves.
CREATE VIEW busiest_teams AS SELECT team, COUNT(*) AS n FROM scores GROUP BY team ORDER BY n DESC, team LIMIT 2;

CREATE VIEW quietest_players AS
  SELECT player, COUNT(*) AS n FROM all_points GROUP BY player ORDER BY n, player LIMIT 3 OFFSET 1;
"#;

/// A compiled pipeline and the topics its sources read, in source order.
struct Pipeline {
    plan: Arc<Plan>,
    topics: Vec<String>,
}

fn compiled(name: &str, text: &str) -> Pipeline {
    let plan = kappa_sql::compile_str(name, text).unwrap_or_else(|d| panic!("{d}"));
    pipeline_of(plan)
}

fn shipped(file: &str) -> Pipeline {
    let path = format!("{}/pipelines/{file}", env!("CARGO_MANIFEST_DIR"));
    let plan = kappa_sql::compile_file(&path).unwrap_or_else(|d| panic!("{d}"));
    pipeline_of(plan)
}

fn pipeline_of(plan: Plan) -> Pipeline {
    let mut topics: Vec<String> = Vec::new();
    for source in &plan.sources {
        if !topics.contains(&source.topic) {
            topics.push(source.topic.clone());
        }
    }
    Pipeline {
        plan: Arc::new(plan),
        topics,
    }
}

// ---------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------

/// One generated record (or a run of identical ones) before it is placed on the log.
#[derive(Clone, Debug)]
struct Event {
    /// Index into the pipeline's topics.
    topic: usize,
    /// Partition, modulo the partition count.
    partition: u32,
    /// How many identical copies follow each other.
    copies: usize,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    /// A JSON object; `ts_jitter`, when set, becomes a `ts` field of
    /// `BASE_TS + index * STEP_MS + jitter`.
    Object {
        fields: Map<String, Json>,
        ts_jitter: Option<i64>,
    },
    /// Anything, usually not a JSON object.
    Raw(&'static str),
}

/// A placed record: `(topic, partition, payload)`.
type Placed = (String, u32, String);

/// Places events on `partitions` partitions, in order, rendering event times.
fn place(topics: &[String], events: &[Event], partitions: u32) -> Vec<Placed> {
    let mut out = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let payload = match &event.body {
            Body::Object { fields, ts_jitter } => {
                let mut fields = fields.clone();
                if let Some(jitter) = ts_jitter {
                    let ts = BASE_TS + index as i64 * STEP_MS + jitter;
                    fields.insert("ts".into(), json!(ts));
                }
                Json::Object(fields).to_string()
            }
            Body::Raw(text) => text.to_string(),
        };
        for _ in 0..event.copies {
            out.push((
                topics[event.topic].clone(),
                event.partition % partitions,
                payload.clone(),
            ));
        }
    }
    out
}

/// A field's value: absent (`None`), JSON `null`, or a value of `values`.
fn field(values: impl Strategy<Value = Json> + 'static) -> BoxedStrategy<Option<Json>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Json::Null)),
        8 => values.prop_map(Some),
    ]
    .boxed()
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<Json> {
    proptest::sample::select(values)
        .prop_map(|s| json!(s))
        .boxed()
}

fn int(range: std::ops::Range<i64>) -> BoxedStrategy<Json> {
    range.prop_map(|v| json!(v)).boxed()
}

/// Multiples of 0.25 (exact in binary and decimal), sometimes written as integers.
fn money(range: std::ops::Range<i64>) -> BoxedStrategy<Json> {
    prop_oneof![
        4 => range.clone().prop_map(|q| json!(q as f64 / 4.0)),
        1 => range.prop_map(|q| json!(q / 4)),
    ]
    .boxed()
}

/// An event time: usually present (as jitter), sometimes absent.
fn ts_jitter(jitter_ms: i64) -> BoxedStrategy<Option<i64>> {
    prop_oneof![
        12 => (-jitter_ms..=jitter_ms).prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn object(
    fields: Vec<(&'static str, BoxedStrategy<Option<Json>>)>,
    ts: BoxedStrategy<Option<i64>>,
) -> BoxedStrategy<Body> {
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    (values, ts)
        .prop_map(move |(values, ts_jitter)| {
            let fields = names
                .iter()
                .zip(values)
                .filter_map(|(name, value)| value.map(|v| (name.to_string(), v)))
                .collect();
            Body::Object { fields, ts_jitter }
        })
        .boxed()
}

/// Records that are not objects, or whose fields have the wrong types.
fn malformed(wrong_types: Vec<(&'static str, Json)>) -> BoxedStrategy<Body> {
    let raw = proptest::sample::select(vec![
        "not json",
        "[1,2,3]",
        "{\"ts\":",
        "",
        "null",
        "\"text\"",
        "{}",
        "{\"ts\":\"soon\"}",
    ])
    .prop_map(Body::Raw);
    let wrong = (proptest::sample::select(wrong_types), -2000i64..2000).prop_map(
        |((name, value), jitter)| {
            let mut fields = Map::new();
            fields.insert(name.to_string(), value);
            Body::Object {
                fields,
                ts_jitter: Some(jitter),
            }
        },
    );
    prop_oneof![raw, wrong].boxed()
}

fn events_of(bodies: Vec<BoxedStrategy<Body>>) -> BoxedStrategy<Vec<Event>> {
    let topics: Vec<BoxedStrategy<Event>> = bodies
        .into_iter()
        .enumerate()
        .map(|(topic, body)| {
            (body, 0u32..3, prop_oneof![8 => Just(1usize), 1 => Just(2)])
                .prop_map(move |(body, partition, copies)| Event {
                    topic,
                    partition,
                    copies,
                    body,
                })
                .boxed()
        })
        .collect();
    proptest::collection::vec(proptest::strategy::Union::new(topics), 0..=100).boxed()
}

/// Mostly well-formed records, some malformed.
fn mostly(valid: BoxedStrategy<Body>, bad: BoxedStrategy<Body>) -> BoxedStrategy<Body> {
    prop_oneof![12 => valid, 1 => bad].boxed()
}

fn clickstream_events() -> BoxedStrategy<Vec<Event>> {
    let valid = object(
        vec![
            ("user", field(one_of(&["u1", "u2", "u3", "u4", "u5"]))),
            ("page", field(one_of(&["/a", "/b", "/c", "/d"]))),
            ("action", field(one_of(&["click", "buy", "view"]))),
            ("amount", field(money(0..80))),
        ],
        ts_jitter(8_000),
    );
    let bad = malformed(vec![
        ("amount", json!("free")),
        ("user", json!(7)),
        ("page", json!(["/a"])),
        ("ts", json!(1.5)),
    ]);
    events_of(vec![mostly(valid, bad)])
}

fn wordcount_events() -> BoxedStrategy<Vec<Event>> {
    let line = proptest::collection::vec(
        proptest::sample::select(vec!["the", "The", "fox", "a", "", "dog", "FOX", "x y"]),
        0..6,
    )
    .prop_map(|words| json!(words.join(" ")));
    let valid = object(vec![("line", field(line))], Just(None).boxed());
    let bad = malformed(vec![("line", json!(12)), ("line", json!({"text": "a"}))]);
    events_of(vec![mostly(valid, bad)])
}

fn expression_events() -> BoxedStrategy<Vec<Event>> {
    let geo = prop_oneof![
        3 => field(one_of(&["paris", "oslo"])).prop_map(|city| match city {
            Some(city) => json!({ "city": city }),
            None => json!({}),
        }),
        1 => Just(Json::Null),
    ];
    let valid = object(
        vec![
            ("id", int(0..7).prop_map(Some).boxed()),
            (
                "name",
                field(one_of(&["ann", "bob", "7", "  cy ", "", "Al", "b%"])),
            ),
            ("x", field(int(-3..6))),
            ("y", field(money(-20..20))),
            ("ok", field(any::<bool>().prop_map(|b| json!(b)))),
            ("geo", field(geo)),
        ],
        ts_jitter(4_000),
    );
    let bad = malformed(vec![
        ("id", json!("one")),
        ("id", json!(1.5)),
        ("x", json!("seven")),
        ("y", json!("pi")),
        ("ok", json!(1)),
        ("name", json!(true)),
    ]);
    events_of(vec![mostly(valid, bad)])
}

fn aggregate_events() -> BoxedStrategy<Vec<Event>> {
    let valid = object(
        vec![
            ("k", field(one_of(&["a", "b", "c", "d"]))),
            ("v", field(int(-5..10))),
            ("f", field(money(-20..40))),
        ],
        ts_jitter(6_000),
    );
    let bad = malformed(vec![("v", json!(2.5)), ("f", json!("x")), ("k", json!(1))]);
    events_of(vec![mostly(valid, bad)])
}

fn join_events() -> BoxedStrategy<Vec<Event>> {
    let orders = object(
        vec![
            ("id", int(1..9).prop_map(Some).boxed()),
            ("customer", field(int(1..6))),
            ("amount", field(int(0..10))),
        ],
        ts_jitter(4_000),
    );
    let customers = object(
        vec![
            ("id", field(int(1..6))),
            ("name", field(one_of(&["ann", "bo", "cy", "al"]))),
        ],
        prop_oneof![3 => ts_jitter(4_000), 1 => Just(None)].boxed(),
    );
    let bad = malformed(vec![("customer", json!("c1")), ("amount", json!(1.25))]);
    events_of(vec![mostly(orders, bad.clone()), mostly(customers, bad)])
}

fn relation_events() -> BoxedStrategy<Vec<Event>> {
    let scores = object(
        vec![
            (
                "player",
                one_of(&["p1", "p2", "p3", "p4", "p5"])
                    .prop_map(Some)
                    .boxed(),
            ),
            ("team", field(one_of(&["red", "blue"]))),
            ("points", field(int(0..8))),
        ],
        ts_jitter(3_000),
    );
    let bonus = object(
        vec![
            ("player", field(one_of(&["p1", "p2", "p6"]))),
            ("points", field(int(0..4))),
        ],
        Just(None).boxed(),
    );
    let bad = malformed(vec![("points", json!("ten")), ("player", json!(null))]);
    events_of(vec![mostly(scores, bad.clone()), mostly(bonus, bad)])
}

// ---------------------------------------------------------------------------------
// Running and comparing
// ---------------------------------------------------------------------------------

/// What a run (or the oracle) says about a log.
#[derive(Debug, PartialEq)]
struct Outcome {
    views: BTreeMap<String, Vec<Row>>,
    /// Net data errors: undecodable records and failing rows.
    errors: u64,
    decode_errors: u64,
    late: u64,
    /// Per non-empty `(topic, partition)`, the next offset to read.
    next_offsets: BTreeMap<(String, u32), u64>,
}

fn memlog(topics: &[String], partitions: u32) -> Arc<MemLog> {
    let log = Arc::new(MemLog::new());
    for topic in topics {
        log.create_topic(topic, partitions).unwrap();
    }
    log
}

fn append(log: &dyn Log, records: &[Placed]) {
    for (topic, partition, payload) in records {
        log.append(
            topic,
            *partition,
            &[NewRecord::new(payload.as_bytes().to_vec(), 0)],
        )
        .unwrap();
    }
}

fn expected(plan: &Plan, topics: &[String], partitions: u32, records: &[Placed]) -> Outcome {
    let mut input = OracleInput::new();
    for topic in topics {
        input
            .topics
            .insert(topic.clone(), vec![Vec::new(); partitions as usize]);
    }
    let mut next_offsets = BTreeMap::new();
    for (topic, partition, payload) in records {
        input.push(topic, *partition, payload.as_bytes());
        *next_offsets.entry((topic.clone(), *partition)).or_insert(0) += 1;
    }
    let out = oracle::evaluate(plan, &input).expect("the oracle evaluates every plan");
    Outcome {
        views: out.views,
        errors: out.errors.len() as u64,
        decode_errors: out
            .errors
            .iter()
            .filter(|e| matches!(e.origin, ErrorOrigin::Record { .. }))
            .count() as u64,
        late: out.late.len() as u64,
        next_offsets,
    }
}

/// The store's state, in the oracle's terms. Panics on a negative multiplicity.
fn observe(plan: &Plan, store: &ViewStore) -> Outcome {
    store.read(|s| {
        let views = plan
            .views
            .iter()
            .map(|v| {
                let contents = s.view(&v.name).expect("the store holds every view");
                for (row, n) in &contents.rows {
                    assert!(n > 0, "view {} holds {row:?} {n} times", v.name);
                }
                (v.name.clone(), contents.iter_rows().collect())
            })
            .collect();
        Outcome {
            views,
            errors: s.error_count,
            decode_errors: s.offsets.values().map(|p| p.decode_errors).sum(),
            late: s.offsets.values().map(|p| p.late).sum(),
            next_offsets: s
                .offsets
                .iter()
                .filter(|(_, p)| p.next_offset > 0)
                .map(|(k, p)| (k.clone(), p.next_offset))
                .collect(),
        }
    })
}

fn config(workers: usize, batch: usize, bounded: bool, write_outputs: bool) -> RunConfig {
    let mut config = RunConfig::threads(workers);
    config.source.bounded = bounded;
    config.source.max_batch_records = batch;
    // Spans of a few batches: times shared across reads, closed by size and by
    // catching up, within one run.
    config.source.catch_up_span_records = 2 * batch + 1;
    config.source.catch_up_min_age = std::time::Duration::ZERO;
    config.write_outputs = write_outputs;
    config
}

/// A bounded run to the log's end.
fn run_bounded(
    plan: &Arc<Plan>,
    log: Arc<dyn Log>,
    workers: usize,
    batch: usize,
    write_outputs: bool,
) -> Outcome {
    let running = start(
        plan.clone(),
        log,
        config(workers, batch, true, write_outputs),
    )
    .expect("the pipeline starts");
    let store = running.store().clone();
    running.join().expect("the run completes");
    assert!(
        store.read(|s| s.complete),
        "a joined bounded run is complete"
    );
    observe(plan, &store)
}

/// Asserts that `got` equals `want`, view by view, then the dead-letter counts.
fn assert_outcome(got: &Outcome, want: &Outcome, what: &str) -> Result<(), TestCaseError> {
    for (name, rows) in &want.views {
        prop_assert_eq!(&got.views[name], rows, "view `{}` ({})", name, what);
    }
    prop_assert_eq!(
        got.decode_errors,
        want.decode_errors,
        "decode errors ({})",
        what
    );
    prop_assert_eq!(got.late, want.late, "late events ({})", what);
    prop_assert_eq!(got.errors, want.errors, "data errors ({})", what);
    prop_assert_eq!(&got.next_offsets, &want.next_offsets, "offsets ({})", what);
    Ok(())
}

/// The core property for one pipeline, one event set and one configuration.
fn check_pipeline(
    pipeline: &Pipeline,
    events: &[Event],
    workers: usize,
    partitions: u32,
    batch: usize,
) -> Result<(), TestCaseError> {
    let records = place(&pipeline.topics, events, partitions);
    let want = expected(&pipeline.plan, &pipeline.topics, partitions, &records);
    let log = memlog(&pipeline.topics, partitions);
    append(log.as_ref(), &records);
    let got = run_bounded(&pipeline.plan, log, workers, batch, false);
    let what = format!(
        "{} records, {workers} workers, {partitions} partitions, batch {batch}",
        records.len()
    );
    assert_outcome(&got, &want, &what)
}

fn workers() -> impl Strategy<Value = usize> {
    proptest::sample::select(vec![1usize, 2, 4])
}

fn partitions() -> impl Strategy<Value = u32> {
    proptest::sample::select(vec![1u32, 3])
}

fn batch() -> impl Strategy<Value = usize> {
    1usize..=64
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn clickstream_matches_oracle(
        events in clickstream_events(), workers in workers(), partitions in partitions(), batch in batch()
    ) {
        check_pipeline(&shipped("clickstream.sql"), &events, workers, partitions, batch)?;
    }

    #[test]
    fn wordcount_matches_oracle(
        events in wordcount_events(), workers in workers(), partitions in partitions(), batch in batch()
    ) {
        check_pipeline(&shipped("wordcount.sql"), &events, workers, partitions, batch)?;
    }

    #[test]
    fn expressions_match_oracle(
        events in expression_events(), workers in workers(), partitions in partitions(), batch in batch()
    ) {
        check_pipeline(&compiled("expressions", EXPRESSIONS), &events, workers, partitions, batch)?;
    }

    #[test]
    fn aggregates_match_oracle(
        events in aggregate_events(), workers in workers(), partitions in partitions(), batch in batch()
    ) {
        check_pipeline(&compiled("aggregates", AGGREGATES), &events, workers, partitions, batch)?;
    }

    #[test]
    fn joins_match_oracle(
        events in join_events(), workers in workers(), partitions in partitions(), batch in batch()
    ) {
        check_pipeline(&compiled("joins", JOINS), &events, workers, partitions, batch)?;
    }

    #[test]
    fn relations_match_oracle(
        events in relation_events(), workers in workers(), partitions in partitions(), batch in batch()
    ) {
        check_pipeline(&compiled("relations", RELATIONS), &events, workers, partitions, batch)?;
    }
}

// ---------------------------------------------------------------------------------
// Replays: the same log twice, and a live run following the log
// ---------------------------------------------------------------------------------

/// One of the pipelines with an event set for it.
fn any_pipeline_events() -> impl Strategy<Value = (usize, Vec<Event>)> {
    prop_oneof![
        clickstream_events().prop_map(|e| (0, e)),
        wordcount_events().prop_map(|e| (1, e)),
        expression_events().prop_map(|e| (2, e)),
        aggregate_events().prop_map(|e| (3, e)),
        join_events().prop_map(|e| (4, e)),
        relation_events().prop_map(|e| (5, e)),
    ]
}

fn pipeline_by_index(index: usize) -> Pipeline {
    match index {
        0 => shipped("clickstream.sql"),
        1 => shipped("wordcount.sql"),
        2 => compiled("expressions", EXPRESSIONS),
        3 => compiled("aggregates", AGGREGATES),
        4 => compiled("joins", JOINS),
        _ => compiled("relations", RELATIONS),
    }
}

/// Every record of one partition of a topic, from `from` on.
fn read_all(log: &dyn Log, topic: &str, from: u64) -> Vec<Json> {
    let end = log.end_offset(topic, 0).unwrap();
    let mut out = Vec::new();
    let mut next = from;
    while next < end {
        let records = log.read(topic, 0, next, 10_000, 64 << 20).unwrap();
        next = records.last().map_or(end, |r| r.offset + 1);
        out.extend(
            records
                .iter()
                .map(|r| serde_json::from_slice::<Json>(&r.payload).unwrap()),
        );
    }
    out
}

/// The `(topic, partition, offset)` of every undecodable record the oracle reports.
fn oracle_decode_failures(plan: &Plan, records: &[Placed]) -> Vec<(String, u64, u64)> {
    let mut input = OracleInput::new();
    for (topic, partition, payload) in records {
        input.push(topic, *partition, payload.as_bytes());
    }
    let mut failures: Vec<_> = oracle::evaluate(plan, &input)
        .unwrap()
        .errors
        .into_iter()
        .filter_map(|e| match e.origin {
            ErrorOrigin::Record {
                topic,
                partition,
                offset,
            } => Some((topic, u64::from(partition), offset)),
            ErrorOrigin::Row { .. } => None,
        })
        .collect();
    failures.sort();
    failures
}

/// The source-origin dead letters among `letters`, sorted.
fn source_dead_letters(letters: &[Json]) -> Vec<(String, u64, u64)> {
    let mut out: Vec<_> = letters
        .iter()
        .filter(|l| l["origin"]["kind"] == "source")
        .map(|l| {
            let o = &l["origin"];
            (
                o["topic"].as_str().unwrap().to_string(),
                o["partition"].as_u64().unwrap(),
                o["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Folds changelog records into a multiset of rows (as JSON text).
fn fold_changelog(records: &[Json]) -> BTreeMap<String, i64> {
    let mut rows: BTreeMap<String, i64> = BTreeMap::new();
    for record in records {
        *rows.entry(record["row"].to_string()).or_insert(0) += record["diff"].as_i64().unwrap();
    }
    rows.retain(|_, n| *n != 0);
    rows
}

/// A view's rows as the changelog writes them.
fn rows_as_json(plan: &Plan, view: &str, rows: &[Row]) -> BTreeMap<String, i64> {
    let columns = plan.view_columns(plan.view(view).unwrap());
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows {
        let object: Map<String, Json> = columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), v.to_json()))
            .collect();
        *out.entry(Json::Object(object).to_string()).or_insert(0) += 1;
    }
    out
}

/// Asserts that the changelog records of every view appended since `from` fold to
/// the oracle's rows, and returns the changelogs' end offsets.
fn check_changelogs(
    plan: &Plan,
    log: &dyn Log,
    from: &BTreeMap<String, u64>,
    want: &Outcome,
) -> Result<BTreeMap<String, u64>, TestCaseError> {
    let mut ends = BTreeMap::new();
    for view in &plan.views {
        let topic = kappa_dataflow::runtime::changelog_topic(&plan.name, &view.name);
        let start = from.get(&topic).copied().unwrap_or(0);
        let folded = fold_changelog(&read_all(log, &topic, start));
        prop_assert_eq!(
            folded,
            rows_as_json(plan, &view.name, &want.views[&view.name]),
            "changelog of `{}`",
            view.name
        );
        ends.insert(topic.clone(), log.end_offset(&topic, 0).unwrap());
    }
    Ok(ends)
}

proptest! {
    #![proptest_config(cases(12))]

    /// Two bounded runs of one log, with different workers and batching, writing
    /// changelogs and dead letters: both equal the oracle, each run's changelog folds
    /// to the views, and each run dead-letters exactly the undecodable records.
    #[test]
    fn replaying_a_log_gives_the_same_views(
        (index, events) in any_pipeline_events(),
        first in (workers(), batch()),
        second in (workers(), batch()),
        partitions in partitions(),
    ) {
        let pipeline = pipeline_by_index(index);
        let plan = &pipeline.plan;
        let records = place(&pipeline.topics, &events, partitions);
        let want = expected(plan, &pipeline.topics, partitions, &records);
        let failures = oracle_decode_failures(plan, &records);
        let log = memlog(&pipeline.topics, partitions);
        append(log.as_ref(), &records);
        let dead_letters = kappa_dataflow::runtime::dead_letter_topic(&plan.name);

        let got = run_bounded(plan, log.clone(), first.0, first.1, true);
        assert_outcome(&got, &want, &format!("first run {first:?}"))?;
        let ends = check_changelogs(plan, log.as_ref(), &BTreeMap::new(), &want)?;
        let letters = read_all(log.as_ref(), &dead_letters, 0);
        prop_assert_eq!(source_dead_letters(&letters), failures.clone());
        let letters_end = log.end_offset(&dead_letters, 0).unwrap();

        let got = run_bounded(plan, log.clone(), second.0, second.1, true);
        assert_outcome(&got, &want, &format!("second run {second:?}"))?;
        check_changelogs(plan, log.as_ref(), &ends, &want)?;
        let letters = read_all(log.as_ref(), &dead_letters, letters_end);
        prop_assert_eq!(source_dead_letters(&letters), failures);
    }

    /// A live run: part of the log is there at start, the rest is appended while the
    /// dataflow follows it. Once every partition's progress reaches the log's end,
    /// the views equal the oracle's.
    #[test]
    fn following_a_growing_log_gives_the_oracle_views(
        (index, events) in any_pipeline_events(),
        workers in workers(),
        partitions in partitions(),
        batch in batch(),
        split in 0.0f64..1.0,
        chunk in 1usize..40,
    ) {
        let pipeline = pipeline_by_index(index);
        let plan = &pipeline.plan;
        let records = place(&pipeline.topics, &events, partitions);
        let want = expected(plan, &pipeline.topics, partitions, &records);
        let log = memlog(&pipeline.topics, partitions);
        let (before, after) = records.split_at((records.len() as f64 * split) as usize);
        append(log.as_ref(), before);
        let running = start(plan.clone(), log.clone(), config(workers, batch, false, false))
            .expect("the pipeline starts");
        let store = running.store().clone();
        for part in after.chunks(chunk) {
            append(log.as_ref(), part);
            std::thread::yield_now();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        // Caught up: every partition read to its end, and a time after the start
        // complete (with nothing to read, the views' first snapshot).
        let caught_up = || store.read(|s| {
            s.frontier > 0 && want.next_offsets.iter().all(|(key, end)| {
                s.offsets.get(key).is_some_and(|p| p.next_offset == *end)
            })
        });
        while !caught_up() {
            prop_assert!(Instant::now() < deadline, "the live run did not catch up in 30 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        let got = observe(plan, &store);
        running.shutdown().expect("the run stops cleanly");
        assert_outcome(&got, &want, &format!("live, {workers} workers, {partitions} partitions, batch {batch}"))?;
    }
}

/// Regression: `RunningPipeline::shutdown` of a pipeline following its log hung
/// forever, because timely keeps stepping a worker's dataflows after the worker's
/// closure returns and a following source never completes. `kappa run` could not
/// stop on SIGTERM.
#[test]
fn shutdown_of_a_following_pipeline_returns() {
    let pipeline = shipped("wordcount.sql");
    for workers in [1, 2] {
        let log = memlog(&pipeline.topics, 3);
        let running = start(
            pipeline.plan.clone(),
            log.clone(),
            config(workers, 8, false, true),
        )
        .unwrap();
        append(
            log.as_ref(),
            &[("lines".into(), 1, r#"{"line":"a b a"}"#.into())],
        );
        let store = running.store().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.read(|s| s.view("word_counts").unwrap().len()) < 2 {
            assert!(Instant::now() < deadline, "the live run did not catch up");
            std::thread::sleep(Duration::from_millis(2));
        }
        let (done, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(running.shutdown().is_ok()));
        assert_eq!(
            stopped.recv_timeout(Duration::from_secs(30)),
            Ok(true),
            "shutdown with {workers} workers"
        );
    }
}

/// The generators are strong enough for the properties to mean something: over a
/// few samples per pipeline the oracle sees undecodable records, late events (where
/// there is an event time), evaluation errors (where a view divides), duplicate
/// records, and rows in every view.
#[test]
fn generated_events_exercise_every_view_and_every_kind_of_bad_data() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    for index in 0..6 {
        let pipeline = pipeline_by_index(index);
        let plan = &pipeline.plan;
        let (mut decode, mut late, mut eval, mut duplicates) = (0, 0, 0, 0);
        let mut rows: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..16 {
            let (_, events) = loop {
                let (i, events) = any_pipeline_events()
                    .new_tree(&mut runner)
                    .unwrap()
                    .current();
                if i == index {
                    break (i, events);
                }
            };
            let records = place(&pipeline.topics, &events, 3);
            duplicates += records.windows(2).filter(|w| w[0] == w[1]).count();
            let out = expected(plan, &pipeline.topics, 3, &records);
            decode += out.decode_errors;
            late += out.late;
            eval += out.errors - out.decode_errors;
            for (name, view) in out.views {
                *rows.entry(name).or_default() += view.len();
            }
        }
        let name = &plan.name;
        assert!(decode > 0, "{name}: no decode errors");
        assert!(duplicates > 0, "{name}: no duplicates");
        if plan.sources.iter().any(|s| s.event_time.is_some()) {
            assert!(late > 0, "{name}: no late events");
        }
        if ["expressions", "aggregates"].contains(&name.as_str()) {
            assert!(eval > 0, "{name}: no evaluation errors");
        }
        for (view, n) in rows {
            assert!(n > 0, "{name}: view {view} always empty");
        }
    }
}

// ---------------------------------------------------------------------------------
// The engine: versions deployed into running workers (what `kappa run` uses)
// ---------------------------------------------------------------------------------

fn engine(workers: usize, log: Arc<dyn Log>) -> kappa_dataflow::Engine {
    let communication = if workers <= 1 {
        timely::CommunicationConfig::Thread
    } else {
        timely::CommunicationConfig::Process(workers)
    };
    kappa_dataflow::Engine::start(communication, log).expect("the engine starts")
}

fn version(plan: &Plan, number: u64) -> kappa_dataflow::VersionId {
    kappa_dataflow::VersionId {
        pipeline: plan.name.clone(),
        version: number,
    }
}

/// Polls until the store's progress reaches `ends` (at most 30 s).
fn wait_caught_up(
    store: &ViewStore,
    ends: &BTreeMap<(String, u32), u64>,
) -> Result<(), TestCaseError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    // An empty log is caught up from the start, but its views (a global aggregate's
    // row over nothing) are there only from the first complete time.
    let caught_up = || {
        store.read(|s| {
            s.frontier > 0
                && ends
                    .iter()
                    .all(|(key, end)| s.offsets.get(key).is_some_and(|p| p.next_offset == *end))
        })
    };
    while !caught_up() {
        prop_assert!(Instant::now() < deadline, "did not catch up in 30 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Stops an engine, failing (instead of hanging) when it does not stop in 30 s.
fn shut_down(engine: kappa_dataflow::Engine) -> bool {
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(engine.shutdown().is_ok()));
    stopped.recv_timeout(Duration::from_secs(30)) == Ok(true)
}

proptest! {
    #![proptest_config(cases(8))]

    /// Two versions of one pipeline deployed into a running engine, the second after
    /// more records arrived, both following the log: each equals the oracle once
    /// caught up, and the engine shuts down.
    #[test]
    fn engine_versions_match_oracle(
        (index, events) in any_pipeline_events(),
        workers in workers(),
        partitions in partitions(),
        batch in batch(),
        split in 0.0f64..1.0,
    ) {
        let pipeline = pipeline_by_index(index);
        let plan = &pipeline.plan;
        let records = place(&pipeline.topics, &events, partitions);
        let want = expected(plan, &pipeline.topics, partitions, &records);
        let log = memlog(&pipeline.topics, partitions);
        let (before, after) = records.split_at((records.len() as f64 * split) as usize);
        append(log.as_ref(), before);
        let engine = engine(workers, log.clone());
        let source = config(workers, batch, false, false).source;
        let first = engine.deploy(version(plan, 1), plan, source.clone(), false);
        append(log.as_ref(), after);
        let second = engine.deploy(version(plan, 2), plan, source, true);
        for (number, store) in [(1, &first), (2, &second)] {
            wait_caught_up(store, &want.next_offsets)?;
            let got = observe(plan, store);
            assert_outcome(&got, &want, &format!("engine version {number}, {workers} workers, {partitions} partitions, batch {batch}"))?;
        }
        prop_assert!(shut_down(engine), "the engine did not shut down");
    }
}

/// Regression: `Engine::shutdown` with a version following the log hung forever
/// (timely steps a worker's dataflows until they complete after its closure
/// returns, and a following source never does), so `kappa run` / `kappa serve`
/// ignored SIGTERM.
#[test]
fn engine_shutdown_with_a_following_version_returns() {
    let pipeline = shipped("wordcount.sql");
    for workers in [1, 2] {
        let log = memlog(&pipeline.topics, 3);
        let engine = engine(workers, log.clone());
        let store = engine.deploy(
            version(&pipeline.plan, 1),
            &pipeline.plan,
            config(workers, 8, false, false).source,
            false,
        );
        append(
            log.as_ref(),
            &[("lines".into(), 2, r#"{"line":"a b a"}"#.into())],
        );
        wait_caught_up(&store, &BTreeMap::from([(("lines".into(), 2), 1)])).unwrap();
        assert!(shut_down(engine), "shutdown with {workers} workers");
    }
}
