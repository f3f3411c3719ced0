//! The `incidentd` binary: parses the command line and hands over to the
//! library. `serve` runs the daemon; `rules check` validates rule files
//! (`--strict`: warnings fail); `rules test` runs rule unit tests (with
//! coverage); `rules explain` tells an alert's path through the rules;
//! `rules schema` prints the editor schema; `replay` backtests rules
//! against a recorded alert stream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use incidentd::client::{Client, ListOptions, NewSilence, OpOptions};
use incidentd::config::Config;
use incidentd::daemon::Server;
use incidentd::http::auth::Role;
use incidentd::rules;

#[derive(Parser)]
#[command(
    name = "incidentd",
    version,
    about = "Turns monitoring alerts into managed incidents."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (defaults: listen 127.0.0.1:9095, data in ./data, rules from ./rules or built in).
    Serve(ServeArgs),
    /// Run only the HTTP receivers and produce every request's alerts into
    /// Kafka, keyed by correlation group, for `serve` instances consuming
    /// the topic as one group (see docs/scaling.md).
    Forward(ForwardArgs),
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Push a recorded alert stream (JSON lines) through the rules in memory
    /// and print the incidents it would have made. Never touches a data dir.
    Replay(ReplayArgs),
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The database of a stopped daemon.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Write a consistent copy of the database to a new file: from a running
    /// daemon over HTTP (admin token), or from the data dir of a stopped one.
    /// Restore: stop the daemon, copy the file into place as
    /// `<data_dir>/incidentd.redb`, start it.
    Backup(BackupArgs),
    /// Incidents of a running daemon: list, show, and work them.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Silences of a running daemon: list, add, expire.
    Silences {
        #[command(subcommand)]
        command: SilencesCommand,
    },
    /// Who is on call now (or `--at` an instant) for each team.
    Oncall {
        /// RFC 3339 instant (default now).
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// On-call schedules of a running daemon: shifts and overrides.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
}

