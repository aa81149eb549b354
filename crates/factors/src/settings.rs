//! Configuration: `config/default.toml`, then `config/<FACTORS_ENV>.toml`, then
//! `FACTORS__<SECTION>__<KEY>` variables, into one typed [`Settings`] tree. The files are
//! read from `FACTORS_CONFIG_DIR` (default `./config`); copies embedded at build time
//! stand in when that directory is absent, so the binary runs from anywhere.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use factors_adapters_jwt::{JwtVerifier, RoleDefinition, RoleMap};
use factors_adapters_postgres::PgConfig;
use factors_adapters_redis::{BreakerConfig, RateLimitConfig, RedisConfig};
use factors_adapters_sms::{
    ProviderConfig, SmsMetrics, SmsTexts, TWILIO_BASE_URL, TextConfig, Timeouts, TwilioConfig, TwilioFrom,
    WebhookConfig, WebhookSecret,
};
use factors_adapters_sqlite::SqliteConfig;
use factors_application::InstanceContext;
use factors_application::notices::NoticeOptions;
use factors_application::ports::SmsSender;
use factors_domain::{CheckBudget, CodeKey, CodePolicy, InstanceId, OrgId, Permission, RemovalPolicy};
use jsonwebtoken::Algorithm;
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
const DEV_SECRET_PREFIX: &str = "dev-only-";

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
    fn as_str(self) -> &'static str {
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
}

