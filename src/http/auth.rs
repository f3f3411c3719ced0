//! Who may do what over HTTP: API tokens with roles, client certificates
//! standing in for tokens, and no cross-site writes.
//!
//! Contract:
//! - Every route has a required [`Access`] in one table ([`access`]);
//!   a route missing from it needs [`Role::Admin`] (deny by default).
//! - With a tokens file, a request presents `Authorization: Bearer
//!   <secret>` or the secret as a basic-auth password, or a verified client
//!   certificate whose subject the tokens file maps. Missing or unknown
//!   credentials answer 401 with `WWW-Authenticate` (the same answer for
//!   both: it never says whether a token exists); a known identity without
//!   the role answers 403. Secrets are compared as SHA-256 digests in
//!   constant time, against every entry.
//! - With or without tokens, a state-changing request from a browser on
//!   another origin (`Origin` not this host, or `Sec-Fetch-Site:
//!   cross-site`/`same-site`) answers 403, and a JSON endpoint given a body
//!   that is not `application/json` answers 415 (ingest endpoints also take
//!   a body without `Content-Type`, as simple senders post).
//! - Every refusal is counted in
//!   `incidentd_http_requests_denied_total{reason}` and logged with the
//!   remote address; the presented secret is never logged.
//! - The handlers see the caller as an [`Actor`] extension (absent when
//!   auth is off), which the audit trail records instead of any `by` field,
//!   and how it was authenticated as a [`Via`] extension.
//! - The board's session cookie ([`SESSION_COOKIE`]: `HttpOnly`,
//!   `SameSite=Strict`, in memory, [`SESSION_TTL`]) stands in for a token
//!   on the board's routes ([`is_board`]) and for reads of the API (the
//!   event stream), never for API writes. A refused board route answers
//!   HTML (the login page for missing credentials) instead of JSON.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use parking_lot::RwLock;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error;
use crate::metrics::Metrics;

/// Roles, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The ingest endpoints.
    Ingest,
    /// Reading incidents, reports, silences and suppressed alerts.
    Viewer,
    /// Every incident operation; creating and expiring silences.
    Operator,
    /// Reloading the configuration.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request comes from: a token's (or certificate's) name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// The authenticated caller of a request, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

/// The authenticated caller's role (absent when auth is off), so pages
/// can leave out what the caller may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerRole(pub Role);

/// The subject of a verified client certificate (set by the TLS listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSubject(pub String);

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health and metrics, unless `auth.protect_metrics`).
    Open,
    /// At least this role.
    Role(Role),
}

/// What kind of body a route takes, for the content-type check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Reads nothing (GET, DELETE).
    None,
    /// JSON; a body without `Content-Type` is also taken (alert senders).
    Ingest,
    /// JSON, declared as such (or no body at all).
    Json,
    /// A board form: `application/x-www-form-urlencoded` (or no body).
    /// Cross-site posts are refused by origin, and a form posted with the
    /// session cookie must carry the session's CSRF token (checked by the
    /// board's handlers, see [`Via`]).
    Form,
}

/// How the caller of a request was authenticated (an extension every
/// request carries past the guard). A board form checks its CSRF token
/// only when the credentials came with the browser on their own (the
/// session cookie); a token in a header cannot be sent by another site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `Authorization` header or client certificate.
    Header,
    /// The board's session cookie; forms must carry this CSRF token.
    Session { csrf: String },
    /// Nothing (auth off, no session cookie yet).
    Nothing,
}

/// The name of the board's session cookie.
pub const SESSION_COOKIE: &str = "incidentd_session";
/// How long a board login lasts.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// Most board logins kept at once; beyond it the oldest is dropped.
const MAX_SESSIONS: usize = 10_000;

