//! JSON with errors that say where: good input takes serde_json's fast
//! path; only a failure pays for a second parse that tracks the JSON path.

use serde::Deserialize;

use super::IngestError;

pub(crate) fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, IngestError> {
    // Good input takes the fast path; only a failure pays for parsing again
    // with path tracking, which names where the problem is.
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            IngestError::Syntax {
                line: inner.line(),
                column: inner.column(),
                message: strip_position(&inner.to_string()),
            }
        } else {
            IngestError::Invalid {
                path: if path == "." { "$".into() } else { path },
                message: strip_position(&inner.to_string()),
            }
        }
    })?;
    de.end().map_err(|e| IngestError::Syntax {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the path or our own prefix says it better.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
