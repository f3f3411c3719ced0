//! Prometheus metrics: every name the brief promises, in one registry per
//! daemon (so tests can run several daemons in one process).
//!
//! Input: engine [`Event`]s after their commit, ingest and commit timings,
//! live-state gauges. Output: the text exposition at `/metrics`. Counters are
//! bumped only after the state they count is durable, so a rejected or failed
//! batch is never counted as received.
//!
//! Standard metrics: `incidentd_build_info{version,revision}`, the
//! `process_*` family (Linux), and the reload status under Alertmanager's
//! names (`incidentd_config_last_reload_successful`,
//! `incidentd_config_last_reload_success_timestamp_seconds`). Every label
//! set known in advance (sources, reasons, priorities, categories, SLA
//! kinds, outcomes; and the actions and escalation levels of the loaded
//! rules, see [`Metrics::start_rules_at_zero`]) is exported at 0 from the
//! start, so `rate()` and `absent()` see a series before its first event.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::Event;
use crate::model::{AttemptOutcome, Direction, Priority, Reason, SlaKind, Source, CATEGORIES};
use crate::rules::actions::ACTION_KINDS;

/// The version this binary was built from (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit this binary was built from (`build.rs`: `git rev-parse`, or
/// `INCIDENTD_REVISION` at build time; `unknown` outside a checkout).
pub const REVISION: &str = env!("INCIDENTD_REVISION");

/// The `reason` label values of `incidentd_requests_rejected_total`.
pub const REJECT_REASONS: [&str; 5] = [
    "invalid",
    "too_large",
    "overloaded",
    "unavailable",
    "client_gone",
];

/// All metrics of one daemon.
pub struct Metrics {
    registry: Registry,
    pub alerts_received: IntCounterVec,
    pub alerts_deduplicated: IntCounter,
    pub alerts_suppressed: IntCounterVec,
    pub requests_rejected: IntCounterVec,
    pub incidents_created: IntCounterVec,
    pub incidents_open: IntGaugeVec,
    pub acknowledge_duration: HistogramVec,
    pub resolve_duration: HistogramVec,
    pub mtta: GaugeVec,
    pub mttr: GaugeVec,
    pub sla_breaches: IntCounterVec,
    pub priority_changes: IntCounterVec,
    pub ingest_batch_duration: HistogramVec,
    pub store_commit_duration: Histogram,
    pub store_commit_failures: IntCounter,
    pub store_healthy: IntGauge,
    pub retention_deleted: IntCounterVec,
    pub http_panics: IntCounter,
    pub problem_candidates: IntCounter,
    pub actions_total: IntCounterVec,
    /// Action attempts by kind (webhook, email, pagerduty, …) and outcome.
    pub actions_by_kind: IntCounterVec,
    pub action_duration: HistogramVec,
    pub escalations: IntCounterVec,
    pub pages: IntCounterVec,
    pub team_acknowledge_duration: HistogramVec,
    pub actions_held: IntCounterVec,
    pub kafka_consumer_lag: IntGaugeVec,
    pub kafka_messages_rejected: IntCounterVec,
    pub kafka_changelog_records: IntCounterVec,
    pub kafka_handovers: IntCounterVec,
    pub http_requests_denied: IntCounterVec,
    pub queue_length: IntGauge,
    pub queue_capacity: IntGauge,
    pub reload_successful: IntGauge,
    pub reload_success_timestamp: Gauge,
}