#[derive(Subcommand)]
enum SchedulesCommand {
    /// A schedule's shifts and gaps (default: the next 7 days).
    Show {
        name: String,
        /// RFC 3339 (default now).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 (default 7 days after --from).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// PERSON covers schedule NAME from --start for --duration.
    Override {
        name: String,
        person: String,
        /// RFC 3339 (default now).
        #[arg(long)]
        start: Option<String>,
        /// How long, e.g. 8h, 2d.
        #[arg(long)]
        duration: String,
        /// Who (without tokens; default $USER).
        #[arg(long)]
        author: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Remove an override.
    RemoveOverride {
        name: String,
        id: String,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// Output of the client commands.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// A readable table.
    Table,
    /// The server's JSON answer.
    Json,
}

#[derive(Args)]
struct OutputArgs {
    /// Output: a table for people, or the server's JSON for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Args)]
struct ActArgs {
    /// The incident, e.g. INC-20261202-0001.
    id: String,
    /// A note for the timeline.
    #[arg(long)]
    note: Option<String>,
    /// Who acts (without tokens; default $USER). With a token, the token's
    /// name acts and this is who it was done for.
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Subcommand)]
enum IncidentsCommand {
    /// List incidents, newest first (default: every status, 100 at most).
    List {
        /// open, acknowledged, resolved or closed.
        #[arg(long)]
        status: Option<String>,
        /// P1..P5.
        #[arg(long)]
        priority: Option<String>,
        /// A category (availability, performance, ...).
        #[arg(long)]
        category: Option<String>,
        /// At most this many (1..10000).
        #[arg(long)]
        limit: Option<usize>,
        /// A label matcher on the incident's common labels, e.g.
        /// `cluster="eu-1"`; repeatable, all must match.
        #[arg(long = "match", value_name = "MATCHER")]
        matchers: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Open an incident by hand (service desk): a phone call, an email, a
    /// user request. Priority comes from impact × urgency.
    Open {
        /// What is wrong, in a line.
        title: String,
        #[arg(long)]
        description: Option<String>,
        /// hardware, software, network, account, performance, security or other.
        #[arg(long)]
        category: Option<String>,
        /// high, medium or low (default: the rules' default impact).
        #[arg(long)]
        impact: Option<String>,
        /// high, medium or low (default: the rules' default urgency).
        #[arg(long)]
        urgency: Option<String>,
        /// Who reported it (default: you).
        #[arg(long)]
        reporter: Option<String>,
        /// How to reach the reporter.
        #[arg(long)]
        contact: Option<String>,
        /// The affected service.
        #[arg(long)]
        service: Option<String>,
        /// A label, `name=value`; repeatable.
        #[arg(long = "label", value_name = "NAME=VALUE")]
        labels: Vec<String>,
        /// Who opens it (without tokens; default $USER).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Merge an incident into another: its alerts and timeline move there
    /// and it closes as merged.
    Merge {
        /// The incident that goes away.
        id: String,
        /// The incident that takes its alerts.
        #[arg(long)]
        into: String,
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Link two incidents: caused_by, causes or related.
    Link {
        id: String,
        /// The other incident.
        #[arg(long)]
        to: String,
        /// caused_by, causes or related (seen from ID).
        #[arg(long, default_value = "related")]
        relation: String,
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Split alerts (by fingerprint) off into a new incident.
    Split {
        id: String,
        /// Fingerprints of the alerts that leave (see `incidents show`).
        #[arg(required = true)]
        alerts: Vec<String>,
        /// Title of the new incident.
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Override the priority (with a reason), or clear the override.
    Priority {
        id: String,
        /// P1..P5.
        #[arg(long, conflicts_with_all = ["clear"])]
        set: Option<String>,
        /// high, medium or low (the priority then comes from the matrix).
        #[arg(long, conflicts_with_all = ["clear"])]
        impact: Option<String>,
        #[arg(long, conflicts_with_all = ["clear"])]
        urgency: Option<String>,
        /// Why (required to set).
        #[arg(long)]
        reason: Option<String>,
        /// Remove the override: the rules decide again.
        #[arg(long)]
        clear: bool,
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// One incident with its alerts and timeline.
    Show {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Acknowledge an open incident.
    Ack(ActArgs),
    /// Assign an incident to someone.
    Assign {
        #[command(flatten)]
        act: ActArgs,
        /// Who takes it.
        #[arg(long)]
        to: String,
    },
    /// Add a note to the timeline.
    Note(ActArgs),
    /// Resolve an incident (service restored).
    Resolve {
        #[command(flatten)]
        act: ActArgs,
        /// What restored the service.
        #[arg(long)]
        workaround: Option<String>,
        /// Why it broke.
        #[arg(long)]
        root_cause: Option<String>,
    },
    /// Close a resolved incident.
    Close(ActArgs),
    /// Reopen a resolved or closed incident.
    Reopen(ActArgs),
}

#[derive(Subcommand)]
enum SilencesCommand {
    /// Every silence (active, pending, expired).
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Silence the alerts matching every MATCHER (`service="db"`,
    /// `instance=~"db-.*"`, `env!="dev"`) from now on.
    Add {
        /// Label matchers, Alertmanager syntax; all must match.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h, 30m, 1d.
        #[arg(long)]
        duration: String,
        /// Why: a change ticket, a reason.
        #[arg(long)]
        comment: String,
        /// Who (without tokens; default $USER).
        #[arg(long)]
        author: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Expire a silence now.
    Expire {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Verify a stopped daemon's database: redb's integrity check, then
    /// decode every row. Exit 0 sound, 1 damaged or not readable.
    Check {
        /// Data directory holding incidentd.redb.
        #[arg(long, env = "INCIDENTD_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct BackupArgs {
    /// The file to write; it must not exist.
    #[arg(long)]
    to: PathBuf,
    /// Copy from this stopped daemon's data directory instead of over HTTP.
    #[arg(long, conflicts_with_all = ["url", "token"])]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

/// How the command-line client reaches a running daemon.
#[derive(Args)]
struct ClientArgs {
    /// The daemon's base URL.
    #[arg(long, env = "INCIDENTD_URL", default_value = "http://127.0.0.1:9095")]
    url: String,
    /// API token (sent as a bearer token).
    #[arg(long, env = "INCIDENTD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) to trust for an https URL, beyond the system's.
    #[arg(long, env = "INCIDENTD_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

impl ClientArgs {
    fn client(&self, timeout: Option<std::time::Duration>) -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        if let Some(path) = &self.ca_cert {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(b.build()?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    fn authorize(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a fresh random secret, and the entry to add to the tokens file
    /// (which holds only the secret's SHA-256).
    New {
        /// Who uses it: shown as the actor on timelines and silences.
        #[arg(long)]
        name: String,
        /// ingest (alert senders), viewer (read), operator (work incidents,
        /// silences) or admin (also reload).
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("unknown role {s:?}; expected ingest, viewer, operator or admin"))
}

#[derive(Args)]
struct ReplayArgs {
    /// JSON lines: webhook v4 payloads, v2 alert arrays or generic alerts,
    /// optionally wrapped as {"at": "<RFC 3339>", "payload": ...}.
    file: PathBuf,
    /// Rule directory (default: ./rules, else the built-in rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
    format: ReplayFormat,
    /// Virtual tick interval (timers run every tick, up to one tick after the last line).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    tick: std::time::Duration,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplayFormat {
    Text,
    Json,
}

#[derive(Args)]
struct ServeArgs {
    /// YAML configuration file (see README).
    #[arg(long, env = "INCIDENTD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "INCIDENTD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the database.
    #[arg(long, env = "INCIDENTD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Rule directory.
    #[arg(long, env = "INCIDENTD_RULES")]
    rules: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    security: SecurityArgs,
}

/// Who may call the HTTP API, and TLS; they override the config file's
/// `auth` and `tls` sections.
#[derive(Args)]
struct SecurityArgs {
    /// YAML file of API tokens (`incidentd token new` makes entries);
    /// without one, only a loopback address is served.
    #[arg(long, env = "INCIDENTD_AUTH_TOKENS")]
    auth_tokens: Option<PathBuf>,
    /// Serve a non-loopback address without tokens (anyone who can reach
    /// it can change incidents and silences).
    #[arg(long, env = "INCIDENTD_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    /// TLS certificate chain (PEM); with --tls-key, serve HTTPS.
    #[arg(long, env = "INCIDENTD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "INCIDENTD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl SecurityArgs {
    fn apply(self, config: &mut Config) {
        if let Some(f) = self.auth_tokens {
            config.auth.tokens_file = Some(f);
        }
        if self.insecure_no_auth {
            config.auth.insecure_no_auth = true;
        }
        if let (Some(cert_file), Some(key_file)) = (self.tls_cert, self.tls_key) {
            let client_ca_file = config.tls.take().and_then(|t| t.client_ca_file);
            config.tls = Some(incidentd::config::TlsConfig {
                cert_file,
                key_file,
                client_ca_file,
            });
        }
    }
}

/// Kafka flags; they override the config file's `kafka` section.
#[derive(Args)]
struct KafkaArgs {
    /// Kafka bootstrap brokers (host:port,...); with --kafka-topic this
    /// enables the Kafka source.
    #[arg(long, env = "INCIDENTD_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Kafka topic to consume (serve) or produce into (forward); repeat for
    /// several (the environment variable takes a comma-separated list).
    #[arg(
        long = "kafka-topic",
        env = "INCIDENTD_KAFKA_TOPIC",
        value_delimiter = ','
    )]
    kafka_topics: Vec<String>,
    /// Kafka consumer group (default: incidentd).
    #[arg(long, env = "INCIDENTD_KAFKA_GROUP")]
    kafka_group: Option<String>,
    /// This instance's number in the group (0-99, unique per instance); the
    /// incident ids it opens end in it.
    #[arg(long, env = "INCIDENTD_KAFKA_INSTANCE")]
    kafka_instance: Option<u32>,
    /// Hand incidents over through `<topic>-changelog` when partitions move
    /// (needs --kafka-instance).
    #[arg(long, env = "INCIDENTD_KAFKA_CHANGELOG")]
    kafka_changelog: bool,
}

impl KafkaArgs {
    fn apply(self, config: &mut Config) {
        if self.kafka_brokers.is_none()
            && self.kafka_topics.is_empty()
            && self.kafka_group.is_none()
            && self.kafka_instance.is_none()
            && !self.kafka_changelog
        {
            return;
        }
        let k = config.kafka.get_or_insert_with(Default::default);
        if let Some(b) = self.kafka_brokers {
            k.brokers = b;
        }
        if !self.kafka_topics.is_empty() {
            k.topics = self.kafka_topics;
        }
        if let Some(g) = self.kafka_group {
            k.group = g;
        }
        if self.kafka_instance.is_some() {
            k.instance = self.kafka_instance;
        }
        if self.kafka_changelog {
            k.changelog = true;
        }
    }
}

#[derive(Args)]
struct ForwardArgs {
    /// YAML configuration file; its `kafka` section names brokers and topic.
    #[arg(long, env = "INCIDENTD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "INCIDENTD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Rule directory: the group keys must come from the consumers' rules.
    #[arg(long, env = "INCIDENTD_RULES")]
    rules: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files; print every error and warning with
    /// file:line:column. Exit 0 valid, 1 invalid (or, with --strict, warnings).
    Check {
        /// Rule directory (default: ./rules, else the built-in rules).
        dir: Option<PathBuf>,
        /// Fail (exit 1) on warnings too: dead rules, blast radius over a
        /// grouped label, fragile group_by labels, actions that never run.
        #[arg(long)]
        strict: bool,
    },
    /// Run rule unit tests (YAML test files, see rules/README.md). Exit 0 all
    /// passed, 1 a test failed, the rules do not compile or coverage is
    /// below --min-coverage, 2 a broken test file.
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Report per rule and section whether a test exercised it.
        #[arg(long)]
        coverage: bool,
        /// Fail when less than this percentage of the rules is covered
        /// (implies --coverage).
        #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
        min_coverage: Option<f64>,
    },
    /// Explain an alert's path through the rules: suppression, correlation,
    /// classification, priority, SLA, actions and escalation.
    Explain(ExplainArgs),
    /// Print the JSON Schema of rule files (rules/schema.json), or with
    /// --tests of rule test files (rules/test-schema.json).
    Schema {
        #[arg(long)]
        tests: bool,
    },
}

#[derive(Args)]
struct ExplainArgs {
    /// A payload with one alert or more, in any format the HTTP API takes
    /// (generic alert, Alertmanager v2 array, webhook v4, PagerDuty event);
    /// `-` or none: standard input.
    file: Option<PathBuf>,
    /// Explain against this rule directory instead of a running daemon.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Without --rules: the running daemon whose loaded rules and live
    /// state explain it (POST /api/v1/rules/explain, viewer role).
    #[command(flatten)]
    client: ClientArgs,
    /// With --rules: the time to evaluate at (RFC 3339; default now), e.g.
    /// to see whether a maintenance window covers it then.
    #[arg(long, value_parser = parse_time)]
    at: Option<chrono::DateTime<chrono::Utc>>,
    /// Output: text for people, json for tools (the endpoint's document).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReplayFormat::Text)]
    output: ReplayFormat,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a percentage between 0 and 100")),
    }
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?}: {e} (RFC 3339, e.g. 2026-01-11T03:00:00Z)"))
}

/// mimalloc: the ingest path allocates many small strings (labels) per
/// alert; glibc malloc/free was over a tenth of the daemon's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            match serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("incidentd: {}", error_chain(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Forward(args) => {
            init_logging();
            match forward(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("incidentd: {}", error_chain(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Rules {
            command: RulesCommand::Check { dir, strict },
        } => match rules::Source::resolve(dir).load() {
            Ok(r) => {
                let warnings = rules::lint::lint(&r);
                for w in &warnings {
                    match &w.pos {
                        Some(p) => eprintln!("{p}: warning: {}", w.message),
                        None => eprintln!("warning: {}", w.message),
                    }
                }
                if strict && !warnings.is_empty() {
                    eprintln!(
                        "FAILED: {} warning(s), and --strict fails on warnings",
                        warnings.len()
                    );
                    return ExitCode::from(1);
                }
                match warnings.len() {
                    0 => println!("SUCCESS: {}", r.summary()),
                    n => println!("SUCCESS: {} ({n} warning(s))", r.summary()),
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("FAILED: {} error(s)", e.0.len());
                ExitCode::from(1)
            }
        },
        Command::Rules {
            command: RulesCommand::Schema { tests },
        } => {
            let schema = if tests {
                incidentd::tools::ruletest::parse::schema()
            } else {
                rules::schema::rule_file()
            };
            print!("{}", rules::schema::pretty(&schema));
            ExitCode::SUCCESS
        }
        Command::Rules {
            command: RulesCommand::Explain(args),
        } => explain(args),
        Command::Rules {
            command:
                RulesCommand::Test {
                    files,
                    coverage,
                    min_coverage,
                },
        } => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let options = incidentd::tools::ruletest::Options {
                coverage,
                min_coverage,
            };
            match incidentd::tools::ruletest::run_paths(&files, &options, &mut out, &mut err) {
                Ok(code) => ExitCode::from(code),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
                Err(e) => {
                    eprintln!("incidentd: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Replay(args) => replay(args),
        Command::Db {
            command: DbCommand::Check { data_dir },
        } => db_check(&data_dir),
        Command::Incidents { command } => client_command(run_incidents(command)),
        Command::Silences { command } => client_command(run_silences(command)),
        Command::Oncall { at, client, out } => client_command(async move {
            let v = client.api()?.oncall(at.as_deref()).await?;
            Ok(render(&out, &v, incidentd::client::oncall_table))
        }),
        Command::Schedules { command } => client_command(run_schedules(command)),
        Command::Backup(args) => match backup(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("incidentd: {}", error_chain(&e));
                ExitCode::from(1)
            }
        },
        Command::Token {
            command: TokenCommand::New { name, role },
        } => match incidentd::http::auth::new_token(&name, role) {
            Ok((secret, entry)) => {
                println!("secret (give it to {name}; it is not stored anywhere):\n{secret}\n");
                println!("add to the tokens file (--auth-tokens), under `tokens:`:\n{entry}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("incidentd: no randomness for a secret: {e}");
                ExitCode::from(1)
            }
        },
    }
}

/// Runs a client command; its error (the server's message for a 4xx/5xx)
/// goes to stderr and the exit code is 1.
fn client_command(work: impl std::future::Future<Output = anyhow::Result<String>>) -> ExitCode {
    let done = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(work));
    match done {
        Ok(text) => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = out.write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("incidentd: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

impl ClientArgs {
    fn api(&self) -> anyhow::Result<Client> {
        let http = self.client(Some(std::time::Duration::from_secs(60)))?;
        Ok(Client::new(http, &self.url, self.token.clone()))
    }

    /// Who acts: the given name; without a token, $USER.
    fn by(&self, given: Option<String>) -> Option<String> {
        given.or_else(|| {
            self.token
                .is_none()
                .then(|| std::env::var("USER").ok())
                .flatten()
        })
    }
}

fn render(
    out: &OutputArgs,
    v: &serde_json::Value,
    table: impl FnOnce(&serde_json::Value) -> String,
) -> String {
    match out.output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Table => table(v),
    }
}

async fn act(a: ActArgs, action: &str, mut o: OpOptions) -> anyhow::Result<String> {
    let api = a.client.api()?;
    o.by = a.client.by(a.by);
    o.note = a.note;
    let v = api.operate(&a.id, action, &o).await?;
    Ok(render(&a.out, &v, |v| {
        format!(
            "{} is {}{}\n",
            v["id"].as_str().unwrap_or(&a.id),
            v["status"].as_str().unwrap_or("?"),
            v["assignee"]
                .as_str()
                .map(|x| format!(", assigned to {x}"))
                .unwrap_or_default()
        )
    }))
}

async fn run_incidents(command: IncidentsCommand) -> anyhow::Result<String> {
    let now = chrono::Utc::now();
    match command {
        IncidentsCommand::List {
            status,
            priority,
            category,
            limit,
            matchers,
            client,
            out,
        } => {
            let v = client
                .api()?
                .incidents(&ListOptions {
                    status,
                    priority,
                    category,
                    limit,
                    matchers,
                })
                .await?;
            Ok(render(&out, &v, |v| {
                incidentd::client::incidents_table(v, now)
            }))
        }
        IncidentsCommand::Show { id, client, out } => {
            let v = client.api()?.incident(&id).await?;
            Ok(render(&out, &v, |v| {
                incidentd::client::incident_text(v, now)
            }))
        }
        IncidentsCommand::Ack(a) => act(a, "ack", OpOptions::default()).await,
        IncidentsCommand::Assign { act: a, to } => {
            act(
                a,
                "assign",
                OpOptions {
                    assignee: Some(to),
                    ..OpOptions::default()
                },
            )
            .await
        }
        IncidentsCommand::Note(a) => act(a, "notes", OpOptions::default()).await,
        IncidentsCommand::Resolve {
            act: a,
            workaround,
            root_cause,
        } => {
            act(
                a,
                "resolve",
                OpOptions {
                    workaround,
                    root_cause,
                    ..OpOptions::default()
                },
            )
            .await
        }
        IncidentsCommand::Close(a) => act(a, "close", OpOptions::default()).await,
        IncidentsCommand::Reopen(a) => act(a, "reopen", OpOptions::default()).await,
        IncidentsCommand::Open {
            title,
            description,
            category,
            impact,
            urgency,
            reporter,
            contact,
            service,
            labels,
            by,
            client,
            out,
        } => {
            let mut l = serde_json::Map::new();
            for pair in labels {
                let Some((k, v)) = pair.split_once('=') else {
                    anyhow::bail!("--label {pair:?}: expected NAME=VALUE");
                };
                l.insert(k.trim().to_string(), serde_json::json!(v));
            }
            let mut body = serde_json::json!({"title": title, "labels": l});
            for (k, v) in [
                ("description", description),
                ("category", category),
                ("impact", impact),
                ("urgency", urgency),
                ("reporter", reporter),
                ("contact", contact),
                ("service", service),
                ("by", client.by(by)),
            ] {
                if let Some(v) = v {
                    body[k] = serde_json::json!(v);
                }
            }
            let v = client.api()?.open_incident(body).await?;
            Ok(render(&out, &v, desk_line))
        }
        IncidentsCommand::Merge {
            id,
            into,
            by,
            client,
            out,
        } => {
            let body = serde_json::json!({"into": into, "by": client.by(by)});
            let v = client.api()?.desk(&id, "merge", body).await?;
            Ok(render(&out, &v, |v| {
                format!("{id} merged into {}", desk_line(v))
            }))
        }
        IncidentsCommand::Link {
            id,
            to,
            relation,
            by,
            client,
            out,
        } => {
            let body = serde_json::json!({"to": to, "relation": relation, "by": client.by(by)});
            let v = client.api()?.desk(&id, "link", body).await?;
            Ok(render(&out, &v, |v| {
                format!("{id} {relation} {to}: {}", desk_line(v))
            }))
        }
        IncidentsCommand::Split {
            id,
            alerts,
            title,
            by,
            client,
            out,
        } => {
            let body = serde_json::json!({"alerts": alerts, "title": title, "by": client.by(by)});
            let v = client.api()?.desk(&id, "split", body).await?;
            Ok(render(&out, &v, |v| format!("split off: {}", desk_line(v))))
        }
        IncidentsCommand::Priority {
            id,
            set,
            impact,
            urgency,
            reason,
            clear,
            by,
            client,
            out,
        } => {
            let mut body = serde_json::json!({"clear": clear, "by": client.by(by)});
            for (k, v) in [
                ("priority", set.map(|p| p.to_ascii_uppercase())),
                ("impact", impact),
                ("urgency", urgency),
                ("reason", reason),
            ] {
                if let Some(v) = v {
                    body[k] = serde_json::json!(v);
                }
            }
            let v = client.api()?.desk(&id, "priority", body).await?;
            Ok(render(&out, &v, desk_line))
        }
    }
}

/// One line about an incident a service-desk command answered with.
fn desk_line(v: &serde_json::Value) -> String {
    let mut line = format!(
        "{} {} {} {}",
        v["id"].as_str().unwrap_or("?"),
        v["priority"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        v["title"].as_str().unwrap_or("")
    );
    if let Some(r) = v["priority_override"]["reason"].as_str() {
        line.push_str(&format!(" (priority set by hand: {r})"));
    }
    line.push('\n');
    line
}

async fn run_silences(command: SilencesCommand) -> anyhow::Result<String> {
    match command {
        SilencesCommand::List { client, out } => {
            let v = client.api()?.silences().await?;
            Ok(render(&out, &v, incidentd::client::silences_table))
        }
        SilencesCommand::Add {
            matchers,
            duration,
            comment,
            author,
            client,
            out,
        } => {
            let created_by = client.by(author);
            let v = client
                .api()?
                .add_silence(&NewSilence {
                    matchers,
                    duration,
                    comment,
                    created_by,
                })
                .await?;
            Ok(render(&out, &v, |v| {
                format!("{}\n", v["silence_id"].as_str().unwrap_or("?"))
            }))
        }
        SilencesCommand::Expire { id, client, out } => {
            let v = client.api()?.expire_silence(&id).await?;
            Ok(render(&out, &v, |v| {
                format!(
                    "{} is {}\n",
                    v["id"].as_str().unwrap_or(&id),
                    v["state"].as_str().unwrap_or("?")
                )
            }))
        }
    }
}

async fn run_schedules(command: SchedulesCommand) -> anyhow::Result<String> {
    match command {
        SchedulesCommand::Show {
            name,
            from,
            to,
            client,
            out,
        } => {
            let v = client
                .api()?
                .schedule(&name, from.as_deref(), to.as_deref())
                .await?;
            Ok(render(&out, &v, incidentd::client::schedule_table))
        }
        SchedulesCommand::Override {
            name,
            person,
            start,
            duration,
            author,
            client,
            out,
        } => {
            let starts_at = start.unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
            let mut body = serde_json::json!({
                "person": person, "starts_at": starts_at, "duration": duration,
            });
            if let Some(by) = client.by(author) {
                body["created_by"] = serde_json::json!(by);
            }
            let v = client.api()?.add_override(&name, body).await?;
            Ok(render(&out, &v, |v| {
                let o = &v["override"];
                format!(
                    "{}: {} covers {} from {} to {}\n",
                    o["id"].as_str().unwrap_or("?"),
                    o["person"].as_str().unwrap_or("?"),
                    o["schedule"].as_str().unwrap_or("?"),
                    o["starts_at"].as_str().unwrap_or("?"),
                    o["ends_at"].as_str().unwrap_or("?")
                )
            }))
        }
        SchedulesCommand::RemoveOverride {
            name,
            id,
            client,
            out,
        } => {
            let v = client.api()?.remove_override(&name, &id).await?;
            Ok(render(&out, &v, |v| {
                format!("{} removed\n", v["override"]["id"].as_str().unwrap_or(&id))
            }))
        }
    }
}

fn db_check(dir: &std::path::Path) -> ExitCode {
    match incidentd::store::maintenance::check(dir) {
        Ok(c) => {
            for (table, rows) in &c.tables {
                println!("{table}: {rows} rows");
            }
            if c.repaired {
                println!("redb's integrity check found damage and repaired what it could");
            }
            for p in &c.problems {
                println!("unreadable row: {p}");
            }
            if c.problems.is_empty() && !c.repaired {
                println!("OK: {}/incidentd.redb is sound", dir.display());
                ExitCode::SUCCESS
            } else {
                println!(
                    "DAMAGED: {} unreadable row(s){}",
                    c.problems.len(),
                    if c.repaired { ", repaired by redb" } else { "" }
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("incidentd: {e}");
            ExitCode::from(1)
        }
    }
}

fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if args.to.exists() {
        anyhow::bail!("{} already exists; give a new file", args.to.display());
    }
    if let Some(dir) = &args.data_dir {
        let store = incidentd::store::Store::open(dir)?;
        let b = store.backup_to(&args.to)?;
        println!(
            "wrote {} ({} rows, {} bytes)",
            args.to.display(),
            b.rows,
            b.bytes
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        use tokio::io::AsyncWriteExt as _;
        let client = args.client.client(None)?;
        let url = args.client.url("/-/backup");
        let mut r = args
            .client
            .authorize(client.post(&url))
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if !r.status().is_success() {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            anyhow::bail!("{url} answered {status}: {}", text.trim());
        }
        let rows = r
            .headers()
            .get("x-incidentd-backup-rows")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_string();
        let expected = r.content_length();
        let mut partial = args.to.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut bytes = 0u64;
        let copied = async {
            while let Some(chunk) = r.chunk().await? {
                file.write_all(&chunk).await?;
                bytes += chunk.len() as u64;
            }
            file.sync_all().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("backup from {url} cut off after {bytes} bytes")));
        }
        if let Some(expected) = expected.filter(|n| *n != bytes) {
            let _ = std::fs::remove_file(&partial);
            anyhow::bail!("backup from {url} cut off: {bytes} of {expected} bytes");
        }
        std::fs::rename(&partial, &args.to)
            .with_context(|| format!("cannot rename {} into place", partial.display()))?;
        println!("wrote {} ({rows} rows, {bytes} bytes)", args.to.display());
        Ok(())
    })
}

fn explain(args: ExplainArgs) -> ExitCode {
    match explain_report(&args) {
        Ok(report) => {
            let text = match args.output {
                ReplayFormat::Text => incidentd::tools::explain::render_text(&report),
                ReplayFormat::Json => match serde_json::to_string_pretty(&report) {
                    Ok(v) => v + "\n",
                    Err(e) => {
                        eprintln!("incidentd: {e}");
                        return ExitCode::from(1);
                    }
                },
            };
            print_out(&text)
        }
        Err(e) => {
            eprintln!("incidentd: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The explanation, from rule files (`--rules`) or a running daemon.
fn explain_report(args: &ExplainArgs) -> anyhow::Result<incidentd::engine::explain::Report> {
    use std::io::Read as _;
    let input = match args.file.as_deref() {
        None => None,
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
    };
    let input = match input {
        Some(b) => b,
        None => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .context("cannot read standard input")?;
            b
        }
    };
    if let Some(dir) = &args.rules {
        let rules = rules::RuleSet::load_dir(dir).map_err(|e| {
            anyhow::anyhow!("the rules do not compile ({} error(s)):\n{e}", e.0.len())
        })?;
        let at = args.at.unwrap_or_else(chrono::Utc::now);
        return Ok(incidentd::tools::explain::local(&rules, &input, at)?);
    }
    if args.at.is_some() {
        anyhow::bail!("--at needs --rules: a daemon explains at its own clock");
    }
    // Say what is wrong with the payload before asking anyone.
    incidentd::tools::explain::alerts(&input, chrono::Utc::now())?;
    let url = args.client.url("/api/v1/rules/explain");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = args
            .client
            .client(Some(std::time::Duration::from_secs(30)))?;
        let req = client
            .post(&url)
            .header("content-type", "application/json")
            .body(input);
        let resp = args.client.authorize(req).send().await.with_context(|| {
            format!("cannot reach incidentd at {url}; is it running? (--url, INCIDENTD_URL; or explain against rule files with --rules DIR)")
        })?;
        let status = resp.status();
        let body = resp.text().await.context("reading the answer")?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            anyhow::bail!("{url} answered {status}: {message}");
        }
        serde_json::from_str(&body).with_context(|| format!("{url} answered something that is not an explanation"))
    })
}

/// Writes to stdout; a closed pipe (`| head`) is the reader's choice.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("incidentd: {e}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn replay(args: ReplayArgs) -> ExitCode {
    let rules = match rules::Source::resolve(args.rules).load() {
        Ok(r) => std::sync::Arc::new(r),
        Err(e) => {
            eprintln!("{e}");
            eprintln!("FAILED: the rules do not compile ({} error(s))", e.0.len());
            return ExitCode::from(1);
        }
    };
    let opts = incidentd::tools::replay::Options {
        tick: args.tick,
        ..Default::default()
    };
    let report = match incidentd::tools::replay::replay_file(&args.file, rules, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("incidentd: cannot read {}: {e}", args.file.display());
            return ExitCode::from(1);
        }
    };
    let text = match args.format {
        ReplayFormat::Text => incidentd::tools::replay::render_text(&report),
        ReplayFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("incidentd: {e}");
                return ExitCode::from(1);
            }
        },
    };
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("incidentd: {e}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INCIDENTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

/// An error with its causes, each said once: thiserror messages often
/// already include their source, which anyhow's `{:#}` would repeat.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

/// The config file (or the embedded default) with command-line overrides.
fn load_config(
    file: Option<&PathBuf>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    rules: Option<PathBuf>,
    kafka: KafkaArgs,
    security: SecurityArgs,
) -> anyhow::Result<Config> {
    let mut config = match file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(l) = listen {
        config.listen = l;
    }
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    if let Some(r) = rules {
        config.rules_dir = Some(r);
    }
    kafka.apply(&mut config);
    security.apply(&mut config);
    Ok(config)
}

/// Runs `daemon` on a new runtime with its listener bound and the shutdown
/// signals installed first, so a SIGTERM during startup is not lost.
fn run_daemon<F, Fut>(config: Config, daemon: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, tokio::net::TcpListener, ShutdownSignal) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        daemon(config, listener, Box::pin(shutdown)).await
    })
}

type ShutdownSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(
        args.config.as_ref(),
        args.listen,
        args.data_dir,
        args.rules,
        args.kafka,
        args.security,
    )?;
    let rules = rules::Source::resolve(config.rules_dir.clone());
    run_daemon(config, |config, listener, shutdown| async move {
        let server = Server::start(config, rules, listener).await?;
        let reloader = server.reloader();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                let r = reloader.all().await;
                for e in r.errors {
                    tracing::error!("SIGHUP reload failed, the previous configuration of that part is still active:\n{e}");
                }
            }
        });
        server.run(shutdown).await?;
        Ok(())
    })
}

fn forward(args: ForwardArgs) -> anyhow::Result<()> {
    let config = load_config(
        args.config.as_ref(),
        args.listen,
        None,
        args.rules,
        args.kafka,
        args.security,
    )?;
    let rules = rules::Source::resolve(config.rules_dir.clone());
    run_daemon(config, |config, listener, shutdown| async move {
        incidentd::daemon::forward::run(config, rules, listener, shutdown).await?;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called (inside the runtime), not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}
