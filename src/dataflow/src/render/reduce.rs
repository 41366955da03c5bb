//! `GROUP BY` with aggregates, in differential's incremental forms.
//!
//! Aggregates are split by how they can be maintained:
//! - *accumulable* ones (`COUNT(*)`, `COUNT(x)`, `SUM`, `AVG`) become one vector
//!   of integer diffs per row ([`Accums`]) whose running totals per key are kept
//!   in a hash map ([`totals`], `count_total`'s output without its arrangement): work
//!   is proportional to the changes, never to the size of a group, and rows of a
//!   batch are pre-aggregated per key before they reach it ([`keyed`]);
//! - `DISTINCT` aggregates first make `(key, value)` distinct, then accumulate into
//!   the same vector (so `COUNT(DISTINCT x)` needs no per-key merge);
//! - `MIN`/`MAX` use `reduce` over `(key, value)`.
//!
//! With more than one part, the parts' values are assembled per key by one small
//! `reduce`. A global aggregate (no key) always has one row, as in SQL.
//!
//! Keys are [`PackedRow`]s inside the arrangements: sorting and merging batches and
//! seeking keys in traces compare a precomputed 64-bit hash first, and a few
//! inline bytes only when the hashes tie. One pass evaluates the packed key and
//! the aggregates' arguments of each row, without building a projected row. When every accumulable aggregate is a row count, the
//! diff is a plain `isize` rather than an [`Accums`] vector (no allocation per row).

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use differential_dataflow::operators::ThresholdTotal;
use std::cell::RefCell;
use std::rc::Rc;