/// Every route, its method, what it needs and what it reads. The router
/// and this table must agree: a test walks both.
pub const ROUTES: &[(&str, &str, Access, Body)] = &[
    (
        "POST",
        "/api/v2/alerts",
        Access::Role(Role::Ingest),
        Body::Ingest,
    ),
    (
        "POST",
        "/api/v1/webhook/alertmanager",
        Access::Role(Role::Ingest),
        Body::Ingest,
    ),
    (
        "POST",
        "/api/v1/alerts",
        Access::Role(Role::Ingest),
        Body::Ingest,
    ),
    (
        "POST",
        "/v2/enqueue",
        Access::Role(Role::Ingest),
        Body::Ingest,
    ),
    (
        "GET",
        "/api/v1/incidents",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/api/v1/incidents",
        Access::Role(Role::Operator),
        Body::Json,
    ),
    (
        "GET",
        "/api/v1/incidents/{id}",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "GET",
        "/api/v1/incidents/{id}/report",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/{action}",
        Access::Role(Role::Operator),
        Body::Json,
    ),
    (
        "POST",
        "/api/v1/heartbeats/{name}",
        Access::Role(Role::Ingest),
        Body::Ingest,
    ),
    (
        "GET",
        "/api/v1/silences",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/api/v1/silences",
        Access::Role(Role::Operator),
        Body::Json,
    ),
    (
        "GET",
        "/api/v1/silences/{id}",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "DELETE",
        "/api/v1/silences/{id}",
        Access::Role(Role::Operator),
        Body::None,
    ),
    (
        "GET",
        "/api/v1/alerts/suppressed",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "GET",
        "/api/v1/oncall",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "GET",
        "/api/v1/schedules/{name}",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/api/v1/schedules/{name}/overrides",
        Access::Role(Role::Operator),
        Body::Json,
    ),
    (
        "DELETE",
        "/api/v1/schedules/{name}/overrides/{id}",
        Access::Role(Role::Operator),
        Body::None,
    ),
    (
        "GET",
        "/api/v2/alerts",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "GET",
        "/api/v2/alerts/groups",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "GET",
        "/api/v2/silences",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/api/v2/silences",
        Access::Role(Role::Operator),
        Body::Json,
    ),
    (
        "GET",
        "/api/v2/silence/{id}",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "DELETE",
        "/api/v2/silence/{id}",
        Access::Role(Role::Operator),
        Body::None,
    ),
    (
        "GET",
        "/api/v2/status",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "GET",
        "/api/v1/events",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    // The board (server-rendered HTML, `http::board`).
    ("GET", "/", Access::Role(Role::Viewer), Body::None),
    // The service desk's form to open an incident, and its post.
    (
        "GET",
        "/incidents/new",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/incidents",
        Access::Role(Role::Operator),
        Body::Form,
    ),
    (
        "GET",
        "/incidents/{id}",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/incidents/{id}/{action}",
        Access::Role(Role::Operator),
        Body::Form,
    ),
    ("GET", "/silences", Access::Role(Role::Viewer), Body::None),
    (
        "POST",
        "/silences",
        Access::Role(Role::Operator),
        Body::Form,
    ),
    (
        "GET",
        "/silences/new",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/silences/{id}/expire",
        Access::Role(Role::Operator),
        Body::Form,
    ),
    ("GET", "/suppressed", Access::Role(Role::Viewer), Body::None),
    ("GET", "/oncall", Access::Role(Role::Viewer), Body::None),
    (
        "GET",
        "/schedules/{name}",
        Access::Role(Role::Viewer),
        Body::None,
    ),
    (
        "POST",
        "/schedules/{name}/overrides",
        Access::Role(Role::Operator),
        Body::Form,
    ),
    (
        "POST",
        "/schedules/{name}/overrides/{id}/remove",
        Access::Role(Role::Operator),
        Body::Form,
    ),
    // An acknowledgement link's signature is its credential: the page and
    // its confirmation need no token (a cross-site post is still refused).
    ("GET", "/ack/{token}", Access::Open, Body::None),
    ("POST", "/ack/{token}", Access::Open, Body::Form),
    // Logging in and out, and the board's stylesheet and script, are open.
    ("GET", "/login", Access::Open, Body::None),
    ("POST", "/login", Access::Open, Body::Form),
    ("POST", "/logout", Access::Open, Body::Form),
    ("GET", "/assets/board.css", Access::Open, Body::None),
    ("GET", "/assets/board.js", Access::Open, Body::None),
    // The API description is public (nothing in it is not in the README).
    ("GET", "/api/v1/openapi.json", Access::Open, Body::None),
    (
        "POST",
        "/api/v1/rules/explain",
        Access::Role(Role::Viewer),
        Body::Json,
    ),
    ("POST", "/-/reload", Access::Role(Role::Admin), Body::None),
    ("POST", "/-/backup", Access::Role(Role::Admin), Body::None),
    ("GET", "/metrics", Access::Open, Body::None),
    ("GET", "/-/healthy", Access::Open, Body::None),
    ("GET", "/-/ready", Access::Open, Body::None),
];

/// What a route needs and reads; a route the table lacks needs admin.
pub fn access(method: &Method, path: &str) -> (Access, Body) {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, p, _, _)| *m == method && *p == path)
        .map(|(_, _, a, b)| (*a, *b))
        .unwrap_or((Access::Role(Role::Admin), Body::Json))
}

