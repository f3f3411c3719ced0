//! incidentd turns monitoring alerts into managed ITIL incidents.
//!
//! # Layout
//!
//! Layers, each using only the ones above it (see `docs/architecture.md`):
//!
//! 1. [`model`]: plain domain types: labels and fingerprints, alerts,
//!    matchers, priorities, incidents and their timeline, action jobs,
//!    silences and suppressed alerts, schedule overrides and pages, signed
//!    acknowledgement links, partition ownership. No I/O.
//! 2. [`config`]: the daemon configuration and its defaults.
//! 3. [`rules`]: rule files compiled once into a [`rules::RuleSet`], with
//!    people, teams and on-call schedules ([`rules::people`]).
//! 4. [`engine`]: the synchronous core: dedup → suppress → correlate →
//!    classify and prioritise → lifecycle, timers and escalation (paging
//!    people, [`engine::paging`]); it hands
//!    a [`engine::ChangeSet`] to the store.
//! 5. [`metrics`]: the Prometheus registry; counts engine events.
//! 6. [`store`]: redb tables, row codecs, one write transaction per batch.
//! 7. [`pipeline`]: the writer thread that owns engine and store; replies
//!    only after the commit; ports for replication and action dispatch.
//! 8. Adapters: [`ingest`] (payload parsing), [`http`] (routes and
//!    handlers), [`kafka`] (source, changelog, forward), [`actions`] (the
//!    executor: webhook, exec, kafka, email, pagerduty), [`tools`] (replay, rule tests and
//!    their coverage, explaining an alert), [`client`] (the command-line
//!    client of a running daemon: `incidentd incidents|silences ...`).
//! 9. [`daemon`]: starts and stops it all (`serve`, `forward`).
//!
//! An alert's path: [`http::ingest`] → [`ingest::parse`] →
//! [`pipeline::Handle::ingest`] → [`pipeline::writer`] →
//! [`engine::Engine::ingest`] → [`engine::Engine::take_changes`] →
//! [`store::Store::commit`] → the reply → `200`.

#![deny(rustdoc::broken_intra_doc_links)]

pub mod model;

pub mod config;

pub mod rules;

pub mod engine;

pub mod metrics;

pub mod store;

pub mod pipeline;

pub mod actions;
pub mod client;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod tools;

pub mod daemon;