const RESPONSE_BUCKETS: &[f64] = &[
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];
const RESOLVE_BUCKETS: &[f64] = &[
    60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 604800.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // Registration only fails on duplicate or malformed names, which are
        // constants here; a failure is a programming error caught by tests.
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definition is valid");
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric names are unique");
                m
            }};
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let hist = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
        };
        let build_info = reg!(IntGaugeVec::new(
            Opts::new(
                "incidentd_build_info",
                "A metric with a constant '1' labelled by the version and the commit incidentd was built from."
            ),
            &["version", "revision"]
        ));
        build_info.with_label_values(&[VERSION, REVISION]).set(1);
        // process_* (CPU, memory, file descriptors, start time); Linux only.
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = registry.register(Box::new(process)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        let m = Metrics {
            alerts_received: reg!(counter_vec(
                "incidentd_alerts_received_total",
                "Alerts accepted and committed, by source.",
                &["source"]
            )),
            alerts_deduplicated: reg!(IntCounter::new(
                "incidentd_alerts_deduplicated_total",
                "Alert notifications that repeated a known state and changed only counters."
            )),
            alerts_suppressed: reg!(counter_vec(
                "incidentd_alerts_suppressed_total",
                "Alerts stored but kept from opening incidents, by reason.",
                &["reason"]
            )),
            requests_rejected: reg!(counter_vec(
                "incidentd_requests_rejected_total",
                "Ingest requests refused, by source and reason (invalid, too_large, overloaded, unavailable).",
                &["source", "reason"]
            )),
            incidents_created: reg!(counter_vec(
                "incidentd_incidents_created_total",
                "Incidents opened, by priority and category.",
                &["priority", "category"]
            )),
            incidents_open: reg!(IntGaugeVec::new(
                Opts::new(
                    "incidentd_incidents_open",
                    "Incidents open or acknowledged, by priority."
                ),
                &["priority"]
            )),
            acknowledge_duration: reg!(hist(
                "incidentd_incident_acknowledge_duration_seconds",
                "Time from incident creation to first acknowledgement (MTTA).",
                RESPONSE_BUCKETS,
                &["priority"]
            )),
            resolve_duration: reg!(hist(
                "incidentd_incident_resolve_duration_seconds",
                "Time from incident creation to resolution (MTTR).",
                RESOLVE_BUCKETS,
                &["priority", "category"]
            )),
            mtta: reg!(GaugeVec::new(
                Opts::new(
                    "incidentd_mtta_seconds",
                    "Mean time to acknowledge over the rolling metrics window, from the store."
                ),
                &["priority"]
            )),
            mttr: reg!(GaugeVec::new(
                Opts::new(
                    "incidentd_mttr_seconds",
                    "Mean time to resolve over the rolling metrics window, from the store."
                ),
                &["priority"]
            )),
            sla_breaches: reg!(counter_vec(
                "incidentd_sla_breaches_total",
                "SLA targets missed, by priority and kind (acknowledge, resolve).",
                &["priority", "kind"]
            )),
            priority_changes: reg!(counter_vec(
                "incidentd_incident_priority_changes_total",
                "Incidents re-prioritised, by new priority.",
                &["priority"]
            )),
            ingest_batch_duration: reg!(hist(
                "incidentd_ingest_batch_duration_seconds",
                "Time from receiving an ingest request to its durable acknowledgement.",
                LATENCY_BUCKETS,
                &["source"]
            )),
            store_commit_duration: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    "incidentd_store_commit_duration_seconds",
                    "Duration of one redb write transaction commit."
                )
                .buckets(LATENCY_BUCKETS.to_vec())
            )),
            store_commit_failures: reg!(IntCounter::new(
                "incidentd_store_commit_failures_total",
                "Write transactions that failed; their requests were answered 503."
            )),
            store_healthy: reg!(IntGauge::new(
                "incidentd_store_healthy",
                "1 while the database commits; 0 after a failed commit until it is reopened (writes answer 503 meanwhile)."
            )),
            retention_deleted: reg!(counter_vec(
                "incidentd_retention_deleted_total",
                "Rows deleted by retention, by kind (incidents, action_jobs, silences).",
                &["kind"]
            )),
            http_panics: reg!(IntCounter::new(
                "incidentd_http_handler_panics_total",
                "HTTP handlers that panicked; each was answered 500."
            )),
            actions_total: reg!(counter_vec(
                "incidentd_actions_total",
                "Action attempts, by action and outcome (success, failure, timeout).",
                &["action", "outcome"]
            )),
            actions_by_kind: reg!(counter_vec(
                "incidentd_actions_by_kind_total",
                "Action attempts, by kind (webhook, exec, kafka, email, pagerduty, redmine, alertmanager) and outcome.",
                &["kind", "outcome"]
            )),
            action_duration: reg!(hist(
                "incidentd_action_duration_seconds",
                "Duration of one action attempt.",
                LATENCY_BUCKETS,
                &["action"]
            )),
            escalations: reg!(counter_vec(
                "incidentd_escalations_total",
                "Escalation steps taken, by policy and level.",
                &["policy", "level"]
            )),
            pages: reg!(counter_vec(
                "incidentd_pages_total",
                "Escalation pages, by team and outcome (paged; nobody on call: waiting, next_level, nobody).",
                &["team", "outcome"]
            )),
            team_acknowledge_duration: reg!(hist(
                "incidentd_team_acknowledge_duration_seconds",
                "Time from incident creation to acknowledgement, by owning team (else the team paged, else the acknowledging person's).",
                RESPONSE_BUCKETS,
                &["team"]
            )),
            actions_held: reg!(counter_vec(
                "incidentd_actions_held_total",
                "Action runs held back (a major incident's child, a related incident's symptom), by action and outcome: held, then released or dropped.",
                &["action", "outcome"]
            )),
            problem_candidates: reg!(IntCounter::new(
                "incidentd_problem_candidates_total",
                "Incidents flagged as problem candidates (their group key recurred often)."
            )),
            kafka_consumer_lag: reg!(IntGaugeVec::new(
                Opts::new(
                    "incidentd_kafka_consumer_lag",
                    "Messages in an assigned partition not yet durably stored (high watermark minus stored position)."
                ),
                &["topic", "partition"]
            )),
            kafka_messages_rejected: reg!(counter_vec(
                "incidentd_kafka_messages_rejected_total",
                "Kafka messages that could not be parsed, skipped after going to the dead-letter topic if one is set, by reason (invalid, too_large, empty).",
                &["topic", "reason"]
            )),
            kafka_changelog_records: reg!(counter_vec(
                "incidentd_kafka_changelog_records_total",
                "Incident state records produced to the changelog topics, by outcome (delivered, failed; a failed record is sent again).",
                &["outcome"]
            )),
            kafka_handovers: reg!(counter_vec(
                "incidentd_kafka_incidents_handed_over_total",
                "Live incidents that moved with their partition: adopted from the changelog (in) or let go to the partition's new owner (out).",
                &["direction"]
            )),
            http_requests_denied: reg!(counter_vec(
                "incidentd_http_requests_denied_total",
                "HTTP requests refused before they reached a handler, by reason (no_credentials, bad_credentials, forbidden, cross_site, content_type).",
                &["reason"]
            )),
            queue_length: reg!(IntGauge::new(
                "incidentd_pipeline_queue_length",
                "Commands (ingest requests, operations, ticks) waiting in the writer's queue, sampled when the writer takes a batch and after it."
            )),
            queue_capacity: reg!(IntGauge::new(
                "incidentd_pipeline_queue_capacity",
                "Size of the writer's queue (pipeline.queue_capacity); ingest beyond it answers 503."
            )),
            reload_successful: reg!(IntGauge::new(
                "incidentd_config_last_reload_successful",
                "Whether the last configuration reload (rules, tokens, TLS) succeeded: 1 or 0."
            )),
            reload_success_timestamp: reg!(Gauge::new(
                "incidentd_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load (the start counts)."
            )),
            registry,
        };
        // Known label values start at zero so dashboards see them before the first event.
        for s in Source::ALL {
            m.alerts_received.with_label_values(&[s.as_str()]);
            m.ingest_batch_duration.with_label_values(&[s.as_str()]);
            for r in REJECT_REASONS {
                m.requests_rejected.with_label_values(&[s.as_str(), r]);
            }
        }
        m.store_healthy.set(1);
        for k in ["incidents", "action_jobs", "silences"] {
            m.retention_deleted.with_label_values(&[k]);
        }
        for o in ["delivered", "failed"] {
            m.kafka_changelog_records.with_label_values(&[o]);
        }
        for d in Direction::ALL {
            m.kafka_handovers.with_label_values(&[d.as_str()]);
        }
        for r in Reason::ALL {
            m.alerts_suppressed.with_label_values(&[r.as_str()]);
        }
        for k in ACTION_KINDS {
            for o in AttemptOutcome::ALL {
                m.actions_by_kind.with_label_values(&[k, o.as_str()]);
            }
        }
        for p in Priority::ALL {
            m.incidents_open.with_label_values(&[p.as_str()]).set(0);
            for k in SlaKind::ALL {
                m.sla_breaches.with_label_values(&[p.as_str(), k.as_str()]);
            }
            m.acknowledge_duration.with_label_values(&[p.as_str()]);
            m.priority_changes.with_label_values(&[p.as_str()]);
            for c in CATEGORIES {
                m.incidents_created.with_label_values(&[p.as_str(), c]);
                m.resolve_duration.with_label_values(&[p.as_str(), c]);
            }
        }
        m
    }

    /// Starts the series of the loaded rules' actions (every outcome) and
    /// escalation levels at zero; called at start and after every rule
    /// reload (series of actions no longer in the rules stay).
    pub fn start_rules_at_zero<'a>(
        &self,
        actions: impl IntoIterator<Item = &'a str>,
        escalations: impl IntoIterator<Item = (&'a str, usize)>,
    ) {
        for a in actions {
            self.action_duration.with_label_values(&[a]);
            for o in AttemptOutcome::ALL {
                self.actions_total.with_label_values(&[a, o.as_str()]);
            }
        }
        for (policy, levels) in escalations {
            for level in 1..=levels {
                self.escalations
                    .with_label_values(&[policy, &level.to_string()]);
            }
        }
    }

    /// Records a configuration load: at start and after every reload. A
    /// failed reload keeps the previous success time.
    pub fn config_loaded(&self, ok: bool, at: chrono::DateTime<chrono::Utc>) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_timestamp
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// Counts committed engine events.
    pub fn record(&self, events: &[Event]) {
        for e in events {
            match e {
                Event::Deduplicated => self.alerts_deduplicated.inc(),
                Event::Created { priority, category } => self
                    .incidents_created
                    .with_label_values(&[priority.as_str(), category])
                    .inc(),
                Event::Acknowledged { priority, seconds } => self
                    .acknowledge_duration
                    .with_label_values(&[priority.as_str()])
                    .observe(*seconds),
                Event::Resolved {
                    priority,
                    category,
                    seconds,
                } => self
                    .resolve_duration
                    .with_label_values(&[priority.as_str(), category])
                    .observe(*seconds),
                Event::SlaBreached { priority, kind } => self
                    .sla_breaches
                    .with_label_values(&[priority.as_str(), kind.as_str()])
                    .inc(),
                Event::PriorityChanged { to, .. } => self
                    .priority_changes
                    .with_label_values(&[to.as_str()])
                    .inc(),
                Event::Suppressed { reason } => self
                    .alerts_suppressed
                    .with_label_values(&[reason.as_str()])
                    .inc(),
                Event::ProblemCandidate => self.problem_candidates.inc(),
                Event::Escalated { policy, level } => self
                    .escalations
                    .with_label_values(&[policy.as_str(), &level.to_string()])
                    .inc(),
                Event::Paged { team, outcome } => self
                    .pages
                    .with_label_values(&[team.as_str(), outcome])
                    .inc(),
                Event::TeamAcknowledged { team, seconds } => self
                    .team_acknowledge_duration
                    .with_label_values(&[team.as_str()])
                    .observe(*seconds),
                Event::ActionHeld { action, outcome } => self
                    .actions_held
                    .with_label_values(&[action.as_str(), outcome])
                    .inc(),
                Event::Reopened | Event::Closed => {}
            }
        }
    }

    /// Sets the live-state gauges.
    pub fn set_state(&self, open: [u64; 5], means: [[Option<f64>; 5]; 2]) {
        for p in Priority::ALL {
            let label = [p.as_str()];
            self.incidents_open
                .with_label_values(&label)
                .set(i64::try_from(open[p.idx()]).unwrap_or(i64::MAX));
            for (gauge, mean) in [
                (&self.mtta, means[0][p.idx()]),
                (&self.mttr, means[1][p.idx()]),
            ] {
                match mean {
                    Some(v) => gauge.with_label_values(&label).set(v),
                    None => {
                        let _ = gauge.remove_label_values(&label);
                    }
                }
            }
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
