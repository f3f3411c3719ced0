//! `incidentd rules test`: unit tests for rule files, like `promtool test rules`.
//!
//! Input: YAML test files. Output: for each failing test
//! `FAILED: <file>: <test name>` and, per failing evaluation time, what was
//! expected and what the engine produced; then `SUCCESS` or the number of
//! failures. Exit code ([`run_paths`]): 0 every test passed, 1 a test failed
//! or the rules under test do not compile (their errors are printed with
//! `file:line:column`), 2 a test file (or a rule file it names) cannot be
//! read or is not a valid test file (errors with `file:line:column`).
//! Contract: each test runs on a fresh in-memory engine and a virtual clock;
//! nothing is read besides the test and rule files, nothing is written.
//!
//! # Test file format
//!
//! ```yaml
//! # Rules under test, relative to this file: a list of files …
//! rule_files: [../default.yaml]
//! # … or (instead) a directory, loaded like `serve --rules DIR`:
//! # rule_dir: ..
//! evaluation_interval: 1m        # tick step; default 1m
//! start: 2026-01-05T00:00:00Z    # time 0; default 2026-01-05T00:00:00Z (a Monday)
//! close_after: 24h               # resolved incidents close after this; default 24h
//! tests:
//!   - name: node down becomes a P3 hardware incident
//!     start: 2026-01-11T01:50:00Z  # optional: this test's time 0 (overrides the file's)
//!     input:                     # alerts, at times relative to `start`
//!       - at: 0m
//!         labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
//!         annotations: {summary: web-1 is down}   # optional
//!         status: firing         # default firing; `resolved` resolves it
//!         every: 1m              # optional: resend every 1m …
//!         until: 10m             # … up to and including 10m (needs `every`)
//!       - at: 15m
//!         labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
//!         status: resolved
//!     silences:                  # optional: silences as created over the API
//!       - matchers: ['instance="db-1:9100"']   # Alertmanager matcher syntax
//!         from: 0m               # default 0m
//!         until: 1h
//!     expect:
//!       - at: 2m
//!         incidents:             # every incident that exists at 2m
//!           - rule: node-down
//!             group_key: 'node-down{instance="web-1:9100"}'
//!             category: hardware
//!             priority: P3
//!             status: open
//!             alert_count: 1
//!         suppressed:            # optional: alerts kept out of incidents
//!           - labels: {alertname: InstanceDown, instance: "db-1:9100"}
//!             reason: silence    # silence | inhibit | maintenance
//!         oncall:                # optional: who is on call then
//!           dba-primary: alice   # schedule (or team) → person
//!           dba-follow-the-sun: null   # nobody (a gap)
//! ```
//!
//! Times (`at`, `every`, `until`, `from`) are durations such as `0`, `90s`,
//! `5m`, `1h30m`; label and annotation values are strings (quote values
//! like `"9100"` or `"true"` if the distinction matters to you; unquoted
//! scalars are read as their text).
//!
//! Semantics:
//! - The virtual clock starts at `start` (default a fixed Monday, so weekly
//!   maintenance windows are testable; give `start` — per file or per test
//!   — to test other days). Silences are created at time 0 (a silence with
//!   a later `from` is pending until then).
//! - Evaluation times are every multiple of `evaluation_interval` up to the
//!   last input or expectation, plus every input and expectation time. At
//!   each, in order: the inputs of that time are ingested as one batch (in
//!   file order), the engine ticks (timers, expiry, suppression re-checks),
//!   then the expectations of that time are checked. A firing input carries
//!   `startsAt` = its first `at` and no `endsAt` (it fires until resolved);
//!   a resolved input carries `endsAt` = its time.
//! - `incidents` lists every incident that exists at that time, closed
//!   ones included; omitting it (or `[]`) expects none. Each expected
//!   incident gives any of `id`, `rule`, `group_key`, `category`,
//!   `priority`, `status`, `impact`, `urgency`, `alert_count`,
//!   `firing_count`, `title` (exact) and `labels` (the incident's common
//!   labels must include these); only the fields given are compared. The
//!   lists are compared as sets: each expectation must be matched by its
//!   own incident, and incidents no expectation matched are reported as
//!   unexpected.
//! - `suppressed`, when given, lists every alert being kept out of
//!   incidents at that time, compared the same way: `labels` is a subset
//!   match, `reason` (`silence`, `inhibit`, `maintenance`) and `by` (the
//!   inhibit rule or maintenance window name, or silence id) are optional.
//!   Omitted, suppressed alerts are not checked.
//! - `oncall`, when given, maps schedules (or teams: their first schedule)
//!   of the rules' `people.yaml` to who must be on call at that time
//!   (`null`: nobody, a gap the layers' restrictions leave).
//!
//! Failure output, per failing expectation time: the expected and the
//! actual count, the expected and the actual incidents (one line each: `id
//! rule group_key category priority status alerts=N`), each expectation no
//! incident matched (with the closest incident and, per differing field,
//! the expected value above the one it got), and each unexpected incident;
//! likewise for suppressed alerts (with their reason).
//!
//! With `--coverage`, [`run_paths`] also reports per rule set which rules
//! the tests exercised ([`crate::tools::coverage`]); with `--min-coverage
//! N` a rule set below N percent fails the run (exit code 1).

