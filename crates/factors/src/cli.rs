//! The command line: `factors [serve]`, `factors migrate`, `factors token mint`,
//! `factors healthcheck`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use factors_adapters_jwt::{DevTokenMinter, MintRequest, RoleClaim};
use secrecy::ExposeSecret;

use crate::settings::{Environment, Loaded, Settings};
use crate::{Application, telemetry};

/// factors: OTP SMS authenticators behind the ZITADEL v3alpha user API, and sign-in with
/// them through ZITADEL's session API.
///
/// Configuration: config/default.toml, then config/$FACTORS_ENV.toml (development by
/// default), then FACTORS__<SECTION>__<KEY> environment variables.
#[derive(Debug, Parser)]
#[command(name = "factors", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (what `factors` does without a subcommand).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Development tokens, signed with auth.hs256_secret (in development, the one
    /// generated into <data_dir>/development-secrets.toml unless configured).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Ask the running service (at server.addr, on loopback when that is a wildcard) for
    /// /readyz: exits 0 on a 200, non-zero with the reason otherwise. For container
    /// health checks.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// How long to wait for the answer, for example 500ms, 3s.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed development token on stdout, nothing else.
    Mint(MintArgs),
}

#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// The caller's user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// The caller's organization (claim urn:zitadel:iam:user:resourceowner:id).
    #[arg(long)]
    pub org: String,
    /// A role grant; repeat for several. `ROLE:ORG` scopes it to one organization, a
    /// bare ROLE holds instance-wide (IAM_* roles) or on --org.
    #[arg(long = "role", value_name = "ROLE[:ORG]")]
    pub roles: Vec<String>,
    /// Lifetime, for example 15m, 1h, 2d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// The settings, with the development secrets filled in where development lacks them.
fn load() -> anyhow::Result<(Loaded, Option<std::path::PathBuf>)> {
    let mut loaded = Settings::load(Environment::from_env()?)?;
    let generated = loaded.settings.fill_development_secrets()?;
    Ok((loaded, generated))
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stops the command; `main` prints it and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Token { command: TokenCommand::Mint(args) } => mint(&args),
        Command::Healthcheck(args) => healthcheck(&args).await,
    }
}

fn report_unknown_keys(loaded: &Loaded) {
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown configuration key; ignored");
    }
}

async fn serve() -> anyhow::Result<()> {
    let (loaded, generated) = load()?;
    let settings = &loaded.settings;
    telemetry::init(&settings.log);
    report_unknown_keys(&loaded);
    let store = settings.store()?.name();
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.addr(), environment = settings.environment.as_str(), store, "factors is listening");
    if let Some(secrets) = generated {
        tracing::info!(
            secrets = %secrets.display(),
            "development secrets in use; mint a token with: \
             cargo run -- token mint --sub alice --org org-a --role IAM_OWNER"
        );
    }
    app.run_until_stopped().await
}

async fn migrate() -> anyhow::Result<()> {
    // Migrating needs no secret: none is generated for it.
    let loaded = Settings::load(Environment::from_env()?)?;
    let settings = &loaded.settings;
    telemetry::init(&settings.log);
    report_unknown_keys(&loaded);
    let opened = crate::store::open(settings, settings.instance.context()?.id, true).await?;
    tracing::info!(store = opened.name, "migrations applied");
    Ok(())
}

/// No telemetry: the output is the one line a container runtime keeps in its health log.
async fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<()> {
    // Asking needs no secret: none is generated for it.
    let loaded = Settings::load(Environment::from_env()?)?;
    let body =
        crate::healthcheck::check(crate::healthcheck::probe_addr(loaded.settings.server.addr), args.timeout).await?;
    writeln!(std::io::stdout().lock(), "{}", body.trim()).context("writing the readiness")?;
    Ok(())
}

/// Parses `ROLE` or `ROLE:ORG`.
fn role_claim(spec: &str) -> anyhow::Result<RoleClaim> {
    let (role, org) = match spec.split_once(':') {
        Some((role, org)) => (role, Some(org.to_owned())),
        None => (spec, None),
    };
    anyhow::ensure!(!role.is_empty() && org.as_deref() != Some(""), "--role {spec:?}: expected ROLE or ROLE:ORG");
    Ok(RoleClaim { role: role.to_owned(), org })
}

fn mint(args: &MintArgs) -> anyhow::Result<()> {
    let (loaded, _) = load()?;
    let settings = &loaded.settings;
    let secret = settings
        .auth
        .hs256_secret
        .as_ref()
        .context("auth.hs256_secret is not set: minting needs the development secret")?;
    let roles = args.roles.iter().map(|r| role_claim(r)).collect::<anyhow::Result<Vec<_>>>()?;
    let minter = DevTokenMinter::new(&settings.auth.issuer, &settings.auth.audience, secret.expose_secret().as_bytes());
    let token = minter.mint(&MintRequest {
        sub: args.sub.clone(),
        org: Some(args.org.clone()),
        roles,
        ttl: args.ttl,
        now: chrono::Utc::now().timestamp(),
    })?;
    writeln!(std::io::stdout().lock(), "{token}").context("writing the token")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_specs_parse_with_and_without_an_org() {
        assert_eq!(role_claim("IAM_OWNER").ok(), Some(RoleClaim { role: "IAM_OWNER".into(), org: None }));
        assert_eq!(
            role_claim("ORG_OWNER:42").ok(),
            Some(RoleClaim { role: "ORG_OWNER".into(), org: Some("42".into()) })
        );
        for bad in [":42", "ORG_OWNER:"] {
            let refused = role_claim(bad).expect_err(bad).to_string();
            assert!(refused.contains("expected ROLE or ROLE:ORG"), "{bad}: {refused}");
        }
    }

    #[test]
    fn the_command_line_reads_as_documented() {
        let cli = Cli::try_parse_from([
            "factors", "token", "mint", "--sub", "u", "--org", "o", "--role", "A", "--role", "B:o2", "--ttl", "15m",
        ])
        .expect("parses");
        let Some(Command::Token { command: TokenCommand::Mint(args) }) = cli.command else { panic!("mint") };
        assert_eq!((args.roles.len(), args.ttl), (2, Duration::from_secs(900)));
        assert!(Cli::try_parse_from(["factors"]).expect("parses").command.is_none(), "serve is the default");
        let cli = Cli::try_parse_from(["factors", "healthcheck", "--timeout", "500ms"]).expect("parses");
        let Some(Command::Healthcheck(args)) = cli.command else { panic!("healthcheck") };
        assert_eq!(args.timeout, Duration::from_millis(500));
    }
}