use differential_dataflow::{AsCollection, VecCollection};
use kappa_sql::aggregate::{accumulate, finish};
use kappa_sql::expr::Expr;
use kappa_sql::plan::{AggFunc, Aggregate, Column};
use kappa_sql::{Row, ScalarType, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::ToStream;
use timely::dataflow::Scope;

use super::fused::RowStage;
use super::keyed::{self, Contribution, KeyPlan, KeyStage, Keyed, RowCount};
use super::packed::{LastUnpacked, PackedRow};
use super::{distinct, totals};
use super::{pack_rows, Errors, PackedRows, Rows, UpdateSizes};
use crate::{Diff, Time};

/// A vector of accumulators used as a differential diff: the row count, then per
/// accumulable aggregate its count of non-NULL arguments and their accumulated sum.
/// Inline up to one aggregate (three accumulators): a total changes at every time
/// its key does, and each change clones the old and the new total.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Accums(SmallVec<[i128; 3]>);

impl IsZero for Accums {
    fn is_zero(&self) -> bool {
        self.0.iter().all(|x| *x == 0)
    }
}
impl Semigroup for Accums {
    fn plus_equals(&mut self, rhs: &Self) {
        if self.0.len() < rhs.0.len() {
            self.0.resize(rhs.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&rhs.0) {
            *a += *b;
        }
    }
}
impl Monoid for Accums {
    fn zero() -> Self {
        Accums(SmallVec::new())
    }
}
impl Abelian for Accums {
    fn negate(&mut self) {
        for a in &mut self.0 {
            *a = -*a;
        }
    }
}
impl Multiply<Diff> for Accums {
    type Output = Accums;
    fn multiply(mut self, rhs: &Diff) -> Accums {
        for a in &mut self.0 {
            *a *= *rhs as i128;
        }
        self
    }
}

/// One part of a reduce: per key, `(aggregate index, value)` for the aggregates it computes.
type Part<'s> =
    differential_dataflow::VecCollection<'s, Time, (PackedRow, Vec<(usize, Value)>), Diff>;

/// How one aggregate is computed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Accumulable,
    Distinct,
    MinMax,
}

fn strategy(aggregate: &Aggregate) -> Strategy {
    match aggregate.func {
        AggFunc::Min | AggFunc::Max => Strategy::MinMax,
        _ if aggregate.distinct => Strategy::Distinct,
        _ => Strategy::Accumulable,
    }
}

/// The value of an aggregate over a group in which it saw no argument.
fn empty_value(func: AggFunc) -> Value {
    match func {
        AggFunc::Count | AggFunc::CountStar => Value::Int(0),
        _ => Value::Null,
    }
}

/// A `Reduce` node, analysed: which parts compute which aggregates.
///
/// Each row is first turned into its packed key and its aggregates' arguments by
/// a key stage ([`keyed`]), so an argument that fails to evaluate drops its row
/// into the error stream, as a projection would. The stage is either fused into a
/// source ([`Reduction::key_stage`]) or an operator of its own
/// ([`Reduction::key_operator`]); [`Reduction::render`] renders the rest.
pub(super) struct Reduction {
    node: usize,
    key: Vec<usize>,
    aggregates: Vec<Aggregate>,
    /// Accumulable and distinct aggregates: `(index, function, result type)`.
    specs: Vec<(usize, AggFunc, ScalarType)>,
    /// Per spec, whether it is a `DISTINCT` aggregate.
    distinct: Vec<bool>,
    /// `MIN`/`MAX` aggregates, by index.
    others: Vec<usize>,
    /// Every accumulable aggregate is a row count: `isize` diffs, no vector.
    counts_only: bool,
    /// Whether the accumulable part is rendered (it also witnesses that a group exists).
    sums_needed: bool,
    plan_args: bool,
}

/// The running count of each key of a reduction: `((key, count), time, diff)`.
pub(super) type Counts<'s> = VecCollection<'s, Time, (PackedRow, Diff), Diff>;

/// How a key and its count make a row of a reduction of plain counts: the key's
/// values, then each aggregate's value.
#[derive(Clone)]
pub(super) struct CountRow {
    /// Columns of the key (the aggregates' values follow).
    pub(super) width: usize,
    /// Appends the aggregates' values of a count.
    values: CountValues,
}

/// Appends the aggregates' values of a count to a row.
type CountValues = Rc<dyn Fn(Diff, &mut Row)>;

impl CountRow {
    /// Rows of keys `width` columns wide, then what `values` appends for a count.
    pub(super) fn new(width: usize, values: impl Fn(Diff, &mut Row) + 'static) -> Self {
        CountRow {
            width,
            values: Rc::new(values),
        }
    }

    /// Writes the row of `key` and `count` into `out`, replacing what it held.
    pub(super) fn write(&self, key: &PackedRow, count: Diff, out: &mut Row) {
        out.clear();
        key.unpack_into(out);
        (self.values)(count, out);
    }

    /// Writes the aggregates' values of `count` (the row's columns from `width` on)
    /// into `out`, replacing what it held.
    pub(super) fn write_values(&self, count: Diff, out: &mut Row) {
        out.clear();
        (self.values)(count, out);
    }
}

/// The key stage's outputs, by the kind of sum it computes.
pub(super) enum KeyedInput<'s> {
    Counts(Keyed<'s, Diff>),
    Accums(Keyed<'s, Accums>),
}

/// The accumulable aggregates' contribution of a row: the row count, then per
/// aggregate its count of non-NULL arguments and their accumulated sum.
pub(super) struct AccumsContribution {
    specs: Vec<(usize, AggFunc, ScalarType)>,
    distinct: Vec<bool>,
}

impl Contribution for AccumsContribution {
    type Sum = Accums;
    fn add(&self, sum: &mut Accums, args: &[Value], diff: Diff) {
        let acc = &mut sum.0;
        if acc.len() < 1 + 2 * self.specs.len() {
            acc.resize(1 + 2 * self.specs.len(), 0);
        }
        let diff = diff as i128;
        acc[0] += diff;
        for (slot, ((i, func, ty), distinct)) in self.specs.iter().zip(&self.distinct).enumerate() {
            let v = &args[*i];
            let (count, value) = match func {
                // Distinct aggregates accumulate from their own distinct pairs.
                _ if *distinct => continue,
                AggFunc::CountStar => (1, 0),
                _ if v.is_null() => continue,
                _ => (1, accumulate(*func, *ty, v)),
            };
            acc[1 + 2 * slot] += count * diff;
            acc[2 + 2 * slot] += value * diff;
        }
    }
}

impl Reduction {
    pub(super) fn new(
        node: usize,
        input_columns: &[Column],
        key: &[usize],
        aggregates: &[Aggregate],
        output_columns: &[Column],
    ) -> Self {
        let width = key.len();
        let result_types: Vec<ScalarType> = output_columns[width..].iter().map(|c| c.ty).collect();
        let arg_nullable: Vec<bool> = aggregates
            .iter()
            .map(|a| match &a.arg {
                Expr::Column(c) => input_columns[*c].nullable,
                Expr::Literal(v) => v.is_null(),
                _ => true,
            })
            .collect();
        // `DISTINCT` aggregates accumulate too, from their own distinct `(key, value)`
        // collections, into the same vector: one `count_total`, no per-key merge.
        let accumulable: Vec<usize> = (0..aggregates.len())
            .filter(|i| strategy(&aggregates[*i]) != Strategy::MinMax)
            .collect();
        let others: Vec<usize> = (0..aggregates.len())
            .filter(|i| strategy(&aggregates[*i]) == Strategy::MinMax)
            .collect();
        // The accumulable part also witnesses that a group exists; it is needed unless
        // every other part is sure to have a value for every group.
        let need_existence = others.iter().any(|i| arg_nullable[*i]) || others.is_empty();
        let specs: Vec<(usize, AggFunc, ScalarType)> = accumulable
            .iter()
            .map(|i| (*i, aggregates[*i].func, result_types[*i]))
            .collect();
        let counts_only = specs.iter().all(|(i, func, _)| {
            !aggregates[*i].distinct
                && (*func == AggFunc::CountStar || (*func == AggFunc::Count && !arg_nullable[*i]))
        });
        let distinct = specs
            .iter()
            .map(|(i, _, _)| aggregates[*i].distinct)
            .collect();
        Reduction {
            node,
            key: key.to_vec(),
            aggregates: aggregates.to_vec(),
            plan_args: !counts_only || !others.is_empty(),
            sums_needed: !accumulable.is_empty() || need_existence,
            specs,
            distinct,
            others,
            counts_only,
        }
    }

    fn key_plan(&self) -> KeyPlan {
        KeyPlan {
            key: self.key.clone(),
            args: self.aggregates.iter().map(|a| a.arg.clone()).collect(),
            evaluate_args: self.plan_args,
            sums: self.sums_needed,
            distinct_args: self
                .specs
                .iter()
                .zip(&self.distinct)
                .filter(|(_, distinct)| **distinct)
                .map(|((i, _, _), _)| *i)
                .collect(),
            rows: !self.others.is_empty(),
        }
    }

    fn accums(&self) -> AccumsContribution {
        AccumsContribution {
            specs: self.specs.clone(),
            distinct: self.distinct.clone(),
        }
    }

    /// The key stage as ports of `builder`, for a source operator that feeds it the
    /// rows of a monotonic (insert-only) collection.
    pub(super) fn key_stage<'s>(
        &self,
        builder: &mut OperatorBuilder<'s, Time>,
    ) -> (Box<dyn RowStage>, KeyedInput<'s>) {
        if self.counts_only {
            let (stage, mut keyed) = KeyStage::new(builder, self.node, self.key_plan(), RowCount);
            keyed.monotonic = true;
            (Box::new(stage), KeyedInput::Counts(keyed))
        } else {
            let (stage, mut keyed) =
                KeyStage::new(builder, self.node, self.key_plan(), self.accums());
            keyed.monotonic = true;
            (Box::new(stage), KeyedInput::Accums(keyed))
        }
    }

    /// The key stage as an operator of its own over `rows`.
    pub(super) fn key_operator<'s>(&self, rows: Rows<'s>) -> (KeyedInput<'s>, Errors<'s>) {
        if self.counts_only {
            let (keyed, errors) = keyed::keyed(rows, self.node, self.key_plan(), RowCount);
            (KeyedInput::Counts(keyed), errors)
        } else {
            let (keyed, errors) = keyed::keyed(rows, self.node, self.key_plan(), self.accums());
            (KeyedInput::Accums(keyed), errors)
        }
    }

    /// Appends the aggregates' values of a group whose accumulators are `acc` (for
    /// plain counts, the row count alone) to `out`.
    fn finisher(&self) -> impl Fn(&[i128], &mut Row) + Clone + 'static {
        let specs = self.specs.clone();
        let counts_only = self.counts_only;
        move |acc: &[i128], out: &mut Row| {
            for (slot, (_, func, ty)) in specs.iter().enumerate() {
                // A plain count carries only the row count, which is every count's
                // value in that case.
                let (count, sum) = if counts_only {
                    (acc[0], 0)
                } else {
                    (acc[1 + 2 * slot], acc[2 + 2 * slot])
                };
                let count = i64::try_from(count).unwrap_or(i64::MAX);
                out.push(finish(*func, *ty, sum, count));
            }
        }
    }

    /// Whether the rows are a key's values followed by row counts only (`COUNT(*)`,
    /// no `DISTINCT`, no `MIN`/`MAX`, a non-empty key): a top-k over them can rank
    /// the running counts themselves ([`Reduction::render_counts`]).
    pub(super) fn is_plain_counts(&self) -> bool {
        self.counts_only && self.others.is_empty() && !self.key.is_empty()
    }

    /// For [`Reduction::is_plain_counts`] reductions: the running count of each key,
    /// `(key, count)` (what [`Reduction::render`] makes rows of), and how a key and
    /// its count become the row.
    pub(super) fn render_counts<'s>(
        &self,
        scope: Scope<'s, Time>,
        sizes: &UpdateSizes,
        keyed: KeyedInput<'s>,
    ) -> (Counts<'s>, CountRow) {
        let ReduceOutput::Totals {
            totals: Totals::Counts(counts),
            finish,
        } = self.render(scope, sizes, keyed)
        else {
            unreachable!("a reduction of plain counts renders its running counts")
        };
        let count_row = CountRow::new(self.key.len(), move |count, out: &mut Row| {
            finish(&[count as i128], out)
        });
        (counts, count_row)
    }

    /// Renders the reduce after its key stage.
    pub(super) fn render<'s>(
        &self,
        scope: Scope<'s, Time>,
        sizes: &UpdateSizes,
        keyed: KeyedInput<'s>,
    ) -> ReduceOutput<'s> {
        let node = self.node;
        let width = self.key.len();
        // With no MIN/MAX, the accumulable part computes every aggregate, in order,
        // and its output becomes the view's rows in one step.
        let single_part = self.others.is_empty();
        let finish_values = self.finisher();
        let slots: Vec<usize> = self.specs.iter().map(|(i, _, _)| *i).collect();
        let as_part = {
            let finish_values = finish_values.clone();
            move |key: PackedRow, acc: &[i128]| {
                let mut values = Row::with_capacity(slots.len());
                finish_values(acc, &mut values);
                (key, slots.iter().copied().zip(values).collect::<Vec<_>>())
            }
        };

        let mut parts: Vec<Part<'s>> = Vec::new();
        let (single, projected): (Option<Totals<'s>>, _) = match keyed {
            KeyedInput::Counts(keyed) => {
                let counted = totals::count_total(keyed.sums, &format!("Count %{node}"), sizes);
                let single = if single_part {
                    Some(Totals::Counts(counted))
                } else {
                    if self.sums_needed {
                        parts.push(counted.map(move |(key, n)| as_part(key, &[n as i128])));
                    }
                    None
                };
                (single, keyed.rows)
            }
            KeyedInput::Accums(keyed) => {
                let mut inputs = vec![keyed.sums];
                let distinct_specs = self
                    .specs
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(slot, _)| self.distinct[*slot]);
                for (pairs, (slot, (_, func, ty))) in keyed.distinct.into_iter().zip(distinct_specs)
                {
                    let slots = self.specs.len();
                    // Each new distinct value adds one to its key's count: summed per
                    // key before the accumulating arrangement, not one update per value.
                    let add = move |pair: &PackedRow, sum: &mut Accums, diff: Diff| {
                        let acc = &mut sum.0;
                        if acc.len() < 1 + 2 * slots {
                            acc.resize(1 + 2 * slots, 0);
                        }
                        acc[1 + 2 * slot] += diff as i128;
                        // A count needs no value: the pair's bytes are not decoded.
                        if func != AggFunc::Count {
                            let v = pair.split_last(width).1;
                            acc[2 + 2 * slot] += accumulate(func, ty, &v) * diff as i128;
                        }
                    };
                    let key = move |pair: &PackedRow| pair.prefix(width);
                    let name = format!("Distinct %{node}.{slot}");
                    inputs.push(if keyed.monotonic {
                        distinct::monotonic_distinct_sums(pairs, &name, sizes, key, add)
                    } else {
                        let distinct = sizes.arrange_by_self(pairs, &name).distinct_total();
                        let name = format!("Sum distinct %{node}.{slot}");
                        keyed::sum_by_key(distinct, &name, key, add)
                    });
                }
                let all = differential_dataflow::collection::concatenate(scope, inputs);
                let counted = totals::count_total(all, &format!("Accumulate %{node}"), sizes);
                let single = if single_part {
                    Some(Totals::Accums(counted))
                } else {
                    parts.push(
                        counted.map(move |(key, acc): (PackedRow, Accums)| as_part(key, &acc.0)),
                    );
                    None
                };
                (single, keyed.rows)
            }
        };
        let funcs: Vec<AggFunc> = self.aggregates.iter().map(|a| a.func).collect();
        if let Some(totals) = single {
            let finish: Finisher = Rc::new(finish_values);
            let output = ReduceOutput::Totals { totals, finish };
            return if self.key.is_empty() {
                ReduceOutput::Rows(with_default_row(scope, output.rows(), &funcs))
            } else {
                output
            };
        }
        for &i in &self.others {
            let aggregate = &self.aggregates[i];
            let func = aggregate.func;
            let values = projected
                .clone()
                .flat_map(move |(key, mut args): (PackedRow, Row)| {
                    let v = std::mem::replace(&mut args[i], Value::Null);
                    (!v.is_null()).then_some((key, v))
                });
            let part = match strategy(aggregate) {
                Strategy::MinMax => values
                    .reduce(
                        move |_key, vals: &[(&Value, Diff)], out: &mut Vec<(Value, Diff)>| {
                            // Values arrive sorted; every one present has a positive count.
                            let pick = if func == AggFunc::Min {
                                vals.first()
                            } else {
                                vals.last()
                            };
                            if let Some((v, _)) = pick {
                                out.push(((*v).clone(), 1));
                            }
                        },
                    )
                    .map(move |(key, v)| (key, vec![(i, v)])),
                Strategy::Accumulable | Strategy::Distinct => {
                    unreachable!("accumulable and distinct aggregates are rendered above")
                }
            };
            parts.push(part);
        }

        let grouped: Rows<'s> = {
            let mut all = parts.pop().expect("a MIN/MAX part");
            for part in parts {
                all = all.concat(part);
            }
            let funcs = funcs.clone();
            all.reduce(
                move |_key, parts: &[(&Vec<(usize, Value)>, Diff)], out: &mut Vec<(Row, Diff)>| {
                    let mut values: Vec<Value> = funcs.iter().map(|f| empty_value(*f)).collect();
                    for (part, _) in parts {
                        for (i, v) in part.iter() {
                            values[*i] = v.clone();
                        }
                    }
                    out.push((values, 1));
                },
            )
            .map(|(key, values)| {
                let mut row = key.unpack();
                row.extend(values);
                row
            })
        };

        ReduceOutput::Rows(if self.key.is_empty() {
            with_default_row(scope, grouped, &funcs)
        } else {
            grouped
        })
    }
}

