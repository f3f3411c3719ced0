//! `GET /api/v1/events`: incident changes as Server-Sent Events.
//!
//! Contract: each event is one `data:` line of JSON (`id`, `kind`, `at`,
//! `by`, `message`, `incident`) with the SSE `id:` `INC-YYYYMMDD-NNNN:seq`
//! (see [`crate::pipeline::events`]). A request with `Last-Event-ID` first
//! gets the events after that one: from memory when it is recent, else
//! from the stored timeline (in time order; a few may repeat, clients
//! de-duplicate by id). When the stream cannot say what was missed (an
//! unknown id, a client that fell too far behind) it sends an event named
//! `reset`: reload the state from the API. A comment every 15 seconds
//! keeps idle streams open through proxies. Streams end at shutdown.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{read, AppState};
use crate::pipeline::events::{event_id, event_json, parse_event_id, Subscription};

/// Most events replayed from the store for one resume.
const MAX_REPLAY: usize = 10_000;

fn reset(reason: &str) -> Event {
    Event::default()
        .event("reset")
        .data(json!({ "reason": reason }).to_string())
}

pub async fn stream(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let Subscription {
        replay,
        live,
        closed,
    } = s.events.subscribe(last.as_deref());
    let mut queue: VecDeque<Event> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    match (last, replay) {
        (None, _) => {}
        (Some(_), Some(replay)) => {
            queue.extend(
                replay
                    .iter()
                    .map(|e| Event::default().id(e.id.clone()).data(e.data())),
            );
        }
        (Some(id), None) => match parse_event_id(&id) {
            None => queue.push_back(reset("Last-Event-ID is not an event id of this stream")),
            Some((key, seq)) => {
                match read(&s.store, move |store| {
                    store.timeline_after(key, seq, MAX_REPLAY)
                })
                .await
                {
                    Ok(Some(found)) => {
                        for (k, n, entry) in &found.entries {
                            let id = event_id(*k, *n);
                            seen.insert(id.clone());
                            let inc = found.incidents.iter().find(|i| i.id == *k);
                            queue.push_back(
                                Event::default().id(id).data(event_json(*k, *n, entry, inc)),
                            );
                        }
                        if found.truncated {
                            queue.push_back(reset(
                                "more events were missed than one resume replays",
                            ));
                        }
                    }
                    Ok(None) => queue.push_back(reset("Last-Event-ID names no stored event")),
                    Err(r) => return r,
                }
            }
        },
    }
    let state = (queue, live, closed, seen);
    let events = futures_util::stream::unfold(
        state,
        |(mut queue, mut live, mut closed, seen)| async move {
            if *closed.borrow() {
                return None;
            }
            if let Some(e) = queue.pop_front() {
                return Some((Ok::<Event, Infallible>(e), (queue, live, closed, seen)));
            }
            loop {
                tokio::select! {
                    changed = closed.changed() => {
                        // Closed at shutdown, or the bus is gone: the end.
                        let _ = changed;
                        return None;
                    }
                    got = live.recv() => match got {
                        Ok(ev) => {
                            if seen.contains(&ev.id) {
                                continue;
                            }
                            let e = Event::default().id(ev.id.clone()).data(ev.data());
                            return Some((Ok(e), (queue, live, closed, seen)));
                        }
                        Err(RecvError::Lagged(n)) => {
                            let e = reset(&format!("this client fell behind and missed {n} events"));
                            return Some((Ok(e), (queue, live, closed, seen)));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
