//! Shared fixtures of the engine's tests: three rule sets with the clock
//! each starts at, alerts built from label pairs, and small readers of the
//! engine's output.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ChangeSet, Engine, Live, Settings};
use crate::model::labels::labels;
use crate::model::{Alert, AlertStatus, Incident, IncidentKey, OpRequest, Source};
use crate::rules::RuleSet;

/// A rule set, the auto-close delay and the instant tests count from.
pub struct Fixture {
    pub rules: &'static str,
    pub close_after: Duration,
    pub start: &'static str,
}

impl Fixture {
    pub fn engine(&self) -> Engine {
        let rules = RuleSet::from_sources(&[("t.yaml".into(), self.rules.into())], "test")
            .expect("valid rules");
        Engine::new(
            Arc::new(rules),
            Settings {
                close_after: self.close_after,
                id_slot: None,
            },
        )
    }

    /// `min` minutes after the fixture's start.
    pub fn t(&self, min: i64) -> DateTime<Utc> {
        self.start.parse::<DateTime<Utc>>().expect("valid") + chrono::Duration::minutes(min)
    }
}

/// Node alerts grouped by cluster, classification, priorities and SLA.
pub const NODES: Fixture = Fixture {
    rules: r#"
correlate:
  - name: node
    match: ['alertname="NodeDown"']
    group_by: [cluster]
    window: 30m
    title: "{{ labels.cluster }} nodes down"
classify:
  - match: ['alertname="NodeDown"']
    category: hardware
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
    - match: ['severity="info"']
      urgency: low
  impact:
    - match: ['env="prod"']
      impact: high
    - distinct: instance
      at_least: 3
      impact: medium
  default_impact: low
  default_urgency: medium
sla:
  P1: {acknowledge: 5m, resolve: 1h}
  P3: {acknowledge: 1h, resolve: 8h}
"#,
    close_after: Duration::from_secs(3600),
    start: "2026-11-23T10:00:00Z",
};

/// Inhibition, maintenance, flapping and problem candidates.
pub const SUPPRESSION: Fixture = Fixture {
    rules: r#"
correlate:
  - name: by-instance
    group_by: [alertname, instance]
    window: 1h
inhibit:
  - name: down-mutes-warnings
    source: ['alertname="NodeDown"']
    target: ['severity="warning"']
    equal: [instance]
maintenance:
  - name: db-upgrade
    match: ['service="db"']
    start: 2026-11-23T10:00:00Z
    end: 2026-11-23T11:00:00Z
flapping:
  max_changes: 3
  window: 30m
problems:
  recurrence: 3
  within: 1d
"#,
    close_after: Duration::from_secs(60),
    start: "2026-11-23T09:00:00Z",
};

/// Actions with triggers, rate limits and escalation levels.
pub const ACTIONS: Fixture = Fixture {
    rules: r#"
correlate:
  - name: svc
    group_by: [service]
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
  impact:
    - match: ['env="prod"']
      impact: high
sla:
  P1: {acknowledge: 10m, resolve: 100m}
actions:
  - name: chat
    on: [opened, escalated, resolved]
    priority: [P1]
    webhook: {url: "http://127.0.0.1:1/hook", preset: slack}
  - name: runbook
    on: [alert_added]
    match: ['service="web"']
    exec: {command: /bin/true}
    rate_limit: {max: 2, per: 1h}
  - name: page-manager
    webhook: {url: "http://127.0.0.1:1/page"}
escalations:
  - name: p1
    priority: [P1]
    levels:
      - after: 5m
        assignee: secondary
      - after: 15m
        actions: [page-manager]
      - resolve_progress: "80%"
        assignee: management
"#,
    close_after: Duration::from_secs(3600),
    start: "2026-11-23T09:00:00Z",
};

/// An alert with an explicit status (so no clock decides it).
pub fn alert(pairs: &[(&str, &str)], status: AlertStatus) -> Alert {
    Alert::new(
        labels(pairs),
        Default::default(),
        Some(status),
        None,
        None,
        String::new(),
        Source::Generic,
        None,
        NODES.t(0),
    )
    .expect("non-empty labels")
}

pub fn firing(pairs: &[(&str, &str)]) -> Alert {
    alert(pairs, AlertStatus::Firing)
}

pub fn resolved(pairs: &[(&str, &str)]) -> Alert {
    alert(pairs, AlertStatus::Resolved)
}

/// A live incident's current state.
pub fn inc(e: &Engine, k: IncidentKey) -> Incident {
    e.live(k).expect("live").incident.clone()
}

/// The timeline kinds a change set wrote for one incident.
pub fn kinds(ws: &ChangeSet, k: IncidentKey) -> Vec<String> {
    ws.timeline
        .iter()
        .filter(|(key, _, _)| *key == k)
        .map(|(_, _, e)| e.kind.as_str().to_string())
        .collect()
}

/// The actions and triggers of the jobs a change set dispatches.
pub fn job_names(ws: &ChangeSet) -> Vec<String> {
    ws.dispatch
        .iter()
        .map(|j| format!("{}:{}", j.action, j.trigger.as_str()))
        .collect()
}

/// A request from a person.
pub fn req(by: &str) -> OpRequest {
    OpRequest {
        by: Some(by.into()),
        ..OpRequest::default()
    }
}

/// For requests on live incidents: nothing to load.
pub fn no_load(_: IncidentKey) -> Option<Live> {
    None
}

