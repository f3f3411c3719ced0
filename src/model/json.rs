//! The one place that turns incidentd's own types into JSON.
//!
//! Contract: the types given here serialize infallibly (string map keys,
//! no `Serialize` impl that can fail), so the only error serde_json could
//! return is an allocation failure, which aborts the process anyway. These
//! helpers say that once instead of every caller handling an error that
//! cannot happen; a caller with data from outside uses serde_json itself.

use serde::Serialize;

/// JSON bytes of one of incidentd's own values.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A JSON value of one of incidentd's own values.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
