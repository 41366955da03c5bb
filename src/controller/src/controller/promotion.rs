//! Promotion: moving a pipeline from one version to another. Both versions are held
//! at the same log offsets, compared view by view (the [`Gate`] may refuse), and the
//! pipeline's changelog topics are cut over to the new version at exactly those
//! offsets; a rollback is a promotion of the most recent draining version.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kappa_dataflow::engine::VersionId;
use kappa_dataflow::store::ViewStore;
use kappa_sql::plan::Plan;
use serde::Serialize;

use super::{column_names, transition, Controller, Inner};
use crate::changelog::{view_state, TopicSink};
use crate::diff::{diff_view, Side, ViewDiff};
use crate::error::{ControllerError, LookupError};
use crate::states::VersionState;

/// What a promotion must respect.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    /// Refuse when more rows than this are added, removed or changed over all views.
    pub max_changed_rows: Option<u64>,
    /// Refuse unless these views are identical in both versions.
    pub require_identical: Vec<String>,
}

/// The outcome of a promotion.
#[derive(Clone, Debug, Serialize)]
pub struct PromoteReport {
    /// The pipeline.
    pub pipeline: String,
    /// The version promoted.
    pub version: u64,
    /// The version it replaced.
    pub previous: Option<u64>,
    /// Per-view differences at the cutover offsets.
    pub diff: Vec<ViewDiff>,
    /// Changes appended to the pipeline's changelog topics at the cutover.
    pub changelog_changes: usize,
}

impl Controller {
    /// Points the pipeline's changelog topics at `id`: appends the difference between
    /// what they say and the version's current state, then follows it.
    pub(super) fn cut_over(
        &self,
        inner: &mut Inner,
        id: &VersionId,
    ) -> Result<usize, ControllerError> {
        let running = &inner.running[id];
        let (states, seq, frontier) = running.store.read(|s| {
            let states: BTreeMap<String, (Vec<String>, BTreeMap<String, i64>)> = running
                .plan
                .views
                .iter()
                .enumerate()
                .map(|(i, def)| {
                    let columns = column_names(&running.plan, i);
                    let state = view_state(&columns, &s.views[i]);
                    (def.name.clone(), (columns, state))
                })
                .collect();
            (states, s.seq, s.frontier)
        });
        let main = inner.main.entry(id.pipeline.clone()).or_default();
        let mut appended = 0;
        for (view, (columns, _)) in &states {
            if !main.sinks.contains_key(view) {
                let topic = format!("{}.{view}", id.pipeline);
                main.sinks.insert(
                    view.clone(),
                    TopicSink::open(self.log.as_ref(), topic, columns.clone())?,
                );
            }
        }
        let empty = BTreeMap::new();
        for (view, sink) in main.sinks.iter_mut() {
            // A view the new version no longer has is retracted from its topic.
            let target = states.get(view).map_or(&empty, |(_, state)| state);
            appended += sink.reconcile(self.log.as_ref(), target, frontier, id.version)?;
        }
        main.followed = Some((id.version, seq));
        Ok(appended)
    }

