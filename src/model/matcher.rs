//! Alertmanager label matchers.
//!
//! Input: matcher text as SREs write it in Alertmanager (`name="v"`,
//! `name!="v"`, `name=~"re"`, `name!~"re"`, values quoted or bare, several
//! separated by commas, optionally inside `{…}`). Output: compiled
//! [`Matcher`]s. Semantics follow Alertmanager: regexes are fully anchored and
//! a missing label matches as the empty string. Regexes are compiled here,
//! once, so matching never compiles anything.

use std::fmt;

use regex::Regex;

use super::labels::Labels;

/// The four matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    Re,
    NotRe,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::NotEq => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }
}

/// One compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    regex: Option<Regex>,
}

/// Why matcher text did not parse; the offset is in characters from the
/// start of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {offset} of {text:?})")]
pub struct ParseError {
    pub text: String,
    pub offset: usize,
    pub message: String,
}

impl Matcher {
    /// Builds a matcher, compiling the anchored regex for `=~`/`!~`.
    pub fn new(name: &str, op: Op, value: &str) -> Result<Self, String> {
        let regex = match op {
            Op::Re | Op::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regex {value:?}: {}", regex_reason(&e)))?,
            ),
            Op::Eq | Op::NotEq => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// True if the label set satisfies this matcher (missing label = "").
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).unwrap_or("");
        self.matches_value(v)
    }

    /// True if a single label value satisfies this matcher.
    pub fn matches_value(&self, v: &str) -> bool {
        match (&self.op, &self.regex) {
            (Op::Eq, _) => v == self.value,
            (Op::NotEq, _) => v != self.value,
            (Op::Re, Some(re)) => re.is_match(v),
            (Op::NotRe, Some(re)) => !re.is_match(v),
            // Regex ops always carry a compiled regex (see `new`).
            (Op::Re | Op::NotRe, None) => false,
        }
    }

    /// The pattern of a positive regex matcher (`=~`); the rule index uses these.
    pub fn regex_source(&self) -> Option<&str> {
        (self.op == Op::Re).then_some(self.value.as_str())
    }

    /// An equality matcher on a non-empty value; the rule index uses these.
    pub fn exact_value(&self) -> Option<&str> {
        (self.op == Op::Eq && !self.value.is_empty()).then_some(self.value.as_str())
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// The regex crate's message is a multi-line diagram; keep its last line.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// True if every matcher matches (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Parses one or more comma-separated matchers, optionally wrapped in braces.
pub fn parse(text: &str) -> Result<Vec<Matcher>, ParseError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        text,
    };
    p.skip_ws();
    let braced = p.eat('{');
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if braced && p.peek() == Some('}') {
            p.pos += 1;
            break;
        }
        if p.peek().is_none() {
            if braced {
                return Err(p.err("missing closing '}'"));
            }
            break;
        }
        out.push(p.matcher()?);
        p.skip_ws();
        match p.peek() {
            Some(',') => p.pos += 1,
            Some('}') if braced => {
                p.pos += 1;
                break;
            }
            None => {
                if braced {
                    return Err(p.err("missing closing '}'"));
                }
                break;
            }
            Some(c) => return Err(p.err(&format!("expected ',' between matchers, found {c:?}"))),
        }
    }
    p.skip_ws();
    if p.peek().is_some() {
        return Err(p.err("unexpected text after matchers"));
    }
    if out.is_empty() && !braced {
        return Err(p.err("empty matcher"));
    }
    Ok(out)
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn err(&self, message: &str) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn matcher(&mut self) -> Result<Matcher, ParseError> {
        let start = self.pos;
        let name = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let mut name = String::new();
            while let Some(c) = self.peek() {
                if c.is_alphanumeric() || c == '_' || c == '.' || c == ':' {
                    name.push(c);
                    self.pos += 1;
                } else {
                    break;
                }
            }
            name
        };
        if name.is_empty() {
            return Err(self.err("expected a label name"));
        }
        if name.chars().any(char::is_control) {
            return Err(self.err("a label name cannot contain control characters"));
        }
        self.skip_ws();
        let op = match (self.peek(), self.chars.get(self.pos + 1).copied()) {
            (Some('='), Some('~')) => Op::Re,
            (Some('!'), Some('=')) => Op::NotEq,
            (Some('!'), Some('~')) => Op::NotRe,
            (Some('='), _) => Op::Eq,
            _ => return Err(self.err("expected one of =, !=, =~, !~ after the label name")),
        };
        self.pos += if op == Op::Eq { 1 } else { 2 };
        self.skip_ws();
        let value = if self.peek() == Some('"') {
            self.quoted()?
        } else if let Some(c) = self.peek().filter(|c| matches!(c, '=' | '!' | '~')) {
            // `alertname==x` or `a=~~b`: an operator typed twice, not a value.
            return Err(self.err(&format!(
                "unexpected {c:?} after the operator; quote the value if it starts with {c:?}"
            )));
        } else {
            let mut v = String::new();
            while let Some(c) = self.peek() {
                if c == ',' || c == '}' {
                    break;
                }
                v.push(c);
                self.pos += 1;
            }
            v.trim_end().to_string()
        };
        Matcher::new(&name, op, &value).map_err(|message| ParseError {
            text: self.text.to_string(),
            offset: start,
            message,
        })
    }

    fn quoted(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted string")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some('\\') => out.push('\\'),
                        Some('"') => out.push('"'),
                        // Regex escapes such as \d pass through unchanged.
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err(self.err("unterminated escape")),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::model::labels::labels as ls;

    fn one(text: &str) -> Matcher {
        let mut v = parse(text).expect("parses");
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    }

    #[test]
    fn operators() {
        let l = ls(&[("severity", "critical"), ("job", "node")]);
        assert!(one(r#"severity="critical""#).matches(&l));
        assert!(!one(r#"severity!="critical""#).matches(&l));
        assert!(one(r#"severity=~"crit.*""#).matches(&l));
        assert!(one(r#"severity!~"warn.*""#).matches(&l));
        assert!(one("job=node").matches(&l));
    }

    #[test]
    fn regex_is_anchored() {
        let l = ls(&[("severity", "critical")]);
        assert!(!one(r#"severity=~"crit""#).matches(&l));
        assert!(!one(r#"severity=~"itical""#).matches(&l));
        assert!(one(r#"severity=~"warning|critical""#).matches(&l));
    }

    #[test]
    fn missing_label_is_empty_string() {
        let l = ls(&[("a", "1")]);
        assert!(one(r#"team="""#).matches(&l));
        assert!(one(r#"team=~".*""#).matches(&l));
        assert!(!one(r#"team=~".+""#).matches(&l));
        assert!(one(r#"team!="ops""#).matches(&l));
    }

    #[test]
    fn lists_and_braces() {
        let m = parse(r#"{alertname="X", severity=~"a|b"}"#).expect("parses");
        assert_eq!(m.len(), 2);
        let m = parse(r#"alertname="X",job!="y""#).expect("parses");
        assert_eq!(m.len(), 2);
        assert!(parse("{}").expect("empty braces ok").is_empty());
    }

    #[test]
    fn quoted_escapes() {
        let m = one(r#"msg="say \"hi\"\n""#);
        assert_eq!(m.value, "say \"hi\"\n");
        let m = one(r#"x=~"\d+""#);
        assert!(m.matches_value("123"));
    }

    #[test]
    fn errors_say_what() {
        let e = parse(r#"severity=~"(""#).unwrap_err();
        assert!(e.message.contains("invalid regex"), "{e}");
        let e = parse(r#"severity"#).unwrap_err();
        assert!(e.message.contains("expected one of"), "{e}");
        let e = parse(r#"a="b"#).unwrap_err();
        assert!(e.message.contains("unterminated"), "{e}");
        let e = parse(r#"{a="b""#).unwrap_err();
        assert!(e.message.contains("closing"), "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in [r#"a="b""#, r#"a!="b c""#, r#"a=~"x|y""#, r#"a!~"\\d""#] {
            let m = one(text);
            let again = one(&m.to_string());
            assert_eq!(m.value, again.value);
            assert_eq!(m.op, again.op);
        }
    }

    proptest! {
        #[test]
        fn equality_matches_exactly_its_value(v in "[a-zA-Z0-9 _.-]{0,20}", other in "[a-zA-Z0-9 _.-]{0,20}") {
            let m = Matcher::new("l", Op::Eq, &v).expect("eq never fails");
            prop_assert!(m.matches_value(&v));
            prop_assert_eq!(m.matches_value(&other), v == other);
        }

        #[test]
        fn escaped_literal_regex_is_anchored(v in "[a-zA-Z0-9 _.-]{1,20}", prefix in "[a-z]{1,5}") {
            let m = Matcher::new("l", Op::Re, &regex::escape(&v)).expect("escaped regex compiles");
            prop_assert!(m.matches_value(&v));
            let prefixed = format!("{prefix}{v}");
            let suffixed = format!("{v}{prefix}");
            prop_assert!(!m.matches_value(&prefixed));
            prop_assert!(!m.matches_value(&suffixed));
        }

        #[test]
        fn negation_is_complement(v in "[a-z]{0,6}", re in "[a-z]{0,3}(\\.\\*)?") {
            let pos = Matcher::new("l", Op::Re, &re).expect("compiles");
            let neg = Matcher::new("l", Op::NotRe, &re).expect("compiles");
            prop_assert_eq!(pos.matches_value(&v), !neg.matches_value(&v));
        }

        #[test]
        fn parser_never_panics(s in ".{0,40}") {
            let _ = parse(&s);
        }
    }
}
