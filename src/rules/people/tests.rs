//! Schedules across the 2026 DST changes of Europe/Berlin and
//! America/New_York, overrides inside and across shifts, restrictions,
//! and a proptest: one person per layer at any instant, or a reported gap.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;
use crate::model::Override;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("time")
}

fn layer(tz: Tz, rotation: Rotation, handoff: NaiveTime, start: &str, who: &[&str]) -> Layer {
    Layer {
        name: "main".into(),
        time_zone: tz,
        rotation,
        handoff,
        start: date(start),
        participants: who.iter().map(|s| s.to_string()).collect(),
        restrictions: Vec::new(),
    }
}

fn schedule(layers: Vec<Layer>) -> Schedule {
    Schedule {
        name: "db".into(),
        team: "dba".into(),
        time_zone: layers[0].time_zone,
        layers,
        at: None,
    }
}

fn starts(r: &Rendered) -> Vec<(String, String)> {
    r.shifts
        .iter()
        .map(|s| (s.start.format("%m-%dT%H:%MZ").to_string(), s.person.clone()))
        .collect()
}

fn ov(id: &str, person: &str, from: &str, to: &str) -> Override {
    Override {
        id: id.into(),
        schedule: "db".into(),
        person: person.into(),
        starts_at: utc(from),
        ends_at: utc(to),
        created_by: "test".into(),
        created_at: utc("2026-01-01T00:00:00Z"),
        removed_at: None,
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn berlin_daily_handoffs_follow_local_time_across_both_2026_changes() {
    let s = schedule(vec![layer(
        chrono_tz::Europe::Berlin,
        Rotation::Daily,
        hm(9, 0),
        "2026-03-27",
        &["ana", "ben"],
    )]);
    // Spring forward on 29 March: 09:00 is 08:00Z before, 07:00Z after.
    let r = s.render(
        utc("2026-03-27T08:00:00Z"),
        utc("2026-03-31T07:00:00Z"),
        &[],
    );
    assert_eq!(
        starts(&r),
        pairs(&[
            ("03-27T08:00Z", "ana"),
            ("03-28T08:00Z", "ben"),
            ("03-29T07:00Z", "ana"),
            ("03-30T07:00Z", "ben"),
        ])
    );
    assert!(r.gaps.is_empty());
    // The shift over the change lasts 23 hours.
    assert_eq!((r.shifts[1].end - r.shifts[1].start).num_hours(), 23);
    // Fall back on 25 October: the shift over it lasts 25 hours.
    let r = s.render(
        utc("2026-10-24T07:00:00Z"),
        utc("2026-10-26T08:00:00Z"),
        &[],
    );
    assert_eq!(
        starts(&r),
        pairs(&[("10-24T07:00Z", "ben"), ("10-25T08:00Z", "ana")])
    );
    assert_eq!((r.shifts[0].end - r.shifts[0].start).num_hours(), 25);
}

#[test]
fn a_handoff_in_the_skipped_or_repeated_hour_is_well_defined() {
    let l = layer(
        chrono_tz::Europe::Berlin,
        Rotation::Daily,
        hm(2, 30),
        "2026-03-01",
        &["ana", "ben"],
    );
    // 02:30 does not exist on 29 March: the handoff is at the first valid
    // local time after it, 03:00 CEST.
    assert_eq!(l.boundary(28), utc("2026-03-29T01:00:00Z"));
    // 02:30 happens twice on 25 October: the first one (CEST) counts.
    let k = (date("2026-10-25") - date("2026-03-01")).num_days();
    assert_eq!(l.boundary(k), utc("2026-10-25T00:30:00Z"));
    assert_eq!(
        l.at(utc("2026-10-25T00:29:59Z")),
        Some(l.participant(k - 1))
    );
    assert_eq!(l.at(utc("2026-10-25T00:30:00Z")), Some(l.participant(k)));
}

#[test]
fn new_york_weekly_handoffs_keep_monday_ten_am_across_dst() {
    let s = schedule(vec![layer(
        chrono_tz::America::New_York,
        Rotation::Weekly,
        hm(10, 0),
        "2026-03-02",
        &["cy", "di", "ed"],
    )]);
    // DST starts 8 March: 10:00 EST is 15:00Z, 10:00 EDT 14:00Z.
    let r = s.render(
        utc("2026-03-02T15:00:00Z"),
        utc("2026-03-16T14:00:00Z"),
        &[],
    );
    assert_eq!(
        starts(&r),
        pairs(&[("03-02T15:00Z", "cy"), ("03-09T14:00Z", "di")])
    );
    // DST ends 1 November.
    let r = s.render(
        utc("2026-10-26T14:00:00Z"),
        utc("2026-11-09T15:00:00Z"),
        &[],
    );
    let who: Vec<_> = starts(&r);
    assert_eq!(who[0].0, "10-26T14:00Z");
    assert_eq!(who[1].0, "11-02T15:00Z");
    // The rotation runs backwards from `start` too.
    assert_eq!(
        s.at(utc("2026-02-24T12:00:00Z"), &[]).map(|c| c.person),
        Some("ed".into())
    );
}

#[test]
fn overrides_inside_a_shift_and_across_a_handoff() {
    let s = schedule(vec![layer(
        chrono_tz::Europe::Berlin,
        Rotation::Daily,
        hm(9, 0),
        "2026-03-27",
        &["ana", "ben"],
    )]);
    let overrides = vec![
        // Inside ana's shift of 27 March, Berlin still on CET.
        ov("o1", "zoe", "2026-03-27T12:00:00Z", "2026-03-27T14:00:00Z"),
        // Across the handoff on the DST morning (07:00Z).
        ov("o2", "yan", "2026-03-29T05:00:00Z", "2026-03-29T09:00:00Z"),
    ];
    let r = s.render(
        utc("2026-03-27T08:00:00Z"),
        utc("2026-03-30T07:00:00Z"),
        &overrides,
    );
    assert_eq!(
        starts(&r),
        pairs(&[
            ("03-27T08:00Z", "ana"),
            ("03-27T12:00Z", "zoe"),
            ("03-27T14:00Z", "ana"),
            ("03-28T08:00Z", "ben"),
            ("03-29T05:00Z", "yan"),
            ("03-29T09:00Z", "ana"),
        ])
    );
    assert_eq!(r.shifts[1].override_id.as_deref(), Some("o1"));
    assert_eq!(r.shifts[4].end, utc("2026-03-29T09:00:00Z"));
    // A removed override covers nothing.
    let mut removed = overrides.clone();
    removed[0].removed_at = Some(utc("2026-03-01T00:00:00Z"));
    assert_eq!(
        s.at(utc("2026-03-27T13:00:00Z"), &removed)
            .map(|c| c.person),
        Some("ana".into())
    );
    // Who comes next after zoe's override: ana again.
    assert_eq!(
        s.next_after(utc("2026-03-27T13:00:00Z"), &overrides),
        Some(("ana".into(), utc("2026-03-27T14:00:00Z")))
    );
}

#[test]
fn restrictions_leave_reported_gaps_and_follow_the_sun_layers_fill_them() {
    let mut berlin = layer(
        chrono_tz::Europe::Berlin,
        Rotation::Weekly,
        hm(9, 0),
        "2026-03-02",
        &["ana"],
    );
    berlin.name = "emea".into();
    berlin.restrictions = vec![WeeklySlot {
        days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        start: hm(9, 0),
        end: hm(18, 0),
    }];
    let s = schedule(vec![berlin.clone()]);
    let r = s.render(
        utc("2026-03-09T00:00:00Z"),
        utc("2026-03-10T00:00:00Z"),
        &[],
    );
    assert_eq!(starts(&r), pairs(&[("03-09T08:00Z", "ana")]));
    assert_eq!(r.shifts[0].end, utc("2026-03-09T17:00:00Z"));
    assert_eq!(
        r.gaps,
        vec![
            Gap {
                start: utc("2026-03-09T00:00:00Z"),
                end: utc("2026-03-09T08:00:00Z")
            },
            Gap {
                start: utc("2026-03-09T17:00:00Z"),
                end: utc("2026-03-10T00:00:00Z")
            },
        ]
    );
    // Follow the sun: New York 09:00-18:00 on top. On 9 March New York is
    // already on EDT (13:00Z) while Berlin is still on CET.
    let mut ny = layer(
        chrono_tz::America::New_York,
        Rotation::Weekly,
        hm(9, 0),
        "2026-03-02",
        &["cy"],
    );
    ny.name = "amer".into();
    ny.restrictions = berlin.restrictions.clone();
    let s = schedule(vec![berlin, ny]);
    let r = s.render(
        utc("2026-03-09T08:00:00Z"),
        utc("2026-03-09T22:00:00Z"),
        &[],
    );
    assert_eq!(
        starts(&r),
        pairs(&[("03-09T08:00Z", "ana"), ("03-09T13:00Z", "cy")])
    );
    assert!(r.gaps.is_empty());
    assert_eq!(r.shifts[1].layer.as_deref(), Some("amer"));
}

const ZONES: [Tz; 5] = [
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::UTC,
    chrono_tz::Asia::Kolkata,
];

prop_compose! {
    fn any_layer()(
        zone in 0..ZONES.len(),
        weekly in any::<bool>(),
        handoff in (0u32..24, prop_oneof![Just(0u32), Just(30u32), 0u32..60]),
        start in 0i64..1100,
        n in 1usize..5,
        slots in prop::collection::vec((0u8..128, 0u32..24, 0u32..24, 0u32..60), 0..3),
    ) -> Layer {
        Layer {
            name: "l".into(),
            time_zone: ZONES[zone],
            rotation: if weekly { Rotation::Weekly } else { Rotation::Daily },
            handoff: hm(handoff.0, handoff.1),
            start: date("2025-01-01") + chrono::Duration::days(start),
            participants: (0..n).map(|i| format!("p{i}")).collect(),
            restrictions: slots
                .into_iter()
                .map(|(days, a, b, m)| WeeklySlot {
                    days: (0..7)
                        .filter(|d| days & (1 << d) != 0)
                        .map(|d| Weekday::try_from(d as u8).expect("weekday"))
                        .collect(),
                    start: hm(a, m),
                    end: hm(b, 0),
                })
                .collect(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// At any instant a layer has exactly one person on call, unless its
    /// restrictions leave a gap, and then the rendering reports the gap.
    #[test]
    fn one_person_per_layer_at_any_instant_or_a_reported_gap(
        l in any_layer(),
        from in 0i64..(366 * 86400),
        span in 1i64..(21 * 86400),
        probes in prop::collection::vec(0.0f64..1.0, 1..20),
    ) {
        let from = utc("2026-01-01T00:00:00Z") + chrono::Duration::seconds(from);
        let to = from + chrono::Duration::seconds(span);
        let r = l.render(from, to);
        // Shifts and gaps tile [from, to) without overlap.
        let mut pieces: Vec<(DateTime<Utc>, DateTime<Utc>, bool)> = r
            .shifts
            .iter()
            .map(|s| (s.start, s.end, true))
            .chain(r.gaps.iter().map(|g| (g.start, g.end, false)))
            .collect();
        pieces.sort();
        prop_assert_eq!(pieces.first().map(|p| p.0), Some(from));
        prop_assert_eq!(pieces.last().map(|p| p.1), Some(to));
        for w in pieces.windows(2) {
            prop_assert_eq!(w[0].1, w[1].0, "pieces meet: {:?}", w);
        }
        for p in &pieces {
            prop_assert!(p.0 < p.1);
        }
        if l.restrictions.is_empty() {
            prop_assert!(r.gaps.is_empty(), "an unrestricted layer has no gap: {:?}", r.gaps);
        }
        for f in probes {
            let t = from + chrono::Duration::milliseconds(((to - from).num_milliseconds() as f64 * f) as i64);
            let piece = pieces.iter().find(|p| p.0 <= t && t < p.1).expect("tiled");
            let shift = r.shifts.iter().find(|s| s.start <= t && t < s.end);
            match l.at(t) {
                Some(person) => {
                    prop_assert!(piece.2, "on call at {} but inside a gap", t);
                    prop_assert_eq!(shift.map(|s| s.person.as_str()), Some(person));
                    prop_assert!(l.participants.iter().any(|p| p == person));
                }
                None => prop_assert!(!piece.2, "nobody at {} but a shift covers it", t),
            }
        }
    }
}