    /// Stops both versions' sources at the same offsets and waits until both have
    /// applied exactly those offsets.
    fn hold_together(&self, a: &VersionId, b: &VersionId) -> Result<(), ControllerError> {
        let (plans, stores) = {
            let inner = self.lock();
            let get = |id: &VersionId| {
                inner
                    .running
                    .get(id)
                    .map(|r| (r.plan.clone(), r.store.clone()))
                    .ok_or_else(|| LookupError::UnknownVersion(id.pipeline.clone(), id.version))
            };
            let (pa, sa) = get(a)?;
            let (pb, sb) = get(b)?;
            ([pa, pb], [sa, sb])
        };
        let mut offsets = BTreeMap::new();
        for plan in &plans {
            for source in &plan.sources {
                for partition in 0..self.log.partition_count(&source.topic)? {
                    offsets.insert(
                        (source.topic.clone(), partition),
                        self.log.end_offset(&source.topic, partition)?,
                    );
                }
            }
        }
        self.engine.hold(a, Some(offsets.clone()));
        self.engine.hold(b, Some(offsets.clone()));
        let deadline = Instant::now() + self.config.hold_timeout;
        loop {
            let reached = |store: &ViewStore, plan: &Plan| {
                store.read(|s| {
                    plan.sources.iter().all(|source| {
                        offsets
                            .iter()
                            .filter(|((topic, _), _)| *topic == source.topic)
                            .all(|(key, end)| {
                                s.offsets.get(key).map_or(0, |p| p.next_offset) == *end
                            })
                    })
                })
            };
            if reached(&stores[0], &plans[0]) && reached(&stores[1], &plans[1]) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.release(a, b);
                return Err(ControllerError::Timeout(format!(
                    "{a} and {b} did not reach the same log offsets within {:?}",
                    self.config.hold_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn release(&self, a: &VersionId, b: &VersionId) {
        self.engine.hold(a, None);
        self.engine.hold(b, None);
    }

    /// Compares every view present in both versions, at the same log offsets.
    pub fn diff(
        &self,
        pipeline: &str,
        old: u64,
        new: u64,
        view: Option<&str>,
    ) -> Result<Vec<ViewDiff>, ControllerError> {
        let _admin = self.admin.lock().expect("admin lock");
        let (a, b) = (
            VersionId {
                pipeline: pipeline.into(),
                version: old,
            },
            VersionId {
                pipeline: pipeline.into(),
                version: new,
            },
        );
        self.hold_together(&a, &b)?;
        let result = self.compare(&a, &b, view);
        self.release(&a, &b);
        result
    }

    fn compare(
        &self,
        a: &VersionId,
        b: &VersionId,
        only: Option<&str>,
    ) -> Result<Vec<ViewDiff>, ControllerError> {
        let inner = self.lock();
        let (ra, rb) = (&inner.running[a], &inner.running[b]);
        let mut diffs = Vec::new();
        for (i, def) in ra.plan.views.iter().enumerate() {
            if only.is_some_and(|v| v != def.name) {
                continue;
            }
            let Some(j) = rb.plan.views.iter().position(|v| v.name == def.name) else {
                continue;
            };
            let (ca, cb) = (column_names(&ra.plan, i), column_names(&rb.plan, j));
            let diff = ra.store.read(|sa| {
                rb.store.read(|sb| {
                    diff_view(
                        &def.name,
                        Side {
                            columns: &ca,
                            key: &def.key,
                            contents: &sa.views[i],
                        },
                        Side {
                            columns: &cb,
                            key: &rb.plan.views[j].key,
                            contents: &sb.views[j],
                        },
                    )
                })
            });
            diffs.push(diff);
        }
        if let Some(view) = only {
            if diffs.is_empty() {
                return Err(ControllerError::InvalidState(format!(
                    "view `{view}` is not in both versions"
                )));
            }
        }
        Ok(diffs)
    }

    /// Makes `version` the active one, atomically for queries and changelog topics.
    /// With an active version, both are first held at the same log offsets, compared
    /// (the gate), and cut over at exactly those offsets.
    pub fn promote(
        &self,
        pipeline: &str,
        version: u64,
        gate: &Gate,
    ) -> Result<PromoteReport, ControllerError> {
        let _admin = self.admin.lock().expect("admin lock");
        self.promote_locked(pipeline, version, gate, false)
    }

    fn promote_locked(
        &self,
        pipeline: &str,
        version: u64,
        gate: &Gate,
        rollback: bool,
    ) -> Result<PromoteReport, ControllerError> {
        let id = VersionId {
            pipeline: pipeline.into(),
            version,
        };
        let previous = {
            let mut inner = self.lock();
            let active = inner.catalog.pipelines.get(pipeline).and_then(|p| p.active);
            let record_state = Self::record_mut(&mut inner, &id)?.state;
            let ready = inner
                .running
                .get(&id)
                .is_some_and(|r| r.version.is_caught_up());
            if active == Some(version) {
                return Err(ControllerError::InvalidState(format!(
                    "{id} is already active"
                )));
            }
            if !record_state.can_become(VersionState::Active) || !ready {
                return Err(ControllerError::InvalidState(format!(
                    "{id} is {record_state}{}; only a caught-up version can be promoted",
                    if ready { "" } else { " and not caught up" }
                )));
            }
            active
        };
        let previous_id = previous.map(|v| VersionId {
            pipeline: pipeline.into(),
            version: v,
        });
        let mut diff = Vec::new();
        if let Some(old) = &previous_id {
            self.hold_together(old, &id)?;
            diff = match self.compare(old, &id, None) {
                Ok(d) => d,
                Err(e) => {
                    self.release(old, &id);
                    return Err(e);
                }
            };
            let total: u64 = diff.iter().map(ViewDiff::total).sum();
            self.count(pipeline, |c| c.last_diff_rows = total);
            let mut refusal = None;
            if let Some(budget) = gate.max_changed_rows {
                if total > budget {
                    refusal = Some(format!(
                        "{total} rows differ, more than the budget of {budget}"
                    ));
                }
            }
            for view in &gate.require_identical {
                match diff.iter().find(|d| &d.view == view) {
                    Some(d) if !d.is_identical() => {
                        refusal = Some(format!(
                            "view `{view}` differs ({} added, {} removed, {} changed)",
                            d.added, d.removed, d.changed
                        ))
                    }
                    None => refusal = Some(format!("view `{view}` is not in both versions")),
                    _ => {}
                }
            }
            if let Some(reason) = refusal {
                self.release(old, &id);
                self.count(pipeline, |c| c.gate_refusals += 1);
                return Err(ControllerError::GateRefused(reason));
            }
        }
        let changelog_changes = {
            let mut inner = self.lock();
            if let Some(old) = &previous_id {
                transition(
                    Self::record_mut(&mut inner, old)?,
                    VersionState::Draining,
                    &format!("v{version} promoted"),
                );
            }
            let reason = if rollback {
                "rolled back to"
            } else {
                "promoted"
            };
            transition(
                Self::record_mut(&mut inner, &id)?,
                VersionState::Active,
                reason,
            );
            inner
                .catalog
                .pipelines
                .get_mut(pipeline)
                .expect("pipeline in catalog")
                .active = Some(version);
            // Durable first: after a crash the catalog names the new active version and
            // its changelog topics are reconciled to it once it has caught up again.
            self.save(&inner)?;
            self.registry.activate(pipeline, version)?;
            self.engine.throttle(&id, false);
            // Drain the new version's pending batches into its own topics first, so the
            // cutover's sequence number is the latest.
            self.pump(&mut inner, &id)?;
            if let Some(old) = &previous_id {
                self.pump(&mut inner, old)?;
            }
            self.cut_over(&mut inner, &id)?
        };
        if let Some(old) = &previous_id {
            self.release(old, &id);
        }
        self.count(pipeline, |c| {
            if rollback {
                c.rollbacks += 1;
            } else {
                c.promotions += 1;
            }
        });
        self.enforce_retention(pipeline)?;
        tracing::info!(%id, ?previous, "promoted");
        Ok(PromoteReport {
            pipeline: pipeline.into(),
            version,
            previous,
            diff,
            changelog_changes,
        })
    }

    /// Re-activates the most recent draining version of `pipeline`.
    pub fn rollback(&self, pipeline: &str) -> Result<PromoteReport, ControllerError> {
        let _admin = self.admin.lock().expect("admin lock");
        let target = {
            let inner = self.lock();
            let record = inner
                .catalog
                .pipelines
                .get(pipeline)
                .ok_or_else(|| LookupError::UnknownPipeline(pipeline.into()))?;
            record
                .versions
                .values()
                .rev()
                .find(|v| v.state == VersionState::Draining)
                .map(|v| v.version)
                .ok_or_else(|| {
                    ControllerError::InvalidState(format!(
                        "pipeline `{pipeline}` has no draining version to roll back to"
                    ))
                })?
        };
        self.promote_locked(pipeline, target, &Gate::default(), true)
    }
}