/// Why a request was refused; also the `reason` label of
/// `incidentd_http_requests_denied_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials.
    NoCredentials,
    /// Credentials that match no token or certificate mapping.
    BadCredentials,
    /// A known identity without the role.
    Forbidden,
    /// A browser request from another origin.
    CrossSite,
    /// A body that is not JSON on a JSON endpoint.
    ContentType,
}

impl Denied {
    pub const ALL: [Denied; 5] = [
        Denied::NoCredentials,
        Denied::BadCredentials,
        Denied::Forbidden,
        Denied::CrossSite,
        Denied::ContentType,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Denied::NoCredentials => "no_credentials",
            Denied::BadCredentials => "bad_credentials",
            Denied::Forbidden => "forbidden",
            Denied::CrossSite => "cross_site",
            Denied::ContentType => "content_type",
        }
    }
}

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tokens file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The tokens file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    /// Client certificate subjects that stand in for a token.
    #[serde(default)]
    certificates: Vec<CertEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    /// Hex SHA-256 of the secret.
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertEntry {
    /// The certificate's subject as `openssl x509 -noout -subject
    /// -nameopt RFC2253` prints it without `subject=`, e.g.
    /// `CN=alertmanager-prod,O=ops`.
    subject: String,
    name: String,
    role: Role,
}

/// The compiled tokens file.
#[derive(Debug, Default)]
pub struct Tokens {
    digests: Vec<([u8; 32], Identity)>,
    subjects: HashMap<String, Identity>,
}

impl Tokens {
    /// Reads and checks a tokens file; every problem at once.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Tokens::parse(&text).map_err(|message| TokensError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses tokens file text; the error lists every problem.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let file: TokensFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let mut out = Tokens::default();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, t) in file.tokens.iter().enumerate() {
            if t.name.trim().is_empty() {
                problems.push(format!("tokens[{i}].name must not be empty"));
            }
            if let Some(prev) = names.insert(&t.name, i) {
                problems.push(format!(
                    "tokens[{i}].name {:?} is also tokens[{prev}]'s: names identify the actor, so each is used once",
                    t.name
                ));
            }
            match decode_digest(&t.sha256) {
                Some(d) => out.digests.push((
                    d,
                    Identity {
                        name: t.name.clone(),
                        role: t.role,
                    },
                )),
                None => problems.push(format!(
                    "tokens[{i}].sha256 must be 64 hex digits (the SHA-256 of the secret; `incidentd token new` prints one)"
                )),
            }
        }
        for (i, c) in file.certificates.iter().enumerate() {
            if c.subject.trim().is_empty() || c.name.trim().is_empty() {
                problems.push(format!(
                    "certificates[{i}]: subject and name must not be empty"
                ));
                continue;
            }
            out.subjects.insert(
                super::tls::canonical_subject(&c.subject),
                Identity {
                    name: c.name.clone(),
                    role: c.role,
                },
            );
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The identity whose secret this is. Compares against every entry
    /// in constant time, so the time taken says nothing about which (or
    /// whether any) entry matched.
    pub fn check(&self, secret: &str) -> Option<&Identity> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut found = None;
        for (d, id) in &self.digests {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(id);
            }
        }
        found
    }

    /// The identity a client certificate's subject stands for.
    pub fn subject(&self, subject: &str) -> Option<&Identity> {
        self.subjects.get(&super::tls::canonical_subject(subject))
    }

    pub fn len(&self) -> usize {
        self.digests.len() + self.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Hex SHA-256 of a secret, as the tokens file holds it.
pub fn digest_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh secret (256 random bits, URL-safe base64) and the tokens file
/// entry for it.
pub fn new_token(name: &str, role: Role) -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret = format!(
        "inc_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let entry = format!(
        "  - name: {}\n    role: {role}\n    sha256: {}\n",
        serde_json::to_string(name).unwrap_or_default(),
        digest_hex(&secret)
    );
    Ok((secret, entry))
}

