//! The command line: `factors [serve]`, `factors migrate`, `factors token mint`,
//! `factors healthcheck`, `factors policy get|set`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use clap::{ArgGroup, Parser, Subcommand};
use factors_adapters_jwt::{DevTokenMinter, MintRequest, RoleClaim};
use secrecy::ExposeSecret;

use crate::policy_client::{PolicyChange, PolicyClient};
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
    /// Read or set login policies on the running service, over its REST API with a bearer
    /// token: the service's permissions apply (policy.read, policy.write; IAM_OWNER
    /// everywhere, ORG_OWNER on its organization). Prints the service's answer as JSON.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force: with --org, the organization's own, else the instance
    /// default it inherits; without, the instance default.
    Get(PolicyGetArgs),
    /// Change the settings given and keep the others: reads the policy in force, then sets
    /// the whole policy (with --org, as the organization's own).
    Set(PolicySetArgs),
}

/// Which policy, and how to reach the service.
#[derive(Debug, clap::Args)]
pub struct PolicyTarget {
    /// The organization's id; without it, the instance default.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// The service's URL. Default: http:// and server.addr of the configuration (on
    /// loopback when that is a wildcard), as for `factors healthcheck`.
    #[arg(long)]
    pub url: Option<String>,
    /// The bearer token (in development: `factors token mint ... --role IAM_OWNER`).
    #[arg(long, env = "FACTORS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How long each request may take, for example 500ms, 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct PolicyGetArgs {
    #[command(flatten)]
    pub target: PolicyTarget,
}

#[derive(Debug, clap::Args)]
#[command(group(
    ArgGroup::new("change").required(true).multiple(true).args(["force_mfa", "step_up_max_age", "notify_on_removal"])
))]
pub struct PolicySetArgs {
    #[command(flatten)]
    pub target: PolicyTarget,
    /// Users must keep a verified second factor.
    #[arg(long, value_name = "true|false")]
    pub force_mfa: Option<bool>,
    /// How recent a second-factor sign-in a user needs to remove its own verified
    /// authenticator, in whole seconds up to 366 days, for example 5m, 1h; 0 asks for none.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub step_up_max_age: Option<Duration>,
    /// Send an SMS to the number of a removed verified authenticator.
    #[arg(long, value_name = "true|false")]
    pub notify_on_removal: Option<bool>,
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
    /// How the caller signed in (the `amr` claim, RFC 8176); repeat for several, for
    /// example --amr pwd --amr sms. Without --auth-time, the sign-in is stamped now.
    #[arg(long = "amr", value_name = "METHOD")]
    pub amr: Vec<String>,
    /// When the caller signed in (the `auth_time` claim): `now`, an age such as 10m
    /// (that long ago), or an RFC 3339 time such as 2026-05-01T12:00:00Z.
    #[arg(long, value_name = "WHEN", value_parser = AuthTime::parse)]
    pub auth_time: Option<AuthTime>,
}

/// When `--auth-time` says the caller signed in. An age is kept as an age and turned into
/// a time when the token is minted, so `10m` means ten minutes before the token's `iat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthTime {
    Now,
    /// That long before the token is minted.
    Ago(Duration),
    At(DateTime<Utc>),
}

impl AuthTime {
    /// Reads `now`, a humantime age (`90s`, `10m`, `2h`) or an RFC 3339 time.
    ///
    /// # Errors
    /// A message naming the three forms, for anything else.
    pub fn parse(when: &str) -> Result<Self, String> {
        let when = when.trim();
        if when.eq_ignore_ascii_case("now") {
            return Ok(Self::Now);
        }
        if let Ok(age) = humantime::parse_duration(when) {
            return Ok(Self::Ago(age));
        }
        DateTime::parse_from_rfc3339(when).map(|at| Self::At(at.to_utc())).map_err(|_| {
            format!("{when:?} is not now, an age such as 10m, or an RFC 3339 time such as 2026-05-01T12:00:00Z")
        })
    }

    /// Seconds since the Unix epoch, `now` being when the token is minted.
    fn seconds(self, now: DateTime<Utc>) -> anyhow::Result<i64> {
        let at = match self {
            Self::Now => now,
            Self::Ago(age) => TimeDelta::from_std(age)
                .ok()
                .and_then(|age| now.checked_sub_signed(age))
                .context("--auth-time: that age is too long")?,
            Self::At(at) => at,
        };
        let seconds = at.timestamp();
        anyhow::ensure!(seconds >= 0, "--auth-time: {at} is before 1970, which no token can say");
        Ok(seconds)
    }
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
        Command::Policy { command: PolicyCommand::Get(args) } => policy_get(&args).await,
        Command::Policy { command: PolicyCommand::Set(args) } => policy_set(&args).await,
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
    let telemetry = telemetry::init_with_traces(&settings.log, &settings.telemetry)?;
    report_unknown_keys(&loaded);
    let store = settings.store()?.name();
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.addr(), environment = settings.environment.as_str(), store, traces = telemetry.traces(), "factors is listening");
    if let Some(secrets) = generated {
        tracing::info!(
            secrets = %secrets.display(),
            "development secrets in use; mint a token with: \
             cargo run -- token mint --sub alice --org org-a --role IAM_OWNER"
        );
    }
    let served = app.run_until_stopped().await;
    telemetry.shutdown();
    served
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