/// A single-part reduction's running totals per key, before they become rows.
pub(super) enum Totals<'s> {
    Counts(VecCollection<'s, Time, (PackedRow, Diff), Diff>),
    Accums(VecCollection<'s, Time, (PackedRow, Accums), Diff>),
}

/// Appends the aggregates' values of a key's accumulators to a row.
type Finisher = Rc<dyn Fn(&[i128], &mut Row)>;

/// A rendered reduction: its rows, or (one part, a key) its running totals, from
/// which rows or packed rows are made as their readers need them.
pub(super) enum ReduceOutput<'s> {
    Rows(Rows<'s>),
    Totals {
        totals: Totals<'s>,
        finish: Finisher,
    },
}

impl<'s> ReduceOutput<'s> {
    /// The reduction's rows.
    pub(super) fn rows(&self) -> Rows<'s> {
        match self {
            ReduceOutput::Rows(rows) => rows.clone(),
            ReduceOutput::Totals { totals, finish } => {
                let (finish, keys) = (finish.clone(), LastUnpacked::default());
                match totals {
                    Totals::Counts(counts) => counts.clone().map(move |(key, n)| {
                        let mut row = keys.unpack(key, 1);
                        finish(&[n as i128], &mut row);
                        row
                    }),
                    Totals::Accums(accums) => accums.clone().map(move |(key, acc)| {
                        let mut row = keys.unpack(key, acc.0.len());
                        finish(&acc.0, &mut row);
                        row
                    }),
                }
            }
        }
    }

    /// The reduction's rows, packed (for the view store): from totals, the key's
    /// bytes and the aggregates' values, without decoding the key.
    pub(super) fn packed(&self) -> PackedRows<'s> {
        match self {
            ReduceOutput::Rows(rows) => pack_rows(rows.clone()),
            ReduceOutput::Totals { totals, finish } => {
                let (finish, values) = (finish.clone(), RefCell::new(Row::new()));
                let packed = move |key: PackedRow, acc: &[i128]| {
                    let mut values = values.borrow_mut();
                    values.clear();
                    finish(acc, &mut values);
                    key.extended(&values)
                };
                match totals {
                    Totals::Counts(counts) => counts
                        .clone()
                        .map(move |(key, n)| packed(key, &[n as i128])),
                    Totals::Accums(accums) => {
                        accums.clone().map(move |(key, acc)| packed(key, &acc.0))
                    }
                }
            }
        }
    }
}

/// Adds the row a global aggregate has over no input (`COUNT` 0, others NULL)
/// whenever the aggregate has no row of its own.
fn with_default_row<'s>(scope: Scope<'s, Time>, grouped: Rows<'s>, funcs: &[AggFunc]) -> Rows<'s> {
    let default: Row = funcs.iter().map(|f| empty_value(*f)).collect();
    let seed = if scope.index() == 0 {
        vec![((), 0 as Time, 1 as Diff)]
    } else {
        vec![]
    };
    let always = seed.to_stream(scope).as_collection();
    let present = grouped.clone().map(|_| ()).distinct_total();
    let missing = always.concat(present.negate());
    grouped.concat(missing.map(move |()| default.clone()))
}