/// How requests are authenticated.
pub struct Auth {
    /// The tokens file, when auth is on.
    file: Option<PathBuf>,
    tokens: RwLock<Arc<Tokens>>,
    protect_metrics: bool,
    /// See [`Auth::with_origins`].
    origins: Vec<String>,
    metrics: Arc<Metrics>,
    /// Board logins (in memory: a restart logs everybody out).
    sessions: parking_lot::Mutex<HashMap<[u8; 32], Session>>,
    /// Keys the CSRF tokens (random per process).
    csrf_key: [u8; 32],
    /// Mark the session cookie `Secure` (the listener speaks TLS).
    secure_cookies: bool,
}

/// A board login: who, with the digest of the token used (so a token
/// removed from the tokens file ends its sessions), until when.
struct Session {
    identity: Identity,
    token: Option<[u8; 32]>,
    expires: std::time::Instant,
}

/// A random key, or (when the system has no randomness, which `getrandom`
/// reports) one from the clock and address space: CSRF tokens are then
/// weaker but the daemon still serves.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if getrandom::fill(&mut key).is_err() {
        let seed = format!("{:?}{:p}", std::time::SystemTime::now(), &key);
        key = Sha256::digest(seed.as_bytes()).into();
    }
    key
}

/// Every refusal reason starts at zero.
fn seed(metrics: &Metrics) {
    for d in Denied::ALL {
        metrics
            .http_requests_denied
            .with_label_values(&[d.as_str()]);
    }
}

impl Auth {
    /// No tokens: every route is open to every caller (loopback, or
    /// `--insecure-no-auth`). Cross-site and content-type checks still hold.
    pub fn off(metrics: Arc<Metrics>) -> Auth {
        seed(&metrics);
        Auth {
            file: None,
            tokens: RwLock::new(Arc::default()),
            protect_metrics: false,
            origins: Vec::new(),
            metrics,
            sessions: parking_lot::Mutex::new(HashMap::new()),
            csrf_key: random_key(),
            secure_cookies: false,
        }
    }

    /// Tokens from `file` (re-read by [`Auth::reload`]).
    pub fn from_file(
        file: &Path,
        protect_metrics: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Auth, TokensError> {
        let tokens = Tokens::load(file)?;
        seed(&metrics);
        Ok(Auth {
            file: Some(file.to_path_buf()),
            tokens: RwLock::new(Arc::new(tokens)),
            protect_metrics,
            origins: Vec::new(),
            metrics,
            sessions: parking_lot::Mutex::new(HashMap::new()),
            csrf_key: random_key(),
            secure_cookies: false,
        })
    }

    /// Marks the board's session cookie `Secure` (when serving TLS).
    pub fn with_secure_cookies(mut self, secure: bool) -> Auth {
        self.secure_cookies = secure;
        self
    }

    /// The CSRF token of a session cookie value: a keyed digest, so it
    /// needs no state and cannot be derived by another site.
    pub fn csrf_for(&self, cookie: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.csrf_key);
        h.update(b"csrf:");
        h.update(cookie.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A fresh session cookie value (256 random bits).
    pub fn new_cookie_value() -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_key())
    }