/// An engine of the [`NODES`] fixture in id slot `slot`.
pub fn engine_in_slot(slot: u32) -> Engine {
    let mut e = NODES.engine();
    e.ids.slot = Some(slot);
    e
}

pub const A: &[(&str, &str)] = &[
    ("alertname", "NodeDown"),
    ("cluster", "eu"),
    ("instance", "a"),
    ("severity", "critical"),
];
pub const B: &[(&str, &str)] = &[
    ("alertname", "NodeDown"),
    ("cluster", "eu"),
    ("instance", "b"),
    ("severity", "critical"),
];
pub const DOWN: &[(&str, &str)] = &[
    ("alertname", "NodeDown"),
    ("instance", "a"),
    ("severity", "critical"),
];
pub const DISK: &[(&str, &str)] = &[
    ("alertname", "DiskSlow"),
    ("instance", "a"),
    ("severity", "warning"),
];
pub const DISK_B: &[(&str, &str)] = &[
    ("alertname", "DiskSlow"),
    ("instance", "b"),
    ("severity", "warning"),
];
pub const P1: &[(&str, &str)] = &[
    ("alertname", "Down"),
    ("service", "web"),
    ("severity", "critical"),
    ("env", "prod"),
];

/// Node storms in a cluster, workloads whose node is down, a page on open.
pub const STORMS: Fixture = Fixture {
    rules: r#"
correlate:
  - name: node-down
    match: ['alertname="NodeDown"']
    group_by: [instance]
    window: 2h
  - name: workload
    match: ['alertname="PodCrash"']
    group_by: [namespace, node]
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
  impact:
    - distinct: instance
      at_least: 10
      impact: high
      rules: [cluster-outage]
    - distinct: instance
      at_least: 3
      impact: medium
      rules: [cluster-outage]
  default_impact: low
  default_urgency: medium
actions:
  - name: page
    on: [opened]
    webhook: {url: "http://127.0.0.1:1/page"}
storms:
  - name: cluster-outage
    rules: [node-down]
    by: [cluster]
    at_least: 3
    within: 5m
    hold: 30s
    title: "{{ labels.cluster }}: {{ count }} nodes down"
relate:
  - name: node-explains-pods
    cause: node-down
    symptom: workload
    on: [instance=node]
    delay: 2m
"#,
    close_after: Duration::from_secs(3600),
    start: "2026-11-23T10:00:00Z",
};

/// `s` seconds after the fixture's start.
pub fn secs_after(f: &Fixture, s: i64) -> DateTime<Utc> {
    f.t(0) + chrono::Duration::seconds(s)
}

/// A critical NodeDown of `instance` in cluster `cluster`.
pub fn node_down(cluster: &str, instance: &str) -> Alert {
    firing(&[
        ("alertname", "NodeDown"),
        ("cluster", cluster),
        ("instance", instance),
        ("severity", "critical"),
    ])
}

/// People, teams and schedules (ana and ben rotate weekly on
/// dba-primary, handing over Monday 09:00 Berlin; cy covers dba-night
/// only 20:00-08:00 Berlin), and a policy that pages them in order.
/// Starts Monday 9 March 2026, 10:00 UTC: ben is on call, nobody on
/// dba-night.
pub const PAGING: Fixture = Fixture {
    rules: r#"
correlate:
  - name: db
    match: ['alertname="DbDown"']
    team: dba
  - name: other
classify:
  - match: ['alertname="Quiet"']
    category: software
    team: managers
sla:
  P3: {acknowledge: 1h, resolve: 100m}
people:
  - {name: ana, time_zone: Europe/Berlin, email: ana@example.com, chat: "@ana"}
  - {name: ben, email: ben@example.com}
  - {name: cy, webhook: "http://127.0.0.1:1/cy"}
  - {name: boss, email: boss@example.com}
teams:
  - name: dba
    members: [ana, ben]
    schedules:
      - name: dba-primary
        time_zone: Europe/Berlin
        layers:
          - rotation: weekly
            handoff: "09:00"
            start: 2026-03-02
            participants: [ana, ben]
      - name: dba-night
        time_zone: Europe/Berlin
        layers:
          - rotation: daily
            start: 2026-03-02
            participants: [cy]
            restrictions: [{start: "20:00", end: "08:00"}]
  - name: managers
    members: [boss]
contacts:
  email: page-mail
  chat: page-chat
  webhook: page-hook
actions:
  - name: page-mail
    email: {}
  - name: page-chat
    webhook: {url: "http://127.0.0.1:1/chat"}
  - name: page-hook
    webhook: {}
escalations:
  - name: db
    match: ['alertname="DbDown"']
    levels:
      - after: 5m
        oncall: $team
        repeat: 1
        repeat_every: 3m
      - after: 10m
        next_oncall: true
      - after: 20m
        oncall: dba-night
        fallback: person boss
      - resolve_progress: "80%"
        team: managers
  - name: night
    match: ['alertname="NightOnly"']
    levels:
      - after: 1m
        oncall: dba-night
      - after: 30m
        person: ana
  - name: short-wait
    match: ['alertname="ShortWait"']
    levels:
      - after: 1m
        oncall: dba-night
        fallback: wait 30m
      - after: 11h
        person: boss
  - name: wait
    match: ['alertname="Wait"']
    levels:
      - after: 1m
        oncall: dba-night
        fallback: wait 10h
      - after: 11h
        person: boss
"#,
    close_after: Duration::from_secs(86400),
    start: "2026-03-09T10:00:00Z",
};
