//! The JSON Schema of rule files, shipped as `rules/schema.json` so that
//! editors (the YAML language server, via the `# yaml-language-server:
//! $schema=...` comment the shipped files start with) complete and check
//! rule files as they are written.
//!
//! Generated from the types the builder reads; `incidentd rules schema`
//! prints it, and a test fails when the shipped file is stale. The schema
//! checks each file on its own; `incidentd rules check` remains the
//! authority (matcher syntax, unique names, references between files).

/// humantime durations as the builder accepts them (`30s`, `1h30m`,
/// `2 hours`, `30 mins`); zero is refused by the builder only.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\s*)+$";

/// Where the schema is shipped, relative to the repository.
pub const SHIPPED: &str = "rules/schema.json";

/// The rule file schema as JSON.
pub fn rule_file() -> serde_json::Value {
    super::build::schema::rule_file().to_value()
}

/// The schema as the shipped file holds it: pretty JSON and a newline.
pub fn rule_file_text() -> String {
    pretty(&rule_file())
}

/// Pretty JSON with a final newline.
pub fn pretty(v: &serde_json::Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}
