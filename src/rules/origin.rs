//! Where a compiled rule came from: its name (given, or its place in its
//! list) and its `file:line:column`, kept for the tools that talk about
//! rules to their authors (`rules explain`, `rules check --strict`,
//! `rules test --coverage`). The engine never reads it.

use super::error::Pos;

/// A rule's name and where it was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The rule's `name`, if it has one.
    pub name: Option<String>,
    /// The start of the rule in its file.
    pub at: Option<Pos>,
    /// Positions of single fields (`distinct`, `group_by.<label>`), for
    /// messages that point at the field rather than the rule.
    pub fields: Vec<(String, Pos)>,
}

impl Origin {
    /// How to call the rule: its name, or `#N` (1-based) in its list.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) if !n.trim().is_empty() => n.clone(),
            _ => format!("#{}", index + 1),
        }
    }

    /// The position of a field, else of the rule.
    pub fn field(&self, key: &str) -> Option<&Pos> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, p)| p)
            .or(self.at.as_ref())
    }

    /// `file:line:column`, or `""` when unknown.
    pub fn at_text(&self) -> String {
        self.at
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}