//!
//! Layout: [`parse`](mod@parse) reads test files, [`check`] compares expectations,
//! this file runs cases and files.

pub mod check;
pub mod parse;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::Settings;
use crate::model::{Alert, AlertStatus, Source};
use crate::rules::RuleSet;
use crate::tools::coverage::Coverage;
use crate::tools::replay::Harness;

use check::*;
use parse::*;

pub use parse::{load, parse, BrokenFile, TestFile, DEFAULT_START};

/// The result of one test.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Readable failure report (empty when the test passed).
    pub failures: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Compiles the rules a test file names.
pub fn load_rules(file: &TestFile) -> Result<RuleSet, crate::rules::RulesError> {
    match &file.rules {
        RulesRef::Dir(d) => RuleSet::load_dir(d),
        RulesRef::Files(files) => {
            let mut sources = Vec::new();
            for f in files {
                match std::fs::read_to_string(f) {
                    Ok(t) => sources.push((f.display().to_string(), t)),
                    Err(e) => {
                        return Err(crate::rules::RulesError(vec![crate::rules::RuleError {
                            pos: None,
                            message: format!("{}: cannot read: {e}", f.display()),
                        }]))
                    }
                }
            }
            let origin = files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            RuleSet::from_sources(&sources, &origin)
        }
    }
}