impl RateLimitSettings {
    pub fn config(&self) -> RateLimitConfig {
        RateLimitConfig { per_user: self.sms_per_user, per_phone: self.sms_per_phone, window: self.window }
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

    /// The verifier of bearer tokens, from `auth` and `roles`.
    ///
    /// # Errors
    /// When no key is configured, a key file cannot be read or parsed, a development
    /// secret is used outside development and test, or a role names an unknown permission.
    pub fn token_verifier(&self) -> anyhow::Result<JwtVerifier> {
        let auth = &self.auth;
        let mut verifier = JwtVerifier::new(&auth.issuer, &auth.audience, auth.leeway, self.role_map()?);
        if let Some(secret) = &auth.hs256_secret {
            if self.environment == Environment::Production {
                bail!(
                    "auth.hs256_secret is for development: production verifies tokens with public keys (auth.public_keys or auth.jwks_file)"
                );
            }
            if secret.expose_secret().starts_with(DEV_SECRET_PREFIX) && !self.server.addr.ip().is_loopback() {
                if !auth.allow_development_secret_off_loopback {
                    bail!(
                        "auth.hs256_secret is a development secret and server.addr {} is not a loopback address: \
                         anyone reaching the port could sign tokens. Listen on 127.0.0.1 (FACTORS__SERVER__ADDR), \
                         give real token keys (auth.public_keys or auth.jwks_file), or accept the risk with \
                         auth.allow_development_secret_off_loopback = true",
                        self.server.addr
                    );
                }
                tracing::warn!(
                    addr = %self.server.addr,
                    "INSECURE: development tokens are accepted on a non-loopback address \
                     (auth.allow_development_secret_off_loopback); anyone who can read the secret can sign tokens"
                );
            }
            verifier = verifier.with_hs256_secret(secret.expose_secret().as_bytes()).context("auth.hs256_secret")?;
        }
        for key in &auth.public_keys {
            let alg: Algorithm =
                key.alg.parse().map_err(|_| anyhow::anyhow!("auth.public_keys: unknown alg {:?}", key.alg))?;
            let pem = std::fs::read(&key.pem_file).with_context(|| format!("reading {}", key.pem_file.display()))?;
            verifier = verifier
                .with_public_key_pem(alg, &pem, key.kid.clone())
                .with_context(|| format!("auth.public_keys: {}", key.pem_file.display()))?;
        }
        if let Some(path) = &auth.jwks_file {
            let jwks = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            verifier = verifier.with_jwks(&jwks).with_context(|| format!("auth.jwks_file: {}", path.display()))?;
        }
        if !verifier.has_keys() {
            bail!("no token keys configured: set auth.hs256_secret (development), auth.public_keys or auth.jwks_file");
        }
        Ok(verifier)
    }

    /// # Errors
    /// When a role names an unknown permission.
    pub fn role_map(&self) -> anyhow::Result<RoleMap> {
        let mut roles = std::collections::HashMap::new();
        for role in &self.roles {
            let permissions = role
                .permissions
                .iter()
                .map(|p| p.parse::<Permission>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("roles: {}", role.name))?;
            roles.insert(role.name.clone(), RoleDefinition { permissions, instance_wide: role.instance_wide });
        }
        Ok(RoleMap::new(roles))
    }

    /// The key of the code hashes.
    ///
    /// # Errors
    /// When it is missing, shorter than 32 bytes, or a development key outside development.
    pub fn code_key(&self) -> anyhow::Result<CodeKey> {
        let key = self.codes.hmac_key.as_ref().context("codes.hmac_key is not set (FACTORS__CODES__HMAC_KEY)")?;
        self.refuse_dev_secret(key, "codes.hmac_key")?;
        CodeKey::new(key.expose_secret().as_bytes()).context("codes.hmac_key")
    }

    /// The secret that keys the hashes of phone numbers in Redis key names: the code key,
    /// which is already secret and required.
    ///
    /// # Errors
    /// As [`Settings::code_key`].
    pub fn phone_hash_key(&self) -> anyhow::Result<Vec<u8>> {
        self.code_key()?;
        Ok(self.codes.hmac_key.as_ref().map(|k| k.expose_secret().as_bytes().to_vec()).unwrap_or_default())
    }

    /// # Errors
    /// When the TTL does not fit or no attempt is allowed.
    pub fn code_policy(&self) -> anyhow::Result<CodePolicy> {
        if self.codes.max_attempts == 0 {
            bail!("codes.max_attempts must be at least 1");
        }
        Ok(CodePolicy {
            ttl: chrono::TimeDelta::from_std(self.codes.ttl).context("codes.ttl is too long")?,
            max_attempts: self.codes.max_attempts,
        })
    }

    /// The budget of failed code checks per user.
    ///
    /// # Errors
    /// When `codes.max_failures_per_user` is not from 1 to 1,000,000, or
    /// `codes.failure_window` is not above zero and at most 366 days.
    pub fn check_budget(&self) -> anyhow::Result<CheckBudget> {
        if !(1..=1_000_000).contains(&self.codes.max_failures_per_user) {
            bail!("codes.max_failures_per_user must be from 1 to 1000000");
        }
        if self.codes.failure_window.is_zero() || self.codes.failure_window > Duration::from_secs(366 * 24 * 3600) {
            bail!("codes.failure_window must be above zero and at most 366 days");
        }
        Ok(CheckBudget {
            max_failures: self.codes.max_failures_per_user,
            window: chrono::TimeDelta::from_std(self.codes.failure_window)
                .context("codes.failure_window is too long")?,
        })
    }

    /// The SMS sender `sms.provider` names, its settings checked.
    ///
    /// # Errors
    /// When the provider's settings are missing or invalid (the message names the
    /// setting), a text has no `{code}`, or the logging sender is chosen in production.
    pub fn sms_sender(&self, metrics: SmsMetrics) -> anyhow::Result<Arc<dyn SmsSender>> {
        let texts = self.sms_texts()?;
        let provider = self.sms_provider()?;
        let kind = self.sms.provider.as_str();
        factors_adapters_sms::sender(provider, texts, metrics).with_context(|| format!("sms.provider = {kind:?}"))
    }

    fn sms_texts(&self) -> anyhow::Result<SmsTexts> {
        let texts = &self.sms.texts;
        SmsTexts::new(&TextConfig {
            app_name: self.sms.app_name.clone(),
            code_ttl: self.codes.ttl,
            sign_in_ttl: CodePolicy::SIGN_IN.ttl.to_std().context("the sign-in code lifetime")?,
            registration: texts.registration.clone(),
            contact_phone: texts.contact_phone.clone(),
            sign_in: texts.sign_in.clone(),
            removal_notice: texts.removal_notice.clone(),
        })
        .map_err(|e| anyhow::anyhow!("sms.texts.{}: {e}", e.text().as_str()))
    }

    fn sms_provider(&self) -> anyhow::Result<ProviderConfig> {
        let sms = &self.sms;
        if sms.timeout.is_zero() || sms.connect_timeout.is_zero() {
            bail!("sms.timeout and sms.connect_timeout must be longer than zero");
        }
        let timeouts = Timeouts { request: sms.timeout, connect: sms.connect_timeout };
        let production = self.environment == Environment::Production;
        let required = |value: Option<&str>, key: &str| -> anyhow::Result<String> {
            present(value).map(str::to_owned).with_context(|| {
                let variable = key.replace('.', "__").to_ascii_uppercase();
                format!("{key} is required when sms.provider = {:?} (FACTORS__{variable})", sms.provider.as_str())
            })
        };
        Ok(match sms.provider {
            SmsProviderKind::Log if production => bail!(
                "sms.provider = \"log\" sends no SMS (it only logs that a code would go out) and is refused in production: set sms.provider to \"twilio\" or \"webhook\""
            ),
            SmsProviderKind::Log => ProviderConfig::Log,
            SmsProviderKind::Twilio => {
                let twilio = &sms.twilio;
                let account_sid = required(twilio.account_sid.as_deref(), "sms.twilio.account_sid")?;
                let auth_token =
                    required(twilio.auth_token.as_ref().map(ExposeSecret::expose_secret), "sms.twilio.auth_token")?;
                let from = match (present(twilio.from.as_deref()), present(twilio.messaging_service_sid.as_deref())) {
                    (Some(number), None) => TwilioFrom::Number(number.to_owned()),
                    (None, Some(sid)) => TwilioFrom::MessagingService(sid.to_owned()),
                    _ => bail!(
                        "set exactly one of sms.twilio.from and sms.twilio.messaging_service_sid when sms.provider = \"twilio\""
                    ),
                };
                let base_url = twilio.base_url.clone().unwrap_or_else(|| TWILIO_BASE_URL.to_owned());
                check_http_url(&base_url, "sms.twilio.base_url", production)?;
                ProviderConfig::Twilio(TwilioConfig {
                    base_url,
                    account_sid,
                    auth_token: auth_token.into(),
                    from,
                    timeouts,
                })
            }
            SmsProviderKind::Webhook => {
                let webhook = &sms.webhook;
                let url = required(webhook.url.as_ref().map(ExposeSecret::expose_secret), "sms.webhook.url")?;
                check_http_url(&url, "sms.webhook.url", production)?;
                let secret = required(webhook.secret.as_ref().map(ExposeSecret::expose_secret), "sms.webhook.secret")?;
                if let Some(given) = &webhook.secret {
                    self.refuse_dev_secret(given, "sms.webhook.secret")?;
                }
                let secret = WebhookSecret::parse(&secret).context("sms.webhook.secret")?;
                ProviderConfig::Webhook(WebhookConfig { url, secret, timeouts })
            }
        })
    }

    /// The store `database.url` names by its scheme: `postgres://` (or `postgresql://`)
    /// or `sqlite://`; unset, the SQLite file `factors.db` in `data_dir`.
    ///
    /// # Errors
    /// For any other scheme.
    pub fn store(&self) -> anyhow::Result<StoreChoice> {
        let database = &self.database;
        let url = match &database.url {
            Some(url) => url.expose_secret().trim().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("factors.db").display()),
        };
        let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(StoreChoice::Postgres {
                config: PgConfig {
                    url,
                    max_connections: database.max_connections,
                    acquire_timeout: database.acquire_timeout,
                    create_database: database.create_database,
                },
                connect_wait: database.connect_wait,
            }),
            Some("sqlite") => Ok(StoreChoice::Sqlite(SqliteConfig {
                url,
                max_connections: database.max_connections,
                acquire_timeout: database.acquire_timeout,
            })),
            // The URL may hold a password: only its scheme is repeated.
            _ => bail!(
                "database.url (FACTORS__DATABASE__URL) must start with postgres:// or sqlite://, not {:?}",
                scheme.unwrap_or_default()
            ),
        }
    }

    /// In development, fills in the signing secret and the code key when neither the
    /// files nor the environment give them: generated on first start into
    /// `<data_dir>/development-secrets.toml` (readable by its owner only), read from
    /// there later, so tokens minted once keep working. Answers that file when used.
    ///
    /// # Errors
    /// When the file cannot be read, parsed or written.
    pub fn fill_development_secrets(&mut self) -> anyhow::Result<Option<PathBuf>> {
        let needs_signing =
            self.auth.hs256_secret.is_none() && self.auth.public_keys.is_empty() && self.auth.jwks_file.is_none();
        if self.environment != Environment::Development || !(needs_signing || self.codes.hmac_key.is_none()) {
            return Ok(None);
        }
        let path = self.data_dir.join(DEVELOPMENT_SECRETS);
        let secrets = DevelopmentSecrets::load_or_create(&path)?;
        if needs_signing {
            self.auth.hs256_secret = Some(secrets.hs256_secret);
        }
        if self.codes.hmac_key.is_none() {
            self.codes.hmac_key = Some(secrets.hmac_key);
        }
        Ok(Some(path))
    }

    /// The notice worker's options, checked against the SMS timeout.
    ///
    /// # Errors
    /// A lease not longer than `sms.timeout`, a zero poll interval or no try at all.
    pub fn notice_options(&self) -> anyhow::Result<NoticeOptions> {
        let notices = &self.notices;
        if notices.lease <= self.sms.timeout {
            bail!(
                "notices.lease ({}) must be longer than sms.timeout ({}), or a slow send could be sent twice",
                humantime::format_duration(notices.lease),
                humantime::format_duration(self.sms.timeout)
            );
        }
        if notices.poll_interval.is_zero() || notices.max_attempts == 0 || notices.first_retry.is_zero() {
            bail!("notices.poll_interval, notices.max_attempts and notices.first_retry must be above zero");
        }
        Ok(NoticeOptions {
            lease: notices.lease,
            poll_interval: notices.poll_interval,
            batch: NoticeOptions::default().batch,
            max_attempts: notices.max_attempts,
            first_retry: notices.first_retry,
            max_retry: notices.max_retry.max(notices.first_retry),
        })
    }

    pub fn removal_policy(&self) -> RemovalPolicy {
        RemovalPolicy { self_service: self.policy.self_service }
    }

    fn refuse_dev_secret(&self, secret: &SecretString, key: &str) -> anyhow::Result<()> {
        let shipped = secret.expose_secret().starts_with(DEV_SECRET_PREFIX);
        if shipped && self.environment == Environment::Production {
            bail!("{key} is a development value ({DEV_SECRET_PREFIX}…); set a secret of your own in production");
        }
        Ok(())
    }
}

