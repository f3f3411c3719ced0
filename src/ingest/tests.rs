//! Parsing every format: good payloads, and errors that name the place.
use super::*;
use crate::model::AlertStatus;

fn now() -> DateTime<Utc> {
    "2026-11-23T12:00:00Z".parse().expect("valid")
}

fn p(format: Format, body: &str) -> Result<Vec<Alert>, IngestError> {
    parse(format, body.as_bytes(), &Limits::default(), now()).map(|p| p.alerts)
}

#[test]
fn v2_array() {
    let a = p(
        Format::AlertmanagerV2,
        r#"[{"labels":{"alertname":"TestAlert","x":""},"annotations":{"summary":"s"},
            "startsAt":"2026-11-23T11:00:00Z","endsAt":"2026-11-23T13:00:00Z","generatorURL":"http://p"}]"#,
    )
    .expect("valid");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].status, AlertStatus::Firing);
    assert_eq!(
        crate::model::fingerprint::to_hex(a[0].fingerprint),
        "dab43189276e5f48"
    );
    assert!(!a[0].labels.contains_key("x"));
}

#[test]
fn v2_ends_at_in_past_is_resolved() {
    let a = p(
        Format::AlertmanagerV2,
        r#"[{"labels":{"alertname":"A"},"endsAt":"2026-11-23T11:59:00Z"}]"#,
    )
    .expect("valid");
    assert_eq!(a[0].status, AlertStatus::Resolved);
}

#[test]
fn webhook_v4_with_unknown_fields_and_zero_ends_at() {
    let body = r#"{"version":"4","groupKey":"{}:{}","truncatedAlerts":0,"status":"firing","receiver":"r",
      "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","extra":[1,2],
      "alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},
        "startsAt":"2026-11-23T11:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"x"}]}"#;
    let a = p(Format::WebhookV4, body).expect("valid");
    assert_eq!(a[0].status, AlertStatus::Firing);
    assert_eq!(a[0].ends_at, None);
}

#[test]
fn generic_single_object() {
    let a = p(
        Format::Generic,
        r#"{"labels":{"alertname":"Disk"},"status":"resolved","source":"nagios"}"#,
    )
    .expect("valid");
    assert_eq!(a[0].status, AlertStatus::Resolved);
    assert_eq!(a[0].origin.as_deref(), Some("nagios"));
}

