//! The `gatehouse` command: parses flags and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A TLS data-sharing gateway between third parties and S3"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `gatehouse=debug`.
    #[arg(long, env = "GATEHOUSE_LOG", default_value = "info", global = true)]
    log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and partner files; exits non-zero with every error found.
    Check {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
    },
    /// Partner side: get an access token with a profile's key and print it.
    Token {
        /// Partner profile JSON: endpoint, partner, external_id, key_file, ca_file, key_id.
        #[arg(long)]
        profile: PathBuf,
        /// Print the whole token response as JSON instead of the bare token.
        #[arg(long)]
        json: bool,
        /// Space-separated shares to limit the token to.
        #[arg(long)]
        scope: Option<String>,
        /// Requested lifetime in seconds (capped by the gateway).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Data loss prevention tools.
    Dlp {
        #[command(subcommand)]
        command: DlpCommand,
    },
    /// Revoke a session, or every current session of a partner, on the running gateway.
    Revoke {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        /// The session id (`sid`, also `session_id` in the token response and the audit trail).
        #[arg(long, conflicts_with = "partner", required_unless_present = "partner")]
        session: Option<String>,
        /// The partner id: all its tokens issued until now become void.
        #[arg(long)]
        partner: Option<String>,
    },
    /// Ask the running gateway to reload its configuration (as SIGHUP does); prints every
    /// error of a rejected change (exit 64; the old configuration stays in force).
    Reload {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
    },
    /// List the running gateway's live sessions.
    Sessions {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        /// Print the admin listener's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Probe the admin listener's /healthz (or /readyz): exit 0 when healthy. For container
    /// health checks.
    Healthcheck {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        /// Probe /readyz (store, key service, audit) instead of /healthz.
        #[arg(long)]
        ready: bool,
    },
    /// Onboard and offboard partners (files validated with the whole configuration; the
    /// running gateway is told to reload).
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Partner side: make a key pair; send only the public key to the gateway operator.
    Keygen {
        /// File prefix: writes PREFIX.key.pem (0600) and PREFIX.pub.pem.
        #[arg(long)]
        out: PathBuf,
        /// ed25519 or es256.
        #[arg(long, default_value = "ed25519")]
        alg: String,
    },
    /// The audit trail: verify its chain and signatures, search it, watch it.
    Audit {
        #[command(subcommand)]
        command: gatehouse::audit::cli::Command,
    },
    /// Compliance checks on the configuration (expiry, approvals, MFA for federated writes,
    /// rate limits, protection of confidential shares, TLS, dev mode); exit 1 when a finding
    /// reaches --fail-on.
    Lint {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        /// Lowest severity that makes the exit code 1.
        #[arg(long, value_enum, default_value = "medium")]
        fail_on: gatehouse::lint::Severity,
        /// One JSON object per finding instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Per-partner activity from the audit trail (requests, bytes, objects, denials, DLP
    /// findings, source IPs, sessions, first and last access) as a table, JSON or one
    /// self-contained HTML file.
    Report(gatehouse::report::ReportArgs),
    /// The access review: expiring, expired and unused access, overdue reviews, missing
    /// paperwork and approvals; exit 1 when something needs attention.
    Review(gatehouse::review::ReviewArgs),
    /// Access policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Key-encryption keys of envelope shares: re-wrap data keys, rotate the local key.
    Keys {
        #[command(subcommand)]
        command: gatehouse::keys_cli::Command,
    },
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// Write a new partner file with a fresh external id and print the profile to hand over.
    Add(Box<gatehouse::onboard::AddArgs>),
    /// Suspend a partner: revoke its sessions (persisted) and set status = "suspended".
    Suspend {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        id: String,
    },
    /// Resume a suspended partner (it needs new tokens).
    Resume {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        id: String,
    },
    /// Remove a partner: revoke its sessions (persisted), archive its file (kept for audit).
    Remove {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        id: String,
    },
    /// Prove revocation works on the running gateway with a canary partner (no access to real
    /// data); always cleans up; prints timings.
    TestRevocation {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        /// Share the canary writes its object to (under gatehouse-canary/<id>/).
        #[arg(long)]
        share: String,
        /// Partner listener base URL; default: the origin of token.url.
        #[arg(long)]
        endpoint: Option<String>,
        /// CA certificate for the listener; default: the dev CA if present, else system roots.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Evaluate a hypothetical request against the configuration: prints ALLOW or
    /// DENY <reason_code>, then why. Exit 0 allow, 1 deny, 2 usage or configuration error.
    Explain(gatehouse::policy::explain::ExplainArgs),
}

#[derive(Subcommand)]
enum DlpCommand {
    /// Scan a file (or `-` for stdin) with the gateway's DLP engine: masked output on stdout.
    Scan(gatehouse::dlp::cli::ScanArgs),
    /// Data owner: reverse `tokenize_fpe` tokens made for a partner (arguments or stdin lines).
    Detokenize(gatehouse::dlp::cli::DetokenizeArgs),
    /// Create an FF1 key for `tokenize_fpe`, written wrapped by a key service.
    FpeKey(gatehouse::dlp::cli::FpeKeyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => gatehouse::cli::serve(&config).await,
            Command::Check { config } => gatehouse::cli::check(&config),
            Command::Revoke {
                config,
                session,
                partner,
            } => gatehouse::cli::revoke(&config, session.as_deref(), partner.as_deref()).await,
            Command::Reload { config } => gatehouse::cli::reload(&config).await,
            Command::Sessions { config, json } => gatehouse::cli::sessions(&config, json).await,
            Command::Healthcheck { config, ready } => {
                gatehouse::cli::healthcheck(&config, ready).await
            }
            Command::Partner { command } => partner(command).await,
            Command::Keygen { out, alg } => gatehouse::onboard::keygen(&out, &alg),
            Command::Audit { command } => gatehouse::audit::cli::run(&command),
            Command::Keys { command } => gatehouse::keys_cli::run(command).await,
            Command::Lint {
                config,
                fail_on,
                json,
            } => gatehouse::lint::run(&config, fail_on, json),
            Command::Report(args) => gatehouse::report::run(&args),
            Command::Review(args) => gatehouse::review::run(&args),
            Command::Policy {
                command: PolicyCommand::Explain(args),
            } => gatehouse::policy::explain::run(&args),
            Command::Dlp {
                command: DlpCommand::Scan(args),
            } => gatehouse::dlp::cli::scan(&args).await,
            Command::Dlp {
                command: DlpCommand::Detokenize(args),
            } => gatehouse::dlp::cli::detokenize(&args).await,
            Command::Dlp {
                command: DlpCommand::FpeKey(args),
            } => gatehouse::dlp::cli::fpe_key(&args).await,
            Command::Token {
                profile,
                json,
                scope,
                duration,
            } => token(&profile, json, scope, duration).await,
        }
    })
}

async fn partner(command: PartnerCommand) -> ExitCode {
    use gatehouse::onboard::{self, Change};
    match command {
        PartnerCommand::Add(args) => onboard::add(&args).await,
        PartnerCommand::Suspend { config, id } => {
            onboard::change(&config, &id, Change::Suspend).await
        }
        PartnerCommand::Resume { config, id } => {
            onboard::change(&config, &id, Change::Resume).await
        }
        PartnerCommand::Remove { config, id } => {
            onboard::change(&config, &id, Change::Remove).await
        }
        PartnerCommand::TestRevocation {
            config,
            share,
            endpoint,
            ca_file,
            json,
        } => {
            gatehouse::canary::run(&gatehouse::canary::Args {
                config,
                share,
                endpoint,
                ca_file,
                json,
            })
            .await
        }
    }
}

async fn token(
    profile: &std::path::Path,
    json: bool,
    scope: Option<String>,
    duration: Option<u64>,
) -> ExitCode {
    let result = async {
        let p = gatehouse::auth::client::Profile::load(profile)
            .with_context(|| format!("profile {}", profile.display()))?;
        gatehouse::auth::client::request_token(&p, scope.as_deref(), duration).await
    }
    .await;
    match result {
        Ok(resp) if json => {
            println!("{resp}");
            ExitCode::SUCCESS
        }
        Ok(resp) => match resp.get("access_token").and_then(|t| t.as_str()) {
            Some(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: the token response has no access_token");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
