//! A database written by an earlier release opens unchanged: the fixture
//! in `tests/data/db-4fb4df3` was written by the release at commit 4fb4df3
//! (see its `make.sh`), together with what that release's API answered
//! over it. That release used redb 2 (file format v2); this release
//! upgrades the file in place on its first start, keeping a copy until
//! the next, answers the same, and keeps working on it.
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Daemon;
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/db-4fb4df3")
}

/// The fixture's database, unpacked into `dir`.
fn unpack(dir: &Path) {
    let gz = std::fs::File::open(fixture().join("incidentd.redb.gz")).expect("fixture");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .expect("gunzip");
    std::fs::write(dir.join("incidentd.redb"), bytes).expect("write");
}

#[tokio::test]
async fn a_database_of_the_previous_release_shows_the_same_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    unpack(dir.path());
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let d = Daemon::start(dir.path(), RulesSource::Dir(fixture().join("rules")), |c| {
        // Nothing comes due by itself (the fixture's SLA targets are
        // years long too), so what the old release answered still holds.
        c.incidents.close_after = Duration::from_secs(100 * 365 * 24 * 3600);
    })
    .await;
    let backup = dir.path().join("incidentd.redb.v2-backup");
    let mut original = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixture().join("incidentd.redb.gz")).expect("fixture"),
    )
    .read_to_end(&mut original)
    .expect("gunzip");
    assert!(
        std::fs::read(&backup).expect("the v2 copy is kept") == original,
        "the kept copy is the original file"
    );
    let mut listed = d.get_json("/api/v1/incidents?limit=100").await;
    strip_added(&mut listed);
    assert_eq!(listed, expected["incidents"], "the incident list");
    // The status index was rewritten by the upgrade (redb 4 encodes its
    // tuple keys differently): filtering by status still finds the same.
    for status in ["open", "acknowledged", "resolved", "closed"] {
        let want: Vec<&Value> = listed
            .as_array()
            .expect("array")
            .iter()
            .filter(|i| i["status"] == status)
            .collect();
        let mut got = d
            .get_json(&format!("/api/v1/incidents?status={status}&limit=100"))
            .await;
        strip_added(&mut got);
        assert_eq!(
            got.as_array().expect("array").iter().collect::<Vec<_>>(),
            want,
            "status={status}"
        );
    }
    let ids: Vec<String> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 6);
    for id in &ids {
        let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
        let mut one = Value::Array(vec![full]);
        strip_added(&mut one);
        assert_eq!(
            one[0], expected["full"][id],
            "{id}: incident, alerts and timeline"
        );
    }
    assert_eq!(
        d.get_json("/api/v1/silences").await,
        expected["silences"],
        "silences"
    );
    assert_eq!(
        d.get_json("/api/v1/alerts/suppressed").await,
        expected["suppressed"],
        "suppressed alerts"
    );

    // The restored live state goes on: a repeat is deduplicated into its
    // old incident, and an operation on an old incident is stored.
    let (status, body) = d
        .post_json(
            "/api/v2/alerts",
            json!([{"labels":{"alertname":"InstanceDown","instance":"web-1:9100","job":"node","severity":"critical","env":"prod"},"annotations":{"summary":"web-1 is down"},"startsAt":"2026-12-02T09:00:00Z","generatorURL":"http://prometheus/graph?g0.expr=up"}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deduplicated"], 1, "{body}");
    let node = &ids[5];
    let (status, body) = d
        .post_json(
            &format!("/api/v1/incidents/{node}/resolve"),
            json!({"by": "dave"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let full = d.get_json(&format!("/api/v1/incidents/{node}")).await;
    assert_eq!(full["status"], "resolved");
    assert_eq!(full["alerts"][0]["repeat_count"], 2, "{full}");
    d.stop().await;

    // The next start succeeds on the upgraded file and drops the copy.
    let d = Daemon::start(dir.path(), RulesSource::Dir(fixture().join("rules")), |c| {
        c.incidents.close_after = Duration::from_secs(100 * 365 * 24 * 3600);
    })
    .await;
    assert!(
        !backup.exists(),
        "the copy goes after the next successful start"
    );
    let full = d.get_json(&format!("/api/v1/incidents/{node}")).await;
    assert_eq!(
        full["status"], "resolved",
        "the change after the upgrade is kept"
    );
    let resolved = d
        .get_json("/api/v1/incidents?status=resolved&limit=100")
        .await;
    assert!(
        resolved
            .as_array()
            .expect("array")
            .iter()
            .any(|i| i["id"] == node.as_str()),
        "{resolved}"
    );
    d.stop().await;
}

/// Fields added since that release read as their defaults from old rows
/// (no parent, children, relations, override, desk fields; source
/// `alerts`): checked, then removed, so everything else can be compared
/// with exactly what the old release answered.
fn strip_added(list: &mut Value) {
    const ADDED: [&str; 11] = [
        "source",
        "parent",
        "children",
        "relations",
        "merged_into",
        "priority_override",
        "description",
        "reporter",
        "contact",
        "service",
        "team",
    ];
    for inc in list.as_array_mut().expect("array") {
        let obj = inc.as_object_mut().expect("object");
        for k in ADDED {
            let v = obj.remove(k).unwrap_or(Value::Null);
            assert!(
                v.is_null() || v == serde_json::json!([]) || (k == "source" && v == "alerts"),
                "{k} of an old row reads as {v}"
            );
        }
    }
}