fn abs(start: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    // Durations were bounded at load (MAX_STEPS × interval); saturate anyway.
    start + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn fmt_at(d: Duration) -> String {
    if d.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Runs one test on a fresh engine.
pub fn run_case(file: &TestFile, tc: &TestCase, rules: Arc<RuleSet>) -> CaseResult {
    run(file, tc, rules, None)
}

/// Runs one test, adding what its rules did to `coverage`.
pub fn run_case_covered(
    file: &TestFile,
    tc: &TestCase,
    rules: Arc<RuleSet>,
    coverage: &mut Coverage,
) -> CaseResult {
    run(file, tc, rules, Some(coverage))
}

fn run(
    file: &TestFile,
    tc: &TestCase,
    rules: Arc<RuleSet>,
    coverage: Option<&mut Coverage>,
) -> CaseResult {
    let mut h = Harness::new(
        rules,
        Settings {
            close_after: file.close_after,
            id_slot: None,
        },
    );
    if coverage.is_some() {
        h.track_coverage();
    }
    let mut failures = Vec::new();
    let t0 = tc.start.unwrap_or(file.start);
    for s in &tc.silences {
        let spec = silence(&s.matchers, abs(t0, s.from), abs(t0, s.until), &s.comment);
        if let Err(e) = h.add_silence(spec, t0) {
            failures.push(format!(
                "  silence {:?} rejected by the engine: {e}",
                s.matchers
            ));
        }
    }
    // Every send: (time, input index); stable order keeps file order per time.
    let mut sends: Vec<(Duration, usize)> = Vec::new();
    for (n, i) in tc.inputs.iter().enumerate() {
        let mut t = i.at;
        loop {
            sends.push((t, n));
            match i.every {
                Some(e) if t + e <= i.until => t += e,
                _ => break,
            }
        }
    }
    sends.sort_by_key(|(t, _)| *t);
    let end = sends
        .iter()
        .map(|(t, _)| *t)
        .chain(tc.expects.iter().map(|e| e.at))
        .max()
        .unwrap_or_default();
    let mut times: BTreeSet<Duration> = sends.iter().map(|(t, _)| *t).collect();
    times.extend(tc.expects.iter().map(|e| e.at));
    let mut g = Duration::ZERO;
    while g <= end {
        times.insert(g);
        g += file.interval;
    }
    let mut next = 0usize;
    for t in times {
        let now = abs(t0, t);
        let mut batch = Vec::new();
        while next < sends.len() && sends[next].0 == t {
            let i = &tc.inputs[sends[next].1];
            next += 1;
            let (starts, ends) = match i.status {
                AlertStatus::Firing => (Some(abs(t0, i.at)), None),
                AlertStatus::Resolved => (None, Some(now)),
            };
            // Labels were checked non-empty at load, so `new` returns Some.
            if let Some(a) = Alert::new(
                i.labels.clone(),
                i.annotations.clone(),
                Some(i.status),
                starts,
                ends,
                String::new(),
                Source::Replay,
                None,
                now,
            ) {
                batch.push(a);
            }
        }
        if !batch.is_empty() {
            h.ingest(batch, now);
        }
        h.tick(now);
        for e in tc.expects.iter().filter(|e| e.at == t) {
            let lines = check(e, &h, now);
            if !lines.is_empty() {
                failures.push(format!("  at {} ({}):", fmt_at(t), now.to_rfc3339()));
                failures.extend(lines);
            }
        }
    }
    if let (Some(c), Some(seen)) = (coverage, h.take_coverage()) {
        c.merge(&seen);
    }
    CaseResult {
        name: tc.name.clone(),
        failures,
    }
}

/// Runs every test of a loaded file; `Err` holds rule compile errors.
pub fn run_file(file: &TestFile) -> Result<Vec<CaseResult>, crate::rules::RulesError> {
    let rules = Arc::new(load_rules(file)?);
    Ok(file
        .tests
        .iter()
        .map(|tc| run_case(file, tc, rules.clone()))
        .collect())
}

/// Runs every test of a loaded file, recording which rules they exercised.
pub fn run_file_covered(
    file: &TestFile,
) -> Result<(Vec<CaseResult>, Coverage), crate::rules::RulesError> {
    let rules = Arc::new(load_rules(file)?);
    let mut coverage = Coverage::new(rules.clone());
    let results = file
        .tests
        .iter()
        .map(|tc| run_case_covered(file, tc, rules.clone(), &mut coverage))
        .collect();
    Ok((results, coverage))
}

/// How [`run_paths`] reports beyond pass and fail.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Report which rules the tests exercised.
    pub coverage: bool,
    /// Fail when a rule set's coverage is below this percentage (implies
    /// `coverage`).
    pub min_coverage: Option<f64>,
}

/// `incidentd rules test FILE...`: runs every file, reports to `out`
/// (results, coverage) and `err` (broken files, rule errors); returns the
/// exit code.
pub fn run_paths(
    paths: &[PathBuf],
    options: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (mut tests, mut failed, mut broken, mut bad_rules) = (0usize, 0usize, 0usize, 0usize);
    let covering = options.coverage || options.min_coverage.is_some();
    // Per rule set (by origin), in the order first seen.
    let mut coverages: Vec<Coverage> = Vec::new();
    for path in paths {
        let name = path.display();
        let file = match load(path) {
            Ok(f) => f,
            Err(e) => {
                broken += 1;
                writeln!(err, "{e}")?;
                writeln!(
                    out,
                    "BROKEN: {name}: not a valid test file (see errors above)"
                )?;
                continue;
            }
        };
        let run = if covering {
            run_file_covered(&file).map(|(r, c)| (r, Some(c)))
        } else {
            run_file(&file).map(|r| (r, None))
        };
        let results = match run {
            Ok((r, c)) => {
                if let Some(c) = c {
                    match coverages
                        .iter_mut()
                        .find(|x| x.rules().origin == c.rules().origin)
                    {
                        Some(x) => x.merge(&c),
                        None => coverages.push(c),
                    }
                }
                r
            }
            Err(e) => {
                bad_rules += 1;
                tests += file.tests.len();
                failed += file.tests.len();
                writeln!(err, "{e}")?;
                writeln!(
                    out,
                    "FAILED: {name}: the rules under test do not compile ({} error(s) above)",
                    e.0.len()
                )?;
                continue;
            }
        };
        let mut file_failed = 0;
        for r in &results {
            tests += 1;
            if !r.passed() {
                failed += 1;
                file_failed += 1;
                writeln!(out, "FAILED: {name}: {}", r.name)?;
                for l in &r.failures {
                    writeln!(out, "{l}")?;
                }
            }
        }
        writeln!(
            out,
            "{name}: {} test(s), {} passed, {file_failed} failed",
            results.len(),
            results.len() - file_failed
        )?;
    }
    let mut below = Vec::new();
    for c in &coverages {
        let report = c.report();
        writeln!(out)?;
        write!(out, "{}", report.render())?;
        if let Some(min) = options.min_coverage {
            if report.percent() < min {
                below.push(format!(
                    "coverage of {} is {:.1}%, below --min-coverage {min}%",
                    report.rules,
                    report.percent()
                ));
            }
        }
    }
    if broken == 0 && failed == 0 && below.is_empty() {
        writeln!(out, "SUCCESS: {tests} test(s) passed")?;
        return Ok(0);
    }
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!("{failed} of {tests} test(s) failed"));
    }
    if bad_rules > 0 {
        parts.push(format!(
            "{bad_rules} file(s) with rules that do not compile"
        ));
    }
    if broken > 0 {
        parts.push(format!("{broken} broken test file(s)"));
    }
    parts.extend(below);
    writeln!(out, "FAILED: {}", parts.join(", "))?;
    Ok(if broken > 0 { 2 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn rules_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
    }

    fn parse_str(text: &str) -> Result<TestFile, BrokenFile> {
        parse(&rules_dir().join("tests").join("inline.yaml"), text)
    }

    fn run_str(text: &str) -> Vec<CaseResult> {
        let f = parse_str(text).expect("valid test file");
        run_file(&f).expect("rules compile")
    }

    #[test]
    fn default_start_is_a_monday() {
        let s = default_start();
        assert_eq!(s.to_rfc3339(), "2026-01-05T00:00:00+00:00");
        assert_eq!(s.weekday(), chrono::Weekday::Mon);
        assert_eq!(
            DateTime::parse_from_rfc3339(DEFAULT_START).map(|t| t.with_timezone(&Utc)),
            Ok(s)
        );
    }

    const NODE: &str = r#"
rule_files: [../default.yaml]
tests:
  - name: node down
    input:
      - at: 0m
        labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
        every: 1m
        until: 4m
      - at: 5m
        labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
        status: resolved
    expect:
      - at: 2m
        incidents:
          - rule: node-down
            group_key: 'node-down{instance="web-1:9100"}'
            category: hardware
            priority: PRIO
            status: open
            alert_count: 1
      - at: 5m
        incidents:
          - {rule: node-down, status: resolved, firing_count: 0}
"#;

    #[test]
    fn passing_and_failing() {
        let r = run_str(&NODE.replace("PRIO", "P3"));
        assert!(r[0].passed(), "{:#?}", r[0].failures);
        let r = run_str(&NODE.replace("PRIO", "P1"));
        let text = r[0].failures.join("\n");
        assert!(
            text.contains("at 2m (2026-01-05T00:02:00+00:00):"),
            "{text}"
        );
        assert!(text.contains("missing: rule=node-down"), "{text}");
        assert!(text.contains("incidents: expected 1, got 1"), "{text}");
        assert!(
            text.contains("        priority: expected P1\n                  got      P3"),
            "{text}"
        );
        assert!(
            text.contains(
                "unexpected: INC-20260105-0001 node-down node-down{instance=\"web-1:9100\"} hardware P3 open alerts=1"
            ),
            "{text}"
        );
        assert!(!text.contains("at 5m"), "only the failing time: {text}");
    }

    #[test]
    fn unexpected_incident_when_none_expected() {
        let r = run_str(
            r#"
rule_files: [../default.yaml]
tests:
  - name: t
    input:
      - {at: 0, labels: {alertname: Foo}}
    expect:
      - at: 1m
"#,
        );
        let text = r[0].failures.join("\n");
        assert!(
            text.contains("unexpected: INC-20260105-0001 per-alertname"),
            "{text}"
        );
    }

    #[test]
    fn silences_suppress_and_expire() {
        let r = run_str(
            r#"
rule_files: [../default.yaml]
tests:
  - name: silenced then not
    silences:
      - matchers: ['instance="db-1:9100"']
        until: 10m
    input:
      - at: 1m
        labels: {alertname: InstanceDown, instance: "db-1:9100", severity: critical}
        every: 1m
        until: 20m
    expect:
      - at: 5m
        incidents: []
        suppressed:
          - labels: {instance: "db-1:9100"}
            reason: silence
      - at: 11m
        incidents:
          - {rule: node-down, status: open}
        suppressed: []
"#,
        );
        assert!(r[0].passed(), "{:#?}", r[0].failures);
    }

    #[test]
    fn set_matching_needs_one_incident_each() {
        let r = run_str(
            r#"
rule_files: [../default.yaml]
tests:
  - name: two expectations, one incident
    input:
      - {at: 0, labels: {alertname: InstanceDown, instance: a}}
    expect:
      - at: 0
        incidents:
          - {rule: node-down}
          - {category: hardware}
"#,
        );
        let text = r[0].failures.join("\n");
        assert!(
            text.contains("matches, but another expectation took it"),
            "{text}"
        );
    }

    #[test]
    fn broken_files_name_line_and_column() {
        let e = parse_str("tests:\n  - name: x\n    input:\n      - at: 5x\n        labels: {a: b}\n    expect: [{at: 0}]\nrule_files: [../default.yaml]\n").unwrap_err();
        assert!(e.0[0].ends_with("inline.yaml:4:13: at: bad duration \"5x\": unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (examples: 0, 30s, 5m, 1h30m)"), "{e}");
        let e = parse_str("rule_files: [../default.yaml]\ntests:\n  - name: x\n    bogus: 1\n")
            .unwrap_err();
        assert!(
            e.0[0].contains("inline.yaml:4:5: tests[0].bogus: Unknown field `bogus`"),
            "{e}"
        );
        let e = parse_str("tests: [\n").unwrap_err();
        assert!(e.0[0].contains("inline.yaml:2:1: YAML syntax error"), "{e}");
        let e = parse_str("rule_files: [nope.yaml]\ntests:\n  - name: x\n    expect:\n      - at: 0\n        incidents: [{priority: P9, status: fixed}]\n").unwrap_err();
        let all = e.to_string();
        assert!(all.contains("inline.yaml:1:14: rule file"), "{all}");
        assert!(
            all.contains("inline.yaml:6:32: priority: unknown value \"P9\""),
            "{all}"
        );
        assert!(all.contains("status: unknown value \"fixed\""), "{all}");
        let e = parse_str("rule_dir: ..\ntests:\n  - name: x\n    silences:\n      - matchers: ['a=~\".*\"']\n        until: 1h\n    expect: [{at: 0}]\n").unwrap_err();
        assert!(e.to_string().contains("inline.yaml:5:20: matchers"), "{e}");
    }

    #[test]
    fn set_assignment() {
        // e0 fits a0 or a1, e1 only a0: both must be matched.
        assert_eq!(assign(&[vec![0, 1], vec![0]], 2), vec![Some(1), Some(0)]);
        assert_eq!(assign(&[vec![0], vec![0]], 1), vec![Some(0), None]);
    }
}