/// The file in `data_dir` that keeps the generated development secrets.
pub const DEVELOPMENT_SECRETS: &str = "development-secrets.toml";

/// The secrets of a development node, generated once.
#[derive(Deserialize)]
struct DevelopmentSecrets {
    hs256_secret: SecretString,
    hmac_key: SecretString,
}

impl DevelopmentSecrets {
    fn load_or_create(path: &std::path::Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => return toml_secrets(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
        }
        let text = format!(
            "# Generated by factors on its first start in development: the HS256 secret that signs\n\
             # and checks development tokens (`factors token mint`), and the key of the code hashes.\n\
             # Keep this file private; delete it to start afresh (tokens minted before stop working).\n\
             hs256_secret = \"{}\"\nhmac_key = \"{}\"\n",
            random_secret(),
            random_secret()
        );
        match write_private(path, &text) {
            Ok(()) => toml_secrets(&text),
            // Another process started at the same moment and wrote it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::thread::sleep(Duration::from_millis(200));
                let theirs = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml_secrets(&theirs).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }
}

fn toml_secrets(text: &str) -> anyhow::Result<DevelopmentSecrets> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()?
        .try_deserialize()
        .context("expected hs256_secret and hmac_key")
}

/// 32 random bytes as hex, marked as a development secret (refused in production).
fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{DEV_SECRET_PREFIX}{hex}")
}

