//! incidentd turns monitoring alerts into managed ITIL incidents.
//!
//! # Layout
//!
//! An alert's path through the crate, in order:
//!
//! - [`api`] — HTTP: ingest endpoints, the incident API, `/metrics`, health.
//! - [`ingest`] — parses and validates a payload (Alertmanager v2, webhook
//!   v4, generic JSON) into normalized [`alert::Alert`]s, naming any problem
//!   by JSON path.
//! - [`alert`] / [`fingerprint`] — the normalized alert and its
//!   Alertmanager-compatible fingerprint.
//! - [`kafka`] — the Kafka source: a consumer group member feeding the
//!   pipeline; offsets committed only after the alerts are durable; bad
//!   messages to a dead-letter topic. [`forward`] is the other end: HTTP
//!   receivers producing into the topic keyed by correlation group.
//! - [`pipeline`] — the bounded queue to the single writer thread; group
//!   commit; replies only after the commit (the durability ticket).
//! - [`engine`] — pure, synchronous: dedup per fingerprint → correlate by
//!   rule and group key within a window → classify and prioritise (impact ×
//!   urgency) → lifecycle and SLA timers. Produces a write set and events.
//! - [`rules`] / [`matcher`] — rule files compiled once: matchers with
//!   anchored regexes, first-match lists indexed by `alertname`, the matrix,
//!   SLA targets, title templates.
//! - [`suppress`] — silences, maintenance windows and inhibition: firing
//!   alerts kept out of incidents, with the reason.
//! - [`actions`] — automated first response: webhook and exec actions run
//!   by a bounded executor with retries; escalation policies.
//! - [`incident`] — incidents, alerts, timeline entries, lifecycle rules.
//! - [`store`] — redb tables; one write transaction per batch; restore at start.
//! - [`metrics`] — Prometheus metrics, counted after commit.
//! - [`report`] — the Markdown incident report.
//! - [`server`] / [`config`] — startup, shutdown, configuration.
//! - [`ruletest`] — `rules test`: rule unit tests on a virtual clock.
//! - [`replay`] — `replay`: a recorded alert stream through fresh rules.

pub mod actions;
pub mod alert;
pub mod api;
pub mod changelog;
pub mod config;
pub mod engine;
pub mod fingerprint;
pub mod forward;
pub mod incident;
pub mod ingest;
pub mod kafka;
pub mod matcher;
pub mod metrics;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod row;
pub mod rules;
pub mod ruletest;
pub mod server;
pub mod store;
pub mod suppress;