    /// The `Set-Cookie` value for a session cookie (empty `value` with
    /// `Max-Age=0` clears it).
    pub fn cookie_header(&self, value: &str) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let age = if value.is_empty() {
            "; Max-Age=0".to_string()
        } else if self.enabled() {
            format!("; Max-Age={}", SESSION_TTL.as_secs())
        } else {
            String::new()
        };
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}")
    }

    /// Logs in with a token's secret: the cookie value of a new session,
    /// or `None` for a secret that matches no token.
    pub fn login(&self, secret: &str) -> Option<(String, Identity)> {
        let tokens = self.tokens.read().clone();
        let identity = tokens.check(secret)?.clone();
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let value = Auth::new_cookie_value();
        let now = std::time::Instant::now();
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
        }
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            Sha256::digest(value.as_bytes()).into(),
            Session {
                identity: identity.clone(),
                token: Some(digest),
                expires: now + SESSION_TTL,
            },
        );
        Some((value, identity))
    }

    /// Ends the session of this cookie value.
    pub fn logout(&self, cookie: &str) {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        self.sessions.lock().remove(&key);
    }

    /// The identity of a live session whose token still exists.
    fn session(&self, cookie: &str) -> Option<Identity> {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        let now = std::time::Instant::now();
        let mut sessions = self.sessions.lock();
        let s = sessions.get(&key)?;
        let tokens = self.tokens.read().clone();
        let still = s.expires > now
            && s.token.is_none_or(|d| {
                tokens
                    .digests
                    .iter()
                    .any(|(t, id)| bool::from(t.ct_eq(&d)) && *id == s.identity)
            });
        if !still {
            sessions.remove(&key);
            return None;
        }
        Some(s.identity.clone())
    }

    /// Origins (`host[:port]`) besides the request's own `Host` that count
    /// as this site: the one of `external_url`, behind a proxy.
    pub fn with_origins(mut self, origins: Vec<String>) -> Auth {
        self.origins = origins;
        self
    }

    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Re-reads the tokens file; on error the old tokens stay. Answers how
    /// many identities are now known (`None` when auth is off).
    pub fn reload(&self) -> Result<Option<usize>, TokensError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let tokens = Tokens::load(file)?;
        let n = tokens.len();
        *self.tokens.write() = Arc::new(tokens);
        tracing::info!(tokens = n, file = %file.display(), "tokens reloaded");
        Ok(Some(n))
    }

    fn deny(&self, d: Denied, req: &Request, path: &str) -> Response {
        self.metrics
            .http_requests_denied
            .with_label_values(&[d.as_str()])
            .inc();
        let remote = req
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        tracing::warn!(remote = %remote, method = %req.method(), path, reason = d.as_str(), "request refused");
        if is_board(path) {
            // After a login, back to the page asked for (a form's post
            // cannot be repeated by a redirect: then the board).
            let target = match *req.method() {
                Method::GET | Method::HEAD => req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
                _ => "/".into(),
            };
            return super::board::refused(d, &target);
        }
        match d {
            Denied::NoCredentials | Denied::BadCredentials => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "authentication required: send an API token as `Authorization: Bearer <token>` (or as the basic-auth password)",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="incidentd", Basic realm="incidentd""#),
                );
                r
            }
            Denied::Forbidden => error(
                StatusCode::FORBIDDEN,
                "this token's role does not allow this request",
            ),
            Denied::CrossSite => error(
                StatusCode::FORBIDDEN,
                "cross-site request refused: state-changing requests must come from this origin or from a non-browser client",
            ),
            Denied::ContentType => error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "request body must be JSON with `Content-Type: application/json`",
            ),
        }
    }
}

