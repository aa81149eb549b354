//! Configuration: `config/default.toml`, then `config/<FACTORS_ENV>.toml`, then
//! `FACTORS__<SECTION>__<KEY>` variables, into one typed [`Settings`] tree. The files are
//! read from `FACTORS_CONFIG_DIR` (default `./config`); copies embedded at build time
//! stand in when that directory is absent, so the binary runs from anywhere.
//!
//! This is the schema and its loading only: what the settings build (verifiers, senders,
//! the store's configuration, the rules' values) is in [`crate::factories`], and the
//! development secrets in [`crate::secrets`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use factors_adapters_postgres::PgConfig;
use factors_adapters_redis::{BreakerConfig, RateLimitConfig, RedisConfig, SmsBudgets};
use factors_adapters_sqlite::SqliteConfig;
use factors_api_http::origin::ForwardedHeader;
use factors_application::InstanceContext;
use factors_application::notices::NoticeOptions;
use factors_domain::{InstanceId, OrgId};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const EMBEDDED: [(&str, &str); 4] = [
    ("default", include_str!("../../../config/default.toml")),
    ("development", include_str!("../../../config/development.toml")),
    ("test", include_str!("../../../config/test.toml")),
    ("production", include_str!("../../../config/production.toml")),
];

/// Development secrets (the test configuration's, and those generated in development)
/// start with this; they are refused in production.
pub(crate) const DEV_SECRET_PREFIX: &str = "dev-only-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    /// From `FACTORS_ENV`; development when unset.
    ///
    /// # Errors
    /// For a value other than development, test or production.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("FACTORS_ENV").as_deref() {
            Err(_) | Ok("development") => Ok(Self::Development),
            Ok("test") => Ok(Self::Test),
            Ok("production") => Ok(Self::Production),
            Ok(other) => bail!("FACTORS_ENV={other:?}: expected development, test or production"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where a single node keeps its files: the SQLite database (when `database.url` is
    /// unset) and the development secrets generated on first start.
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub instance: InstanceSettings,
    pub auth: AuthSettings,
    pub roles: Vec<RoleSettings>,
    pub codes: CodeSettings,
    pub policy: PolicySettings,
    #[serde(default)]
    pub notices: NoticeSettings,
    pub sms: SmsSettings,
    pub redis: RedisSettings,
    pub cache: CacheSettings,
    pub rate_limits: RateLimitSettings,
    pub grpc: GrpcSettings,
    #[serde(default)]
    pub ids: IdSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Which environment's file was layered in; set by the loader.
    #[serde(skip, default = "default_environment")]
    pub environment: Environment,
}

fn default_environment() -> Environment {
    Environment::Development
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub addr: SocketAddr,
    /// A second port for `/metrics`, `/healthz` and `/readyz`; when set, `/metrics` leaves
    /// the public port.
    #[serde(default)]
    pub admin_addr: Option<SocketAddr>,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// A request's headers must arrive within this, counted from when the server waits
    /// for them (on a kept-alive connection too).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// After SIGTERM, how long the service answers not ready while still serving, before
    /// it stops taking connections (so that load balancers stop sending first).
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections beyond this are closed at once.
    pub max_connections: usize,
    /// The proxies (addresses, or networks such as `10.0.0.0/8`) trusted to name the
    /// client they forward for in `forwarded_header`; the address each event records is
    /// the first hop from the right that is not one of them. Empty: the connection's peer.
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    #[serde(default)]
    pub forwarded_header: ForwardedHeader,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`; unset, the SQLite file in `data_dir`. May hold a
    /// password: kept secret, never printed.
    pub url: Option<SecretString>,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// How long start-up waits for a PostgreSQL server that refuses connections or is
    /// still starting, retrying, before it gives up.
    #[serde(with = "humantime_serde")]
    pub connect_wait: Duration,
    pub create_database: bool,
    pub migrate_on_start: bool,
    /// PostgreSQL: what `url` leads through; `transaction` behind a pooler in transaction
    /// mode (PgBouncer's `pool_mode = transaction`).
    #[serde(default)]
    pub pooler: PoolerSetting,
    /// PostgreSQL: where migrations run, when not on `url` (which behind a transaction
    /// pooler they cannot: they hold a session's lock). May hold a password.
    #[serde(default)]
    pub migration_url: Option<SecretString>,
}

/// `database.pooler`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum PoolerSetting {
    #[default]
    None,
    Transaction,
}

/// From the setting's text, with an error that lists the choices.
impl TryFrom<String> for PoolerSetting {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.trim() {
            "" | "none" => Ok(Self::None),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!(
                "database.pooler {other:?}: expected \"none\" or \"transaction\" (a pooler in session mode is \"none\"; \
                 statement mode cannot carry factors' transactions)"
            )),
        }
    }
}

/// The store a deployment runs on, picked by the scheme of `database.url`.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    Postgres { config: PgConfig, connect_wait: Duration },
    Sqlite(SqliteConfig),
}

impl StoreChoice {
    /// What the readiness report and the logs call it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstanceSettings {
    pub id: String,
    /// A list in files; a comma-separated string in `FACTORS__INSTANCE__DOMAINS`.
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub domains: Vec<String>,
    #[serde(default)]
    pub organizations: Vec<OrganizationSettings>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationSettings {
    pub id: String,
    #[serde(default)]
    pub domains: Vec<String>,
}

fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(joined) => {
            joined.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
    })
}

impl InstanceSettings {
    /// # Errors
    /// When an id is not a valid identifier.
    pub fn context(&self) -> anyhow::Result<InstanceContext> {
        let mut org_domains = std::collections::HashMap::new();
        for org in &self.organizations {
            let id = OrgId::new(org.id.as_str()).context("instance.organizations: invalid id")?;
            for domain in &org.domains {
                org_domains.insert(domain.clone(), id.clone());
            }
        }
        Ok(InstanceContext {
            id: InstanceId::new(self.id.as_str()).context("instance.id is not a valid id")?,
            domains: self.domains.clone(),
            org_domains,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    pub hs256_secret: Option<SecretString>,
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub public_keys: Vec<PublicKeySettings>,
    /// Accept a development signing secret (`dev-only-…`) on a listen address other than
    /// loopback. Off: such a secret, readable in the test configuration or the data
    /// folder, would let anyone who can reach the port sign an `IAM_OWNER` token.
    #[serde(default)]
    pub allow_development_secret_off_loopback: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PublicKeySettings {
    pub alg: String,
    pub pem_file: PathBuf,
    pub kid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoleSettings {
    pub name: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub instance_wide: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CodeSettings {
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    pub max_attempts: u32,
    /// Failed checks one user may make across its codes in `failure_window`.
    pub max_failures_per_user: u32,
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    pub hmac_key: Option<SecretString>,
}

/// Which SMS provider sends the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SmsProviderKind {
    /// Development: logs that a code would be sent (masked number, no code). Refused in
    /// production.
    Log,
    Twilio,
    /// A signed JSON POST to a gateway of your own.
    Webhook,
}

/// From the setting's text, with an error that lists the choices.
impl TryFrom<String> for SmsProviderKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "log" => Ok(Self::Log),
            "twilio" => Ok(Self::Twilio),
            "webhook" => Ok(Self::Webhook),
            other => Err(format!("unknown SMS provider {other:?}: expected \"log\", \"twilio\" or \"webhook\"")),
        }
    }
}

impl SmsProviderKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Twilio => "twilio",
            Self::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmsSettings {
    pub provider: SmsProviderKind,
    /// Several providers in order, each SMS through the first that takes it; set, it
    /// replaces `provider`.
    #[serde(default, deserialize_with = "providers_list")]
    pub providers: Vec<SmsProviderKind>,
    #[serde(default)]
    pub failover: SmsFailoverSettings,
    /// The whole request to the provider: a send taking longer fails (and the new
    /// authenticator is taken back). The HTTP client's own timeout, the only one on a send.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Connecting to the provider (TCP and TLS), within `timeout`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// What `{app}` stands for in the texts; unset leaves it out.
    pub app_name: Option<String>,
    #[serde(default)]
    pub texts: SmsTextSettings,
    #[serde(default)]
    pub twilio: TwilioSettings,
    #[serde(default)]
    pub webhook: WebhookSettings,
    /// The regions codes go to (a defence against SMS pumping): an allow list or a deny
    /// list of CLDR region codes (`CH`; `001` for numbers of no country), not both.
    #[serde(default)]
    pub countries: SmsCountrySettings,
    /// The conversion breakers of the regions.
    #[serde(default)]
    pub breaker: SmsBreakerSettings,
}

/// When a provider of `sms.providers` is skipped.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmsFailoverSettings {
    /// Failures in a row that have a provider skipped.
    pub failures: u32,
    /// How long it is skipped.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
}

impl Default for SmsFailoverSettings {
    fn default() -> Self {
        Self { failures: 3, cool_down: Duration::from_secs(30) }
    }
}

/// `sms.providers`: a list, or one string of names separated by commas (as an
/// environment variable gives it).
fn providers_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<SmsProviderKind>, D::Error> {
    list_or_comma_separated(deserializer)?
        .into_iter()
        .map(|name| SmsProviderKind::try_from(name).map_err(serde::de::Error::custom))
        .collect()
}

/// When too few of a region's codes are verified, its sends pause (`sms.breaker`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmsBreakerSettings {
    pub enabled: bool,
    /// `enforce`, or `monitor`: only log what it would refuse.
    pub mode: SmsBreakerMode,
    /// The share of a region's codes that must be verified, 0.0 to 1.0.
    pub threshold: f64,
    /// Sends within the window before the share counts.
    pub min_sends: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
    /// Codes let through after the pause, whose verification closes the breaker.
    pub probes: u32,
}

impl Default for SmsBreakerSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: SmsBreakerMode::Enforce,
            threshold: 0.2,
            min_sends: 50,
            window: Duration::from_secs(3600),
            cool_down: Duration::from_secs(900),
            probes: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsBreakerMode {
    Enforce,
    Monitor,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmsCountrySettings {
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub allow: Vec<String>,
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub deny: Vec<String>,
}

/// The texts per purpose; unset ones are the English defaults of `factors-adapters-sms`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmsTextSettings {
    pub registration: Option<String>,
    pub contact_phone: Option<String>,
    pub sign_in: Option<String>,
    /// The notice to a number removed from a user; `{app}` only, it carries no code.
    pub removal_notice: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TwilioSettings {
    pub account_sid: Option<String>,
    pub auth_token: Option<SecretString>,
    /// A Twilio number (or alphanumeric sender id); or else `messaging_service_sid`.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// Twilio's API unless set (a stub in tests, a proxy).
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookSettings {
    /// May hold a credential (in its path or query): never logged.
    pub url: Option<SecretString>,
    /// `whsec_<base64>` or at least 32 bytes of text.
    pub secret: Option<SecretString>,
}

/// Redis: optional. Unset `url` means no Redis: the cache is off and SMS limits are
/// counted in process.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://host:6379`; for a cluster, the seed nodes separated by commas. May hold a
    /// password: kept secret.
    pub url: Option<SecretString>,
    pub cluster: bool,
    /// The name of the master the Sentinels watch; `url` then lists the Sentinels.
    #[serde(default)]
    pub sentinel_master: Option<String>,
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    pub key_prefix: String,
    pub breaker_failures: u32,
    #[serde(with = "humantime_serde")]
    pub breaker_open_for: Duration,
}

impl RedisSettings {
    /// The client configuration, or `None` without a URL.
    pub fn client_config(&self) -> Option<RedisConfig> {
        let url = self.url.as_ref()?;
        let urls: Vec<String> =
            url.expose_secret().split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        Some(RedisConfig {
            urls,
            cluster: self.cluster,
            sentinel_master: self.sentinel_master.clone().filter(|name| !name.trim().is_empty()),
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
            breaker: BreakerConfig { failures_to_open: self.breaker_failures.max(1), open_for: self.breaker_open_for },
        })
    }
}

/// The in-process tier of the snapshot cache (in front of Redis when there is one).
#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    /// Bytes of users' snapshots each process keeps at most; 0 turns the tier off.
    pub local_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    /// Origins browsers may call gRPC-web and Connect from (CORS); a list in files, a
    /// comma-separated string in `FACTORS__GRPC__CORS_ORIGINS`.
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub sms_per_user: u32,
    pub sms_per_phone: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Code SMS to the numbers of one region within `budget_window`; 0: no budget.
    #[serde(default)]
    pub sms_per_country: u32,
    /// Code SMS to the numbers sharing their first `prefix_digits` digits within
    /// `budget_window`; 0: no budget.
    #[serde(default)]
    pub sms_per_prefix: u32,
    #[serde(default = "default_prefix_digits")]
    pub prefix_digits: usize,
    #[serde(default = "default_budget_window", with = "humantime_serde")]
    pub budget_window: Duration,
}