/// Creates `path` readable and writable by its owner only; fails if it exists.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// `value` trimmed, unless it is empty.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// Refuses anything but an absolute http(s) URL; plain http is allowed (a gateway on
/// the same host or behind a mesh) but warned about in production, where it would carry
/// codes in the clear.
fn check_http_url(url: &str, key: &str, production: bool) -> anyhow::Result<()> {
    let (scheme, rest) = url.split_once("://").unwrap_or_default();
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || rest.is_empty() || rest.starts_with('/') {
        bail!("{key} must be an http:// or https:// URL");
    }
    if production && scheme == "http" {
        tracing::warn!(key, "the SMS provider is called over plain http: codes cross the network unencrypted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of its own under the system's temporary folder, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            Self(std::env::temp_dir().join(format!("factors-settings-{}-{nanos}", std::process::id())))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn development_in(data_dir: &std::path::Path) -> Settings {
        let variables = std::collections::HashMap::from([(
            "FACTORS__DATA_DIR".to_owned(),
            data_dir.to_str().expect("a UTF-8 path").to_owned(),
        )]);
        let loaded = Settings::load_with(Environment::Development, Some(variables)).expect("loads");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        loaded.settings
    }

    fn secrets_of(settings: &Settings) -> (String, String) {
        let expose = |s: Option<&SecretString>| s.expect("filled in").expose_secret().to_owned();
        (expose(settings.auth.hs256_secret.as_ref()), expose(settings.codes.hmac_key.as_ref()))
    }

    #[test]
    fn with_nothing_configured_development_runs_on_sqlite_with_secrets_generated_once_in_the_data_folder() {
        let scratch = Scratch::new();
        let data = scratch.0.join("data");
        let mut settings = development_in(&data);
        assert_eq!(settings.database.url.as_ref().map(|u| u.expose_secret().to_owned()), None);
        let Ok(StoreChoice::Sqlite(sqlite)) = settings.store() else { panic!("the embedded store") };
        assert_eq!(sqlite.url, format!("sqlite://{}", data.join("factors.db").display()));
        assert!(settings.code_key().is_err() && settings.token_verifier().is_err(), "no secret ships in the code");

        let file = settings.fill_development_secrets().expect("generated").expect("a file");
        assert_eq!(file, data.join(DEVELOPMENT_SECRETS));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("written").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
        }
        assert!(settings.token_verifier().is_ok() && settings.code_key().is_ok());
        assert_eq!(settings.role_map().expect("roles"), RoleMap::zitadel_defaults());
        let (signing, code_key) = secrets_of(&settings);
        assert!(signing.starts_with(DEV_SECRET_PREFIX) && code_key.starts_with(DEV_SECRET_PREFIX));
        assert_ne!(signing, code_key);

        let mut restarted = development_in(&data);
        restarted.fill_development_secrets().expect("read back");
        assert_eq!(secrets_of(&restarted), (signing.clone(), code_key), "kept across starts");
        let mut elsewhere = development_in(&scratch.0.join("other"));
        elsewhere.fill_development_secrets().expect("generated");
        assert_ne!(secrets_of(&elsewhere).0, signing, "generated, not fixed");
    }

    #[test]
    fn only_development_generates_secrets_and_given_ones_are_kept() {
        let scratch = Scratch::new();
        for environment in [Environment::Test, Environment::Production] {
            let mut settings = Settings::load(environment).expect("loads").settings;
            settings.data_dir.clone_from(&scratch.0);
            assert_eq!(settings.fill_development_secrets().expect("nothing to do"), None, "{environment:?}");
        }
        let mut settings = development_in(&scratch.0);
        settings.codes.hmac_key = Some("a-key-of-my-own-of-at-least-32-bytes-000".to_owned().into());
        settings.fill_development_secrets().expect("the signing secret generated");
        assert_eq!(secrets_of(&settings).1, "a-key-of-my-own-of-at-least-32-bytes-000");
    }

    #[test]
    fn the_store_is_picked_by_the_url_scheme_and_a_refusal_never_repeats_the_url() {
        let mut settings = Settings::load(Environment::Test).expect("loads").settings;
        for (url, store) in [
            ("postgres://u:p@db:5432/factors", "postgres"),
            ("postgresql://db/factors", "postgres"),
            ("sqlite://var/factors.db", "sqlite"),
            ("SQLITE:///var/lib/factors.db", "sqlite"),
        ] {
            settings.database.url = Some(url.to_owned().into());
            assert_eq!(settings.store().expect(url).name(), store, "{url}");
        }
        settings.database.url = Some("mysql://user:hunter2-secret@db/factors".to_owned().into());
        let refused = settings.store().expect_err("another database").to_string();
        assert!(refused.contains("FACTORS__DATABASE__URL") && refused.contains("\"mysql\""), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn a_development_secret_is_refused_off_loopback_unless_explicitly_accepted() {
        let mut settings = Settings::load(Environment::Test).expect("loads").settings;
        for loopback in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:0"] {
            settings.server.addr = loopback.parse().expect("an address");
            assert!(settings.token_verifier().is_ok(), "{loopback}");
        }
        for exposed in ["0.0.0.0:8080", "[::]:8080", "192.0.2.10:8080"] {
            settings.server.addr = exposed.parse().expect("an address");
            let refused = format!("{:#}", settings.token_verifier().expect_err(exposed));
            assert!(refused.contains("not a loopback address") && refused.contains(exposed), "{refused}");
        }
        settings.auth.allow_development_secret_off_loopback = true;
        assert!(settings.token_verifier().is_ok(), "the explicit opt-in");
        settings.auth.allow_development_secret_off_loopback = false;
        settings.auth.hs256_secret = Some("a-secret-of-my-own-of-at-least-32-bytes-00".to_owned().into());
        assert!(settings.token_verifier().is_ok(), "a secret of one's own is one's own choice");
    }

    #[test]
    fn production_refuses_the_development_secrets_and_hs256() {
        let mut settings = Settings::load(Environment::Test).expect("loads").settings;
        settings.environment = Environment::Production;
        let refused = settings.code_key().expect_err("the development key").to_string();
        assert!(refused.contains("codes.hmac_key is a development value"), "{refused}");
        settings.auth.hs256_secret = Some("a-production-secret-of-at-least-32-bytes".to_owned().into());
        let refused = format!("{:#}", settings.token_verifier().expect_err("HS256 in production"));
        assert!(refused.contains("auth.hs256_secret is for development"), "{refused}");
    }

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
    fn the_budget_of_failed_code_checks_is_read_and_bounded() {
        let load = |max: &str, window: &str| {
            let variables = std::collections::HashMap::from([
                ("FACTORS__CODES__MAX_FAILURES_PER_USER".to_owned(), max.to_owned()),
                ("FACTORS__CODES__FAILURE_WINDOW".to_owned(), window.to_owned()),
            ]);
            Settings::load_with(Environment::Test, Some(variables)).expect("loads").settings.check_budget()
        };
        let budget = load("12", "30m").expect("valid");
        assert_eq!((budget.max_failures, budget.window), (12, chrono::TimeDelta::minutes(30)));
        for (max, window) in [("0", "15m"), ("1000001", "15m"), ("10", "0s"), ("10", "367days")] {
            let refused = load(max, window).expect_err("out of bounds").to_string();
            assert!(refused.contains("codes."), "{max} / {window}: {refused}");
        }
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

    const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn with_sms(environment: Environment, variables: &[(&str, &str)]) -> Settings {
        let variables = variables.iter().map(|(k, v)| (format!("FACTORS__SMS__{k}"), (*v).to_owned())).collect();
        let loaded = Settings::load_with(environment, Some(variables)).expect("loads");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        loaded.settings
    }

    fn sms_refusal(settings: &Settings) -> String {
        format!("{:#}", settings.sms_sender(SmsMetrics::default()).err().expect("refused"))
    }

    const TWILIO: [(&str, &str); 4] = [
        ("PROVIDER", "twilio"),
        ("TWILIO__ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO__AUTH_TOKEN", "twilio-token-0123456789"),
        ("TWILIO__FROM", "+15005550006"),
    ];

    #[test]
    fn the_logging_sender_is_the_default_outside_production() {
        for environment in [Environment::Development, Environment::Test] {
            let settings = Settings::load(environment).expect("loads").settings;
            assert_eq!(settings.sms.provider, SmsProviderKind::Log);
            assert!(matches!(settings.sms_provider(), Ok(ProviderConfig::Log)));
            assert_eq!(
                (settings.sms.timeout, settings.sms.connect_timeout),
                (Duration::from_secs(10), Duration::from_secs(5))
            );
            assert!(settings.sms_sender(SmsMetrics::default()).is_ok());
        }
    }

    #[test]
    fn twilio_is_chosen_with_its_settings() {
        let settings = with_sms(Environment::Development, &TWILIO);
        let Ok(ProviderConfig::Twilio(twilio)) = settings.sms_provider() else { panic!("Twilio") };
        assert_eq!(twilio.base_url, "https://api.twilio.com");
        assert_eq!(twilio.account_sid, "AC0123456789abcdef0123456789abcdef");
        assert_eq!(twilio.auth_token.expose_secret(), "twilio-token-0123456789");
        assert_eq!(twilio.from, TwilioFrom::Number("+15005550006".into()));
        assert_eq!(twilio.timeouts, Timeouts { request: Duration::from_secs(10), connect: Duration::from_secs(5) });
        assert!(settings.sms_sender(SmsMetrics::default()).is_ok());

        let mut variables = TWILIO.to_vec();
        variables.retain(|(key, _)| *key != "TWILIO__FROM");
        variables.extend([("TWILIO__MESSAGING_SERVICE_SID", "MG0123"), ("TIMEOUT", "3s"), ("CONNECT_TIMEOUT", "1s")]);
        let settings = with_sms(Environment::Production, &variables);
        let Ok(ProviderConfig::Twilio(twilio)) = settings.sms_provider() else { panic!("Twilio") };
        assert_eq!(twilio.from, TwilioFrom::MessagingService("MG0123".into()));
        assert_eq!(twilio.timeouts, Timeouts { request: Duration::from_secs(3), connect: Duration::from_secs(1) });
    }

    #[test]
    fn the_webhook_is_chosen_with_its_settings() {
        let settings = with_sms(
            Environment::Production,
            &[
                ("PROVIDER", "webhook"),
                ("WEBHOOK__URL", "https://gw.example.com/sms"),
                ("WEBHOOK__SECRET", WEBHOOK_SECRET),
            ],
        );
        let Ok(ProviderConfig::Webhook(webhook)) = settings.sms_provider() else { panic!("webhook") };
        assert_eq!(webhook.url, "https://gw.example.com/sms");
        assert!(settings.sms_sender(SmsMetrics::default()).is_ok());
    }

    #[test]
    fn production_refuses_the_logging_sender() {
        let mut settings = Settings::load(Environment::Development).expect("loads").settings;
        settings.environment = Environment::Production;
        let refused = sms_refusal(&settings);
        assert!(refused.contains(r#"sms.provider = "log" sends no SMS"#), "{refused}");
        assert!(refused.contains("refused in production"), "{refused}");
    }

    #[test]
    fn production_refuses_a_development_webhook_secret() {
        let settings = with_sms(
            Environment::Production,
            &[
                ("PROVIDER", "webhook"),
                ("WEBHOOK__URL", "https://gw.example.com/sms"),
                ("WEBHOOK__SECRET", "dev-only-webhook-secret-0123456789abcdef"),
            ],
        );
        assert!(sms_refusal(&settings).contains("sms.webhook.secret is a development value"));
    }

    #[test]
    fn invalid_sms_settings_are_refused_naming_the_setting() {
        let twilio_without =
            |key: &str| -> Vec<(&str, &str)> { TWILIO.iter().copied().filter(|(k, _)| *k != key).collect() };
        let webhook = |url: &'static str, secret: &'static str| -> Vec<(&'static str, &'static str)> {
            let mut variables = vec![("PROVIDER", "webhook")];
            if !url.is_empty() {
                variables.push(("WEBHOOK__URL", url));
            }
            if !secret.is_empty() {
                variables.push(("WEBHOOK__SECRET", secret));
            }
            variables
        };
        let with = |extra: (&'static str, &'static str)| -> Vec<(&'static str, &'static str)> {
            let mut variables = TWILIO.to_vec();
            variables.push(extra);
            variables
        };
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                twilio_without("TWILIO__AUTH_TOKEN"),
                r#"sms.twilio.auth_token is required when sms.provider = "twilio" (FACTORS__SMS__TWILIO__AUTH_TOKEN)"#,
            ),
            (
                twilio_without("TWILIO__ACCOUNT_SID"),
                r#"sms.twilio.account_sid is required when sms.provider = "twilio""#,
            ),
            (twilio_without("TWILIO__FROM"), "set exactly one of sms.twilio.from and sms.twilio.messaging_service_sid"),
            (
                with(("TWILIO__MESSAGING_SERVICE_SID", "MG0123")),
                "set exactly one of sms.twilio.from and sms.twilio.messaging_service_sid",
            ),
            (
                with(("TWILIO__BASE_URL", "ftp://api.twilio.com")),
                "sms.twilio.base_url must be an http:// or https:// URL",
            ),
            (with(("TWILIO__ACCOUNT_SID", "AC/../../x")), "account SID must be letters and digits"),
            (
                with(("TEXTS__SIGN_IN", "Your code: {cod}")),
                "sms.texts.sign_in: the sign_in text has an unknown placeholder {cod}",
            ),
            (
                with(("TEXTS__REGISTRATION", "Welcome!")),
                "sms.texts.registration: the registration text must contain {code}",
            ),
            (
                with(("TEXTS__REMOVAL_NOTICE", "Your code {code} no longer works")),
                "sms.texts.removal_notice: the removal_notice text cannot use {code}: a notice carries no code",
            ),
            (with(("TIMEOUT", "0s")), "sms.timeout and sms.connect_timeout must be longer than zero"),
            (webhook("", WEBHOOK_SECRET), r#"sms.webhook.url is required when sms.provider = "webhook""#),
            (webhook("gw.example.com/sms", WEBHOOK_SECRET), "sms.webhook.url must be an http:// or https:// URL"),
            (
                webhook("https://gw.example.com/sms", ""),
                r#"sms.webhook.secret is required when sms.provider = "webhook""#,
            ),
            (
                webhook("https://gw.example.com/sms", "short"),
                "sms.webhook.secret: a secret must be whsec_<base64> or at least 32 bytes",
            ),
            (
                webhook("https://gw.example.com/sms", "whsec_!!!"),
                "sms.webhook.secret: the part after whsec_ is not base64",
            ),
            (
                webhook("https://gw.example.com/sms", "whsec_c2hvcnQ="),
                "sms.webhook.secret: a whsec_ secret must decode to at least 24 bytes",
            ),
        ];
        for (variables, expected) in cases {
            let refused = sms_refusal(&with_sms(Environment::Development, &variables));
            assert!(refused.contains(expected), "{variables:?}: {refused}");
            assert!(!refused.contains("twilio-token"), "{refused}");
        }
    }

    #[test]
    fn an_unknown_provider_is_refused_when_loading() {
        let variables = std::collections::HashMap::from([("FACTORS__SMS__PROVIDER".to_owned(), "sns".to_owned())]);
        let refused = format!("{:#}", Settings::load_with(Environment::Development, Some(variables)).expect_err("sns"));
        assert!(refused.contains(r#"unknown SMS provider "sns": expected "log", "twilio" or "webhook""#), "{refused}");
        assert!(refused.contains("sms.provider"), "{refused}");
    }
}