/// The middleware every route goes through (see the module contract).
pub async fn guard(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let (needs, body) = access(req.method(), &path);
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && cross_site(req.headers(), &auth.origins) {
        return auth.deny(Denied::CrossSite, &req, &path);
    }
    if !content_type_ok(req.headers(), body) {
        return auth.deny(Denied::ContentType, &req, &path);
    }
    // The session cookie counts on the board's pages and forms, and for
    // reading the API (the board's event stream); never for API writes.
    let cookie = session_cookie(req.headers()).filter(|_| is_board(&path) || !writes);
    let via = match &cookie {
        Some(c) => Via::Session {
            csrf: auth.csrf_for(c),
        },
        None => Via::Nothing,
    };
    if !auth.enabled() {
        req.extensions_mut().insert(via);
        return next.run(req).await;
    }
    let role = match needs {
        Access::Open if !auth.protect_metrics || is_board(&path) => {
            if let Some(id) = cookie.as_deref().and_then(|c| auth.session(c)) {
                req.extensions_mut().insert(CallerRole(id.role));
                req.extensions_mut().insert(Actor(id.name));
            }
            req.extensions_mut().insert(via);
            return next.run(req).await;
        }
        Access::Open => Role::Viewer,
        Access::Role(r) => r,
    };
    let tokens = auth.tokens.read().clone();
    let (identity, via) = match credentials(req.headers()) {
        Some(secret) => (tokens.check(&secret).cloned(), Via::Header),
        None => match req.extensions().get::<PeerSubject>() {
            Some(s) => (tokens.subject(&s.0).cloned(), Via::Header),
            None => match cookie.as_deref().and_then(|c| auth.session(c)) {
                Some(id) => (Some(id), via),
                None => return auth.deny(Denied::NoCredentials, &req, &path),
            },
        },
    };
    let Some(identity) = identity else {
        return auth.deny(Denied::BadCredentials, &req, &path);
    };
    if identity.role < role {
        return auth.deny(Denied::Forbidden, &req, &path);
    }
    req.extensions_mut().insert(Actor(identity.name));
    req.extensions_mut().insert(CallerRole(identity.role));
    req.extensions_mut().insert(via);
    next.run(req).await
}

/// A route of the board (HTML for people), not of the API.
pub fn is_board(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path.starts_with("/-/")
        || path.starts_with("/v2/")
        || path == "/metrics")
}

/// The board's session cookie, when the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty() && value.len() <= 128)
        .map(|(_, value)| value.to_string())
}

/// A bearer token, or the password of basic auth.
fn credentials(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// A browser request from another origin: `Sec-Fetch-Site` says so, or
/// `Origin` names another host than the request's `Host`.
fn cross_site(headers: &HeaderMap, origins: &[String]) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    // `Origin: scheme://host[:port]`; "null" (sandboxed pages, files) is
    // never this origin.
    match origin.split_once("://") {
        Some((_, origin_host)) => {
            !origin_host.eq_ignore_ascii_case(host)
                && !origins.iter().any(|o| o.eq_ignore_ascii_case(origin_host))
        }
        None => true,
    }
}