#[test]
fn errors_name_the_place() {
    let e = p(
        Format::AlertmanagerV2,
        r#"[{"labels":{"a":"b"}},{"labels":{"a":1}}]"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("[1].labels.a: invalid type"),
        "{e}"
    );
    let e = p(Format::AlertmanagerV2, r#"[{"labels":{}}]"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "[0].labels: an alert needs at least one label with a non-empty value"
    );
    let e = p(
        Format::AlertmanagerV2,
        r#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("[0].startsAt: invalid RFC 3339 timestamp \"yesterday\""),
        "{e}"
    );
    let e = p(
        Format::WebhookV4,
        r#"{"alerts":[{"labels":{"a":"b"},"status":"maybe"}]}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("alerts[0].status: unknown status"),
        "{e}"
    );
    let e = p(Format::AlertmanagerV2, r#"[{"labels":{"a":"b"}"#).unwrap_err();
    assert!(matches!(e, IngestError::Syntax { line: 1, .. }), "{e}");
    let e = p(Format::AlertmanagerV2, r#"{"labels":{"a":"b"}}"#).unwrap_err();
    assert!(e.to_string().contains("expected a sequence"), "{e}");
    let e = p(Format::AlertmanagerV2, "").unwrap_err();
    assert!(matches!(e, IngestError::Empty { .. }));
    let e = p(Format::WebhookV4, r#"{"version":"3","alerts":[]}"#).unwrap_err();
    assert!(e.to_string().starts_with("version: unsupported"), "{e}");
    let e = p(Format::Generic, r#"{"annotations":{}}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `labels`"), "{e}");
    let e = p(Format::AlertmanagerV2, r#"[{"labels":{"a":"b"},"startsAt":"2026-11-23T12:00:00Z","endsAt":"2026-11-23T11:00:00Z"}]"#).unwrap_err();
    assert!(e.to_string().starts_with("[0].endsAt: endsAt"), "{e}");
}

#[test]
fn non_utf8_names_offset() {
    let e = parse(
        Format::AlertmanagerV2,
        b"[{\"labels\":{\"a\":\"\xff\"}}]",
        &Limits::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(e, IngestError::NotUtf8 { offset: 17 });
}

#[test]
fn limits() {
    let limits = Limits {
        max_labels: 2,
        max_label_value_bytes: 4,
        max_alerts_per_request: 1,
        ..Limits::default()
    };
    let e = parse(
        Format::AlertmanagerV2,
        br#"[{"labels":{"a":"1","b":"2","c":"3"}}]"#,
        &limits,
        now(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("[0].labels: 3 entries (limit 2)"),
        "{e}"
    );
    let e = parse(
        Format::AlertmanagerV2,
        br#"[{"labels":{"a":"12345"}}]"#,
        &limits,
        now(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("limit 4"), "{e}");
    let e = parse(
        Format::AlertmanagerV2,
        br#"[{"labels":{"a":"1"}},{"labels":{"a":"2"}}]"#,
        &limits,
        now(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        IngestError::TooManyAlerts { count: 2, limit: 1 }
    ));
}
fn pd(body: &str) -> Result<PagerDutyEvent, IngestError> {
    pagerduty_event(body.as_bytes(), &Limits::default(), now())
}

#[test]
fn pagerduty_trigger_maps_payload_to_labels() {
    let e = pd(
        r#"{"routing_key":"R0123","event_action":"trigger","dedup_key":"disk-db1",
        "client":"nagios","client_url":"http://nagios/db1",
        "payload":{"summary":"Disk full on db1","source":"db1","severity":"critical",
          "timestamp":"2026-11-23T11:42:58.315+0000","component":"postgres","group":"prod-db",
          "class":"disk","custom_details":{"free":"0%","mounts":["/","/var"]}},
        "images":[],"links":[]}"#,
    )
    .expect("valid");
    assert_eq!(e.action, PagerDutyAction::Trigger);
    assert_eq!(e.dedup_key, "disk-db1");
    let a = &e.alerts[0];
    assert_eq!(a.status, AlertStatus::Firing);
    assert_eq!(a.source, Source::PagerDuty);
    assert_eq!(a.alertname(), "Disk full on db1");
    for (k, v) in [
        ("severity", "critical"),
        ("source", "db1"),
        ("component", "postgres"),
        ("group", "prod-db"),
        ("class", "disk"),
        ("dedup_key", "disk-db1"),
    ] {
        assert_eq!(a.labels.get(k), Some(v), "label {k}");
    }
    assert!(
        !a.labels.contains_key("routing_key"),
        "the routing key is a secret"
    );
    assert_eq!(&a.annotations["summary"], "Disk full on db1");
    assert_eq!(&a.annotations["free"], "0%");
    assert_eq!(&a.annotations["mounts"], r#"["/","/var"]"#);
    assert_eq!(a.generator_url, "http://nagios/db1");
    assert_eq!(
        a.starts_at,
        Some("2026-11-23T11:42:58.315Z".parse().expect("valid"))
    );
}

#[test]
fn pagerduty_resolve_matches_its_trigger() {
    let t = pd(
        r#"{"routing_key":"R1","event_action":"trigger","dedup_key":"k1",
        "payload":{"summary":"CPU at 93%","source":"web1","severity":"warning"}}"#,
    )
    .expect("valid");
    let t2 = pd(
        r#"{"routing_key":"R1","event_action":"trigger","dedup_key":"k1",
        "payload":{"summary":"CPU at 97%","source":"web1","severity":"warning"}}"#,
    )
    .expect("valid");
    let r = pd(r#"{"routing_key":"R1","event_action":"resolve","dedup_key":"k1"}"#).expect("valid");
    let other_service =
        pd(r#"{"routing_key":"R2","event_action":"resolve","dedup_key":"k1"}"#).expect("valid");
    assert_eq!(r.alerts[0].status, AlertStatus::Resolved);
    assert_eq!(t.alerts[0].fingerprint, r.alerts[0].fingerprint);
    assert_eq!(t.alerts[0].fingerprint, t2.alerts[0].fingerprint);
    assert_ne!(r.alerts[0].fingerprint, other_service.alerts[0].fingerprint);
    let ack =
        pd(r#"{"routing_key":"R1","event_action":"acknowledge","dedup_key":"k1"}"#).expect("valid");
    assert_eq!(ack.action, PagerDutyAction::Acknowledge);
    assert!(ack.alerts.is_empty());
    assert_eq!(ack.dedup_key, "k1");
}

#[test]
fn pagerduty_trigger_without_dedup_key_gets_a_stable_one() {
    let body = r#"{"routing_key":"R1","event_action":"trigger",
        "payload":{"summary":"s","source":"h","severity":"info"}}"#;
    let a = pd(body).expect("valid");
    let b = pd(body).expect("valid");
    assert_eq!(a.dedup_key.len(), 16);
    assert_eq!(a.dedup_key, b.dedup_key);
    assert_eq!(a.alerts[0].labels["dedup_key"], a.dedup_key);
    let via_parse = p(Format::PagerDutyV2, body).expect("valid");
    assert_eq!(via_parse, a.alerts);
}

#[test]
fn pagerduty_errors_name_the_field() {
    let cases = [
        (
            r#"{"event_action":"trigger"}"#,
            "$: missing field `routing_key`",
        ),
        (
            r#"{"routing_key":"","event_action":"trigger"}"#,
            "routing_key: must not be empty",
        ),
        (
            r#"{"routing_key":"R","event_action":"escalate"}"#,
            "event_action: unknown event_action \"escalate\"",
        ),
        (
            r#"{"routing_key":"R","event_action":"resolve"}"#,
            "dedup_key: required for event_action \"resolve\"",
        ),
        (
            r#"{"routing_key":"R","event_action":"trigger"}"#,
            "payload: required",
        ),
        (
            r#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"fatal"}}"#,
            "payload.severity: unknown severity \"fatal\"",
        ),
        (
            r#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","severity":"info"}}"#,
            "payload: missing field `source`",
        ),
        (
            r#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info","timestamp":"noon"}}"#,
            "payload.timestamp: invalid timestamp \"noon\"",
        ),
    ];
    for (body, want) in cases {
        let e = pd(body).expect_err(body).to_string();
        assert!(e.starts_with(want), "{body}: got {e:?}, want {want:?}");
    }
}

#[test]
fn formats_are_detected() {
    assert_eq!(detect(br#"[{"labels":{"a":"b"}}]"#), Format::Generic);
    assert_eq!(
        detect(br#" {"version":"4","alerts":[]}"#),
        Format::WebhookV4
    );
    assert_eq!(
        detect(br#"{"routing_key":"r","event_action":"trigger"}"#),
        Format::PagerDutyV2
    );
    assert_eq!(detect(br#"{"labels":{"a":"b"}}"#), Format::Generic);
    assert_eq!(detect(b"not json"), Format::Generic);
}