/// A client of the service `target` names, with its token.
fn policy_client(target: &PolicyTarget) -> anyhow::Result<PolicyClient> {
    let token = target.token.clone().filter(|t| !t.trim().is_empty()).context(
        "no token: pass --token or set FACTORS_TOKEN (in development, mint one with \
         `factors token mint --sub admin --org org-a --role IAM_OWNER`)",
    )?;
    match &target.url {
        Some(url) => PolicyClient::new(url, token, target.timeout, true),
        None => {
            // Asking needs no secret: none is generated for it.
            let loaded = Settings::load(Environment::from_env()?)?;
            let addr = crate::healthcheck::probe_addr(loaded.settings.server.addr);
            // A proxy from the environment could not reach the service's own address.
            PolicyClient::new(&format!("http://{addr}"), token, target.timeout, false)
        }
    }
}

/// No telemetry: stdout holds the answer, for a person or for `jq`.
fn print_json(answer: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(answer).context("formatting the answer")?;
    writeln!(std::io::stdout().lock(), "{text}").context("writing the answer")
}

async fn policy_get(args: &PolicyGetArgs) -> anyhow::Result<()> {
    let client = policy_client(&args.target)?;
    print_json(&client.get(args.target.org.as_deref()).await?)
}

async fn policy_set(args: &PolicySetArgs) -> anyhow::Result<()> {
    let change = PolicyChange {
        force_mfa: args.force_mfa,
        step_up_max_age: args.step_up_max_age,
        notify_on_removal: args.notify_on_removal,
    };
    // clap already refuses this (the `change` group); kept so no caller sets a policy unchanged.
    anyhow::ensure!(!change.is_empty(), "policy set: give --force-mfa, --step-up-max-age or --notify-on-removal");
    let client = policy_client(&args.target)?;
    print_json(&client.set(args.target.org.as_deref(), change).await?)
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

/// What `args` ask to be minted at `now`. A sign-in method without a time stamps the
/// sign-in now: a token with `amr` but no `auth_time` could never pass a rule that asks
/// for a recent second factor, which is what one mints `--amr` tokens to try.
fn mint_request(args: &MintArgs, now: DateTime<Utc>) -> anyhow::Result<MintRequest> {
    let roles = args.roles.iter().map(|r| role_claim(r)).collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(args.amr.iter().all(|m| !m.trim().is_empty()), "--amr: a method is a word such as pwd or sms");
    let auth_time = match (args.auth_time, args.amr.is_empty()) {
        (Some(when), _) => Some(when.seconds(now)?),
        (None, false) => Some(now.timestamp()),
        (None, true) => None,
    };
    Ok(MintRequest {
        sub: args.sub.clone(),
        org: Some(args.org.clone()),
        roles,
        ttl: args.ttl,
        now: now.timestamp(),
        amr: args.amr.clone(),
        auth_time,
    })
}

fn mint(args: &MintArgs) -> anyhow::Result<()> {
    let request = mint_request(args, Utc::now())?;
    let (loaded, _) = load()?;
    let settings = &loaded.settings;
    let secret = settings
        .auth
        .hs256_secret
        .as_ref()
        .context("auth.hs256_secret is not set: minting needs the development secret")?;
    let minter = DevTokenMinter::new(&settings.auth.issuer, &settings.auth.audience, secret.expose_secret().as_bytes());
    let token = minter.mint(&request)?;
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

    #[test]
    fn policy_set_needs_a_change_and_takes_booleans_and_ages() {
        let refused = Cli::try_parse_from(["factors", "policy", "set", "--org", "org-a"]).expect_err("no change");
        assert_eq!(refused.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{refused}");
        assert!(refused.to_string().contains("--force-mfa"), "names the flags: {refused}");
        let refused = Cli::try_parse_from(["factors", "policy", "set", "--force-mfa", "yes"]).expect_err("not a bool");
        assert!(refused.to_string().contains("--force-mfa"), "{refused}");

        let cli = Cli::try_parse_from([
            "factors",
            "policy",
            "set",
            "--org",
            "org-a",
            "--step-up-max-age",
            "5m",
            "--notify-on-removal",
            "false",
        ])
        .expect("parses");
        let Some(Command::Policy { command: PolicyCommand::Set(args) }) = cli.command else { panic!("set") };
        assert_eq!(args.target.org.as_deref(), Some("org-a"));
        assert_eq!(
            (args.force_mfa, args.step_up_max_age, args.notify_on_removal),
            (None, Some(Duration::from_secs(300)), Some(false))
        );
        let cli = Cli::try_parse_from(["factors", "policy", "get", "--url", "http://h:1", "--token", "t"]);
        let Some(Command::Policy { command: PolicyCommand::Get(args) }) = cli.expect("parses").command else {
            panic!("get")
        };
        assert_eq!((args.target.org, args.target.url.as_deref()), (None, Some("http://h:1")));
    }

    #[tokio::test]
    async fn a_missing_token_is_refused_before_anything_is_asked() {
        let target = PolicyTarget {
            org: None,
            url: Some("http://127.0.0.1:1".into()),
            token: None,
            timeout: Duration::from_secs(1),
        };
        let refused = policy_client(&target).expect_err("no token").to_string();
        assert!(refused.contains("--token") && refused.contains("FACTORS_TOKEN"), "{refused}");
    }

    fn mint_args(extra: &[&str]) -> MintArgs {
        let line = [&["factors", "token", "mint", "--sub", "alice", "--org", "org-a"], extra].concat();
        let Some(Command::Token { command: TokenCommand::Mint(args) }) =
            Cli::try_parse_from(line).expect("parses").command
        else {
            panic!("mint")
        };
        args
    }

    #[test]
    fn auth_times_read_as_now_an_age_or_a_time() {
        assert_eq!(AuthTime::parse("now"), Ok(AuthTime::Now));
        assert_eq!(AuthTime::parse("10m"), Ok(AuthTime::Ago(Duration::from_secs(600))));
        assert_eq!(AuthTime::parse("1h 30m"), Ok(AuthTime::Ago(Duration::from_secs(5400))));
        let at = DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z").expect("valid").to_utc();
        assert_eq!(AuthTime::parse("2026-05-01T12:00:00Z"), Ok(AuthTime::At(at)));
        assert_eq!(AuthTime::parse("2026-05-01T14:00:00+02:00"), Ok(AuthTime::At(at)));
        for bad in ["yesterday", "10", "2026-05-01", ""] {
            let refused = AuthTime::parse(bad).expect_err(bad);
            assert!(refused.contains("an age such as 10m, or an RFC 3339 time"), "{bad}: {refused}");
        }
        let refused =
            Cli::try_parse_from(["factors", "token", "mint", "--sub", "u", "--org", "o", "--auth-time", "soon"])
                .expect_err("not a time")
                .to_string();
        assert!(refused.contains("--auth-time"), "{refused}");
    }

    #[test]
    fn amr_stamps_the_sign_in_now_unless_auth_time_says_when() {
        let now = DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z").expect("valid").to_utc();
        let request = |extra: &[&str]| mint_request(&mint_args(extra), now).expect("a request");

        let plain = request(&[]);
        assert_eq!((plain.amr.len(), plain.auth_time), (0, None), "no --amr, no --auth-time: neither claim");
        let stamped = request(&["--amr", "pwd", "--amr", "sms"]);
        assert_eq!((stamped.amr, stamped.auth_time), (vec!["pwd".to_owned(), "sms".to_owned()], Some(now.timestamp())));
        let aged = request(&["--amr", "sms", "--auth-time", "10m"]);
        assert_eq!(aged.auth_time, Some(now.timestamp() - 600));
        let dated = request(&["--auth-time", "2026-04-30T12:00:00Z"]);
        assert_eq!((dated.amr.len(), dated.auth_time), (0, Some(now.timestamp() - 86_400)));

        let refused = mint_request(&mint_args(&["--auth-time", "1970-01-01T00:00:00+01:00"]), now).expect_err("1969");
        assert!(refused.to_string().contains("before 1970"), "{refused}");
        let refused = mint_request(&mint_args(&["--amr", " "]), now).expect_err("blank");
        assert!(refused.to_string().contains("--amr"), "{refused}");
    }

    #[tokio::test]
    async fn a_token_minted_with_amr_and_auth_time_verifies_into_a_caller_that_signed_in_so() {
        use factors_adapters_jwt::{JwtVerifier, RoleMap};
        use factors_application::ports::TokenVerifier;
        const SECRET: &[u8] = b"a-development-secret-of-32-bytes!";
        let now = Utc::now();
        let request =
            mint_request(&mint_args(&["--amr", "pwd", "--amr", "sms", "--auth-time", "10m"]), now).expect("a request");
        let token = DevTokenMinter::new("iss", "aud", SECRET).mint(&request).expect("minted");

        let verifier = JwtVerifier::new("iss", "aud", Duration::ZERO, RoleMap::zitadel_defaults())
            .with_hs256_secret(SECRET)
            .expect("32 bytes");
        let caller = verifier.verify(&token).await.expect("valid");

        assert_eq!(caller.authentication.methods, ["pwd", "sms"]);
        assert_eq!(caller.authentication.at.map(|at| at.timestamp()), Some(now.timestamp() - 600));
        assert!(caller.authentication.is_second_factor_within(TimeDelta::minutes(15), now));
        assert!(!caller.authentication.is_second_factor_within(TimeDelta::minutes(5), now));
    }
}