/// A body this route may read: JSON declared as such, or no body; ingest
/// routes also take a body without `Content-Type`.
fn content_type_ok(headers: &HeaderMap, body: Body) -> bool {
    if body == Body::None {
        return true;
    }
    let wanted = |essence: &str| match body {
        Body::Form => essence == "application/x-www-form-urlencoded",
        _ => {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        }
    };
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        let empty = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (!headers.contains_key(header::CONTENT_LENGTH)
                && !headers.contains_key(header::TRANSFER_ENCODING));
        return empty || body == Body::Ingest;
    };
    let Ok(ct) = ct.to_str() else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    wanted(&essence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_digest_and_roles_are_cumulative() {
        let secret = "s3cret";
        let text = format!(
            "tokens:\n  - name: am\n    role: ingest\n    sha256: {}\n  - name: ops\n    role: operator\n    sha256: {}\ncertificates:\n  - subject: CN=prom\n    name: prometheus\n    role: ingest\n",
            digest_hex(secret),
            digest_hex("other")
        );
        let t = Tokens::parse(&text).expect("valid");
        assert_eq!(
            t.check(secret),
            Some(&Identity {
                name: "am".into(),
                role: Role::Ingest
            })
        );
        assert_eq!(t.check("other").map(|i| i.role), Some(Role::Operator));
        assert_eq!(t.check("nope"), None);
        assert_eq!(
            t.subject("CN=prom").map(|i| i.name.as_str()),
            Some("prometheus")
        );
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert!(Role::Viewer > Role::Ingest);
    }

    #[test]
    fn bad_tokens_files_name_every_problem() {
        let e = Tokens::parse(
            "tokens:\n  - name: a\n    role: ingest\n    sha256: abc\n  - name: a\n    role: viewer\n    sha256: abc\n",
        )
        .expect_err("invalid");
        assert!(e.contains("tokens[0].sha256 must be 64 hex digits"), "{e}");
        assert!(
            e.contains("tokens[1].name \"a\" is also tokens[0]'s"),
            "{e}"
        );
        let e = Tokens::parse("tokens:\n  - name: a\n    role: root\n    sha256: x\n")
            .expect_err("invalid");
        assert!(e.contains("unknown variant `root`"), "{e}");
        assert!(Tokens::parse("tokenz: []\n").is_err());
    }

    #[test]
    fn new_tokens_are_long_random_and_listed_with_their_digest() {
        let (a, entry) = new_token("alertmanager-prod", Role::Ingest).expect("random");
        let (b, _) = new_token("x", Role::Admin).expect("random");
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 43, "{a}");
        let t = Tokens::parse(&format!("tokens:\n{entry}")).expect("the entry parses");
        assert_eq!(
            t.check(&a).map(|i| i.name.as_str()),
            Some("alertmanager-prod")
        );
    }

    #[test]
    fn credentials_from_bearer_and_basic() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(credentials(&h).as_deref(), Some("abc"));
        // user:secret
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpzZWNyZXQ="),
        );
        assert_eq!(credentials(&h).as_deref(), Some("secret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert_eq!(credentials(&h), None);
    }

    #[test]
    fn cross_site_by_origin_or_fetch_metadata() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9095"));
        assert!(!cross_site(&h, &[]), "no Origin: not a browser");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9095"),
        );
        assert!(!cross_site(&h, &[]));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h, &[]));
        assert!(
            !cross_site(&h, &["evil.example".into()]),
            "a configured origin"
        );
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h, &[]));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, &[]));
    }

    #[test]
    fn json_routes_need_json() {
        let ct = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
            h
        };
        assert!(content_type_ok(&ct("application/json"), Body::Json));
        assert!(content_type_ok(
            &ct("application/json; charset=utf-8"),
            Body::Json
        ));
        assert!(!content_type_ok(&ct("text/plain"), Body::Json));
        assert!(!content_type_ok(
            &ct("application/x-www-form-urlencoded"),
            Body::Ingest
        ));
        let mut none = HeaderMap::new();
        none.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        assert!(!content_type_ok(&none, Body::Json));
        assert!(content_type_ok(&none, Body::Ingest));
        none.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(content_type_ok(&none, Body::Json), "no body at all");
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_under_tls() {
        let metrics = Arc::new(Metrics::new());
        let plain = Auth::off(metrics.clone());
        let c = plain.cookie_header("abc");
        assert!(
            c.starts_with("incidentd_session=abc; Path=/; HttpOnly; SameSite=Strict"),
            "{c}"
        );
        assert!(!c.contains("Secure"), "{c}");
        let tls = Auth::off(metrics).with_secure_cookies(true);
        assert!(tls.cookie_header("abc").contains("; Secure"));
        assert!(tls.cookie_header("").contains("Max-Age=0"), "clears");
        // CSRF tokens depend on the cookie and on this process's key.
        assert_eq!(plain.csrf_for("a"), plain.csrf_for("a"));
        assert_ne!(plain.csrf_for("a"), plain.csrf_for("b"));
        assert_ne!(plain.csrf_for("a"), tls.csrf_for("a"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; incidentd_session=abc; y=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        assert!(is_board("/") && is_board("/incidents/INC-1") && !is_board("/api/v1/events"));
        assert!(!is_board("/metrics") && !is_board("/-/ready") && !is_board("/v2/enqueue"));
    }

    #[test]
    fn routes_missing_from_the_table_need_admin() {
        assert_eq!(
            access(&Method::GET, "/api/v1/incidents").0,
            Access::Role(Role::Viewer)
        );
        assert_eq!(access(&Method::HEAD, "/metrics").0, Access::Open);
        assert_eq!(
            access(&Method::PUT, "/api/v1/incidents").0,
            Access::Role(Role::Admin)
        );
    }
}