fn default_prefix_digits() -> usize {
    SmsBudgets::OFF.prefix_digits
}

fn default_budget_window() -> Duration {
    SmsBudgets::OFF.window
}

impl RateLimitSettings {
    /// # Errors
    /// A prefix of no digits or longer than a number, or an empty budget window.
    pub fn config(&self) -> anyhow::Result<RateLimitConfig> {
        if !(1..=15).contains(&self.prefix_digits) {
            bail!("rate_limits.prefix_digits must be 1 to 15 (E.164 numbers have at most 15 digits)");
        }
        if self.budget_window.is_zero() {
            bail!("rate_limits.budget_window must be above zero");
        }
        Ok(RateLimitConfig {
            per_user: self.sms_per_user,
            per_phone: self.sms_per_phone,
            window: self.window,
            budgets: SmsBudgets {
                per_country: self.sms_per_country,
                per_prefix: self.sms_per_prefix,
                prefix_digits: self.prefix_digits,
                window: self.budget_window,
            },
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PolicySettings {
    pub self_service: bool,
    /// A removal also takes the OTP SMS factor away from the sessions its code verified.
    #[serde(default)]
    pub revoke_sessions_on_removal: bool,
}

/// The notice worker (docs/GUIDE.md, Removal policies): how it claims and retries the
/// notices of the outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NoticeSettings {
    /// How long a claimed notice is held before another try may take it; longer than
    /// `sms.timeout`, so that a slow send is never sent twice.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often the outbox is looked at besides when a removal wakes the worker.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Tries before a notice is given up (and logged as an error).
    pub max_attempts: u32,
    /// The pause after a first failed try; it doubles up to `max_retry`.
    #[serde(with = "humantime_serde")]
    pub first_retry: Duration,
    #[serde(with = "humantime_serde")]
    pub max_retry: Duration,
}

impl Default for NoticeSettings {
    fn default() -> Self {
        let defaults = NoticeOptions::default();
        Self {
            lease: defaults.lease,
            poll_interval: defaults.poll_interval,
            max_attempts: defaults.max_attempts,
            first_retry: defaults.first_retry,
            max_retry: defaults.max_retry,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdSettings {
    pub node: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Traces (docs/OPERATIONS.md, Traces): off unless `otlp.endpoint` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// `service.name` of every span.
    pub service_name: String,
    /// More resource attributes, as `OTEL_RESOURCE_ATTRIBUTES` writes them:
    /// `deployment.environment.name=production,service.namespace=auth`.
    pub resource_attributes: String,
    pub otlp: OtlpSettings,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { service_name: "factors".to_owned(), resource_attributes: String::new(), otlp: OtlpSettings::default() }
    }
}

/// Where spans go, over OTLP.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OtlpSettings {
    /// The collector: `http://host:4317` for gRPC, `http(s)://host:4318` for HTTP (the
    /// path `/v1/traces` is added unless given). Unset or empty: no traces at all.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    /// The share of new traces kept, 0.0 to 1.0; a request that arrives with a sampled
    /// `traceparent` is always kept, one with an unsampled one never.
    pub sampling_ratio: f64,
    /// One export's time limit.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self { endpoint: None, protocol: OtlpProtocol::Grpc, sampling_ratio: 1.0, timeout: Duration::from_secs(10) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC, plain text (a collector beside the service).
    Grpc,
    /// OTLP/HTTP with protobuf bodies; `https://` works.
    Http,
}

/// Loaded settings and the keys that were given but mean nothing.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub unknown_keys: Vec<String>,
}

fn layer(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    dir: &std::path::Path,
    name: &str,
) -> config::ConfigBuilder<config::builder::DefaultState> {
    let path = dir.join(format!("{name}.toml"));
    if path.is_file() {
        builder.add_source(config::File::from(path))
    } else if let Some((_, text)) = EMBEDDED.iter().find(|(n, _)| *n == name) {
        builder.add_source(config::File::from_str(text, config::FileFormat::Toml))
    } else {
        builder
    }
}

impl Settings {
    /// Loads the layers for `environment`.
    ///
    /// # Errors
    /// When a layer cannot be parsed or a value has the wrong type; the message names the key.
    pub fn load(environment: Environment) -> anyhow::Result<Loaded> {
        Self::load_with(environment, None)
    }

    /// Like [`Settings::load`], with the variables given instead of read from the process
    /// environment when `variables` is `Some` (for tests).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_with(
        environment: Environment,
        variables: Option<std::collections::HashMap<String, String>>,
    ) -> anyhow::Result<Loaded> {
        let dir = std::env::var_os("FACTORS_CONFIG_DIR").map_or_else(|| PathBuf::from("config"), PathBuf::from);
        let builder = layer(config::Config::builder(), &dir, "default");
        let builder = layer(builder, &dir, environment.as_str());
        // Values stay strings: `try_parsing` would turn an all-digit secret into a float
        // and "0012" into 12. Serde converts where a number or a bool is expected.
        let config = builder
            .add_source(
                config::Environment::with_prefix("FACTORS").prefix_separator("__").separator("__").source(variables),
            )
            .build()
            .context("reading the configuration")?;
        let mut unknown_keys = Vec::new();
        let mut settings: Settings = serde_ignored::deserialize(config, |path| unknown_keys.push(path.to_string()))
            .context("invalid configuration")?;
        settings.environment = environment;
        Ok(Loaded { settings, unknown_keys })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn environment_variables_override_and_keep_strings_as_given() {
        let variables = std::collections::HashMap::from([
            ("FACTORS__AUTH__ISSUER".to_owned(), "0012".to_owned()),
            ("FACTORS__INSTANCE__ID".to_owned(), "007".to_owned()),
            ("FACTORS__CODES__HMAC_KEY".to_owned(), "1234567890123456789012345678901234567890".to_owned()),
            ("FACTORS__CODES__MAX_ATTEMPTS".to_owned(), "7".to_owned()),
            ("FACTORS__POLICY__SELF_SERVICE".to_owned(), "false".to_owned()),
            ("FACTORS__INSTANCE__DOMAINS".to_owned(), "auth.example.com, login.example.com".to_owned()),
            ("FACTORS__SERVER__ADDR".to_owned(), "0.0.0.0:9999".to_owned()),
        ]);
        let loaded = Settings::load_with(Environment::Development, Some(variables)).expect("loads");
        let settings = loaded.settings;
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        assert_eq!((settings.auth.issuer.as_str(), settings.instance.id.as_str()), ("0012", "007"));
        assert_eq!(
            settings.codes.hmac_key.as_ref().map(|k| k.expose_secret().to_owned()),
            Some("1234567890123456789012345678901234567890".to_owned())
        );
        assert_eq!((settings.codes.max_attempts, settings.policy.self_service), (7, false));
        assert_eq!(settings.instance.domains, ["auth.example.com", "login.example.com"]);
        assert_eq!(settings.server.addr.port(), 9999);
    }

    #[test]
    fn redis_behind_sentinel_is_the_sentinels_urls_and_the_masters_name() {
        let variables = std::collections::HashMap::from([
            ("FACTORS__REDIS__URL".to_owned(), "redis://s1:26379, redis://s2:26379".to_owned()),
            ("FACTORS__REDIS__SENTINEL_MASTER".to_owned(), "mymaster".to_owned()),
        ]);
        let loaded = Settings::load_with(Environment::Development, Some(variables)).expect("loads");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let config = loaded.settings.redis.client_config().expect("configured");
        assert_eq!(config.urls, ["redis://s1:26379", "redis://s2:26379"]);
        assert_eq!((config.sentinel_master.as_deref(), config.cluster), (Some("mymaster"), false));
        let blank = std::collections::HashMap::from([
            ("FACTORS__REDIS__URL".to_owned(), "redis://r:6379".to_owned()),
            ("FACTORS__REDIS__SENTINEL_MASTER".to_owned(), " ".to_owned()),
        ]);
        let loaded = Settings::load_with(Environment::Development, Some(blank)).expect("loads");
        assert_eq!(loaded.settings.redis.client_config().expect("configured").sentinel_master, None, "blank is none");
    }

    #[test]
    fn postgres_behind_a_transaction_pooler_migrates_on_its_own_url_and_no_password_shows() {
        let variables = std::collections::HashMap::from([
            ("FACTORS__DATABASE__URL".to_owned(), "postgres://app:pooled-secret@pgbouncer:6432/factors".to_owned()),
            ("FACTORS__DATABASE__POOLER".to_owned(), "transaction".to_owned()),
            (
                "FACTORS__DATABASE__MIGRATION_URL".to_owned(),
                "postgres://owner:ddl-secret@leader:5432/factors".to_owned(),
            ),
        ]);
        let loaded = Settings::load_with(Environment::Development, Some(variables)).expect("loads");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let StoreChoice::Postgres { config, .. } = loaded.settings.store().expect("a store") else {
            panic!("postgres:// is PostgreSQL")
        };
        assert_eq!(config.pooler, factors_adapters_postgres::Pooler::Transaction);
        let migrations = config.for_migrations().expect("a migration URL is given").expect("not on the pooler");
        assert_eq!(migrations.url, "postgres://owner:ddl-secret@leader:5432/factors");
        assert_eq!(migrations.pooler, factors_adapters_postgres::Pooler::None);
        let debug = format!("{config:?} {loaded:?}", loaded = loaded.settings);
        assert!(debug.contains("leader:5432/factors") && debug.contains("pgbouncer:6432/factors"), "{debug}");
        for secret in ["pooled-secret", "ddl-secret"] {
            assert!(!debug.contains(secret), "{secret}: {debug}");
        }

        let unknown =
            std::collections::HashMap::from([("FACTORS__DATABASE__POOLER".to_owned(), "statement".to_owned())]);
        let refused =
            format!("{:#}", Settings::load_with(Environment::Development, Some(unknown)).expect_err("statement"));
        assert!(refused.contains("statement") && refused.contains("transaction"), "{refused}");
    }

    #[test]
    fn a_mistyped_variable_is_reported_as_unknown() {
        let variables = std::collections::HashMap::from([("FACTORS__DATABASE__URLL".to_owned(), "x".to_owned())]);
        let loaded = Settings::load_with(Environment::Development, Some(variables)).expect("loads");
        assert_eq!(loaded.unknown_keys, ["database.urll"]);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let variables = std::collections::HashMap::from([
            ("FACTORS__SMS__TWILIO__AUTH_TOKEN".to_owned(), "twilio-token-0123456789".to_owned()),
            ("FACTORS__SMS__WEBHOOK__URL".to_owned(), "https://gw.example.com/send?key=url-credential".to_owned()),
            ("FACTORS__SMS__WEBHOOK__SECRET".to_owned(), WEBHOOK_SECRET.to_owned()),
        ]);
        let settings = Settings::load_with(Environment::Test, Some(variables)).expect("loads").settings;
        let debug = format!("{settings:?}");
        for secret in ["dev-only-", "twilio-token-0123456789", "url-credential", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(!debug.contains(secret), "{secret}: {debug}");
        }
        let provider = format!("{:?}", settings.sms_provider().expect("the log provider"));
        assert!(!provider.contains("twilio-token"), "{provider}");
    }

    pub(crate) const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn an_unknown_provider_is_refused_when_loading() {
        let variables = std::collections::HashMap::from([("FACTORS__SMS__PROVIDER".to_owned(), "sns".to_owned())]);
        let refused = format!("{:#}", Settings::load_with(Environment::Development, Some(variables)).expect_err("sns"));
        assert!(refused.contains(r#"unknown SMS provider "sns": expected "log", "twilio" or "webhook""#), "{refused}");
        assert!(refused.contains("sms.provider"), "{refused}");
    }
}
