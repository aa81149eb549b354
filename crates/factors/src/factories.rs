//! What the settings build: the token verifier, the SMS sender, the store's configuration
//! and the values of the rules, each checked, with a message that names the setting to
//! change. The wiring ([`crate::startup`]) calls these.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use factors_adapters_jwt::{JwtVerifier, RoleDefinition, RoleMap};
use factors_adapters_postgres::{PgConfig, Pooler};
use factors_adapters_sms::{
    FailoverConfig, FailoverSender, ProviderConfig, SmsMetrics, SmsTexts, TWILIO_BASE_URL, TextConfig, Timeouts,
    TwilioConfig, TwilioFrom, WebhookConfig, WebhookSecret,
};
use factors_adapters_sqlite::SqliteConfig;
use factors_api_http::origin::ClientAddresses;
use factors_application::notices::NoticeOptions;
use factors_application::ports::SmsSender;
use factors_application::sms_guard::BreakerMode;
use factors_domain::{BreakerRule, CheckBudget, CodeKey, CodePolicy, Permission, RemovalPolicy, SmsCountries};
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::{
    DEV_SECRET_PREFIX, Environment, PoolerSetting, Settings, SmsBreakerMode, SmsProviderKind, StoreChoice,
};

impl Settings {
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
    pub fn sms_sender(&self, metrics: &SmsMetrics) -> anyhow::Result<Arc<dyn SmsSender>> {
        let texts = self.sms_texts()?;
        let kinds = if self.sms.providers.is_empty() { vec![self.sms.provider] } else { self.sms.providers.clone() };
        let mut members = Vec::new();
        for (n, kind) in kinds.iter().enumerate() {
            if kinds[..n].contains(kind) {
                bail!("sms.providers names {:?} twice", kind.as_str());
            }
            let config = self.sms_provider_of(*kind)?;
            let provider = config.provider();
            let sender = factors_adapters_sms::sender(config, texts.clone(), metrics.clone())
                .with_context(|| format!("sms provider {:?}", kind.as_str()))?;
            members.push((provider, sender));
        }
        if let [(_, only)] = members.as_slice() {
            return Ok(only.clone());
        }
        let failover = &self.sms.failover;
        if failover.failures == 0 || failover.cool_down.is_zero() {
            bail!("sms.failover.failures and sms.failover.cool_down must be above zero");
        }
        let config = FailoverConfig { failures: failover.failures, cool_down: failover.cool_down };
        Ok(Arc::new(FailoverSender::new(members, config)))
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

    #[cfg(test)]
    pub(crate) fn sms_provider(&self) -> anyhow::Result<ProviderConfig> {
        self.sms_provider_of(self.sms.provider)
    }

    /// The settings of provider `kind`, checked.
    fn sms_provider_of(&self, kind: SmsProviderKind) -> anyhow::Result<ProviderConfig> {
        let sms = &self.sms;
        if sms.timeout.is_zero() || sms.connect_timeout.is_zero() {
            bail!("sms.timeout and sms.connect_timeout must be longer than zero");
        }
        let timeouts = Timeouts { request: sms.timeout, connect: sms.connect_timeout };
        let production = self.environment == Environment::Production;
        let required = |value: Option<&str>, key: &str| -> anyhow::Result<String> {
            present(value).map(str::to_owned).with_context(|| {
                let variable = key.replace('.', "__").to_ascii_uppercase();
                format!("{key} is required when sms.provider = {:?} (FACTORS__{variable})", kind.as_str())
            })
        };
        Ok(match kind {
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
                    pooler: match database.pooler {
                        PoolerSetting::None => Pooler::None,
                        PoolerSetting::Transaction => Pooler::Transaction,
                    },
                    migration_url: database.migration_url.as_ref().map(|url| url.expose_secret().trim().to_owned()),
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

    /// How each request's client address is found, from `server.trusted_proxies` and
    /// `server.forwarded_header`.
    ///
    /// # Errors
    /// A trusted proxy that is neither an address nor a network.
    pub fn client_addresses(&self) -> anyhow::Result<ClientAddresses> {
        ClientAddresses::new(&self.server.trusted_proxies, self.server.forwarded_header)
            .map_err(|e| anyhow::anyhow!("server.trusted_proxies (FACTORS__SERVER__TRUSTED_PROXIES): {e}"))
    }

    /// The regions codes go to, from `sms.countries`.
    ///
    /// # Errors
    /// Both lists set, or a code that names no region.
    pub fn sms_countries(&self) -> anyhow::Result<SmsCountries> {
        let countries = &self.sms.countries;
        SmsCountries::new(&countries.allow, &countries.deny).map_err(|e| {
            anyhow::anyhow!("sms.countries (FACTORS__SMS__COUNTRIES__ALLOW / FACTORS__SMS__COUNTRIES__DENY): {e}")
        })
    }

    /// The regions' conversion breakers, from `sms.breaker`; none when it is off.
    ///
    /// # Errors
    /// A threshold outside 0 to 1, or a count or duration of zero.
    pub fn sms_breaker(&self) -> anyhow::Result<Option<(BreakerRule, BreakerMode)>> {
        let breaker = &self.sms.breaker;
        if !breaker.enabled {
            return Ok(None);
        }
        if !(0.0..=1.0).contains(&breaker.threshold) {
            bail!("sms.breaker.threshold must be between 0.0 and 1.0, got {}", breaker.threshold);
        }
        if breaker.min_sends == 0 || breaker.probes == 0 || breaker.window.is_zero() || breaker.cool_down.is_zero() {
            bail!("sms.breaker.min_sends, probes, window and cool_down must be above zero");
        }
        let delta = |d: Duration| chrono::TimeDelta::from_std(d).context("sms.breaker: a duration too long");
        let rule = BreakerRule {
            threshold: breaker.threshold,
            min_sends: breaker.min_sends,
            window: delta(breaker.window)?,
            cool_down: delta(breaker.cool_down)?,
            probes: breaker.probes,
        };
        let mode = match breaker.mode {
            SmsBreakerMode::Enforce => BreakerMode::Enforce,
            SmsBreakerMode::Monitor => BreakerMode::Monitor,
        };
        Ok(Some((rule, mode)))
    }

    pub fn removal_policy(&self) -> RemovalPolicy {
        RemovalPolicy { self_service: self.policy.self_service }
    }

    pub(crate) fn refuse_dev_secret(&self, secret: &SecretString, key: &str) -> anyhow::Result<()> {
        let shipped = secret.expose_secret().starts_with(DEV_SECRET_PREFIX);
        if shipped && self.environment == Environment::Production {
            bail!("{key} is a development value ({DEV_SECRET_PREFIX}…); set a secret of your own in production");
        }
        Ok(())
    }
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
    use crate::settings::Environment;
    use crate::settings::tests::WEBHOOK_SECRET;

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
    fn sms_countries_are_an_allow_list_or_a_deny_list_of_regions_never_both() {
        let variables =
            std::collections::HashMap::from([("FACTORS__SMS__COUNTRIES__ALLOW".to_owned(), "ch, DE".to_owned())]);
        let mut settings = Settings::load_with(Environment::Test, Some(variables)).expect("loads").settings;
        let only = settings.sms_countries().expect("valid");
        assert_eq!(only, SmsCountries::Only(["CH".to_owned(), "DE".to_owned()].into()));
        settings.sms.countries.deny = vec!["US".into()];
        let both = settings.sms_countries().expect_err("both lists").to_string();
        assert!(both.contains("sms.countries") && both.contains("not both"), "{both}");
        settings.sms.countries.allow.clear();
        settings.sms.countries.deny = vec!["Swiss".into()];
        let unknown = settings.sms_countries().expect_err("no region").to_string();
        assert!(unknown.contains("\"SWISS\""), "{unknown}");
        assert_eq!(
            Settings::load(Environment::Test).expect("loads").settings.sms_countries().ok(),
            Some(SmsCountries::All)
        );
    }

    #[test]
    fn sms_budgets_are_off_by_default_and_a_prefix_must_have_digits() {
        let mut settings = Settings::load(Environment::Test).expect("loads").settings;
        let budgets = settings.rate_limits.config().expect("valid").budgets;
        assert_eq!((budgets.per_country, budgets.per_prefix), (0, 0), "off by default");
        settings.rate_limits.prefix_digits = 0;
        let refused = settings.rate_limits.config().expect_err("no digits").to_string();
        assert!(refused.contains("rate_limits.prefix_digits"), "{refused}");
    }

    #[test]
    fn the_breaker_is_off_by_default_and_its_settings_are_checked_when_on() {
        let variables = std::collections::HashMap::from([
            ("FACTORS__SMS__BREAKER__ENABLED".to_owned(), "true".to_owned()),
            ("FACTORS__SMS__BREAKER__MODE".to_owned(), "monitor".to_owned()),
        ]);
        assert_eq!(Settings::load(Environment::Test).expect("loads").settings.sms_breaker().expect("valid"), None);
        let mut settings = Settings::load_with(Environment::Test, Some(variables)).expect("loads").settings;
        let (rule, mode) = settings.sms_breaker().expect("valid").expect("on");
        assert_eq!((rule.threshold, rule.min_sends, rule.probes, mode), (0.2, 50, 5, BreakerMode::Monitor));
        settings.sms.breaker.threshold = 1.5;
        let refused = settings.sms_breaker().expect_err("a share above one").to_string();
        assert!(refused.contains("sms.breaker.threshold"), "{refused}");
    }

    #[test]
    fn trusted_proxies_and_their_header_are_read_from_the_environment_and_checked() {
        let variables = std::collections::HashMap::from([
            ("FACTORS__SERVER__TRUSTED_PROXIES".to_owned(), "10.0.0.0/8, 192.0.2.1".to_owned()),
            ("FACTORS__SERVER__FORWARDED_HEADER".to_owned(), "forwarded".to_owned()),
        ]);
        let mut settings = Settings::load_with(Environment::Test, Some(variables)).expect("loads").settings;
        let clients = settings.client_addresses().expect("valid");
        let headers = http::HeaderMap::from_iter([(
            http::HeaderName::from_static("forwarded"),
            http::HeaderValue::from_static("for=203.0.113.7, for=192.0.2.1"),
        )]);
        assert_eq!(clients.client_address(Some([10, 0, 0, 5].into()), &headers), Some([203, 0, 113, 7].into()));
        settings.server.trusted_proxies.push("lb.internal".into());
        let refused = settings.client_addresses().expect_err("a name is no address").to_string();
        assert!(refused.contains("server.trusted_proxies") && refused.contains("lb.internal"), "{refused}");
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

    fn with_sms(environment: Environment, variables: &[(&str, &str)]) -> Settings {
        let variables = variables.iter().map(|(k, v)| (format!("FACTORS__SMS__{k}"), (*v).to_owned())).collect();
        let loaded = Settings::load_with(environment, Some(variables)).expect("loads");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        loaded.settings
    }

    fn sms_refusal(settings: &Settings) -> String {
        format!("{:#}", settings.sms_sender(&SmsMetrics::default()).err().expect("refused"))
    }

    const TWILIO: [(&str, &str); 4] = [
        ("PROVIDER", "twilio"),
        ("TWILIO__ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO__AUTH_TOKEN", "twilio-token-0123456789"),
        ("TWILIO__FROM", "+15005550006"),
    ];

    #[test]
    fn several_providers_are_each_checked_and_none_may_come_twice() {
        let mut both: Vec<(&str, &str)> = TWILIO.to_vec();
        both.extend([
            ("PROVIDERS", "twilio, webhook"),
            ("WEBHOOK__URL", "https://sms.example.com/hook"),
            ("WEBHOOK__SECRET", WEBHOOK_SECRET),
        ]);
        let settings = with_sms(Environment::Test, &both);
        assert_eq!(settings.sms.providers, [SmsProviderKind::Twilio, SmsProviderKind::Webhook]);
        assert!(settings.sms_sender(&SmsMetrics::default()).is_ok());

        let without_webhook: Vec<(&str, &str)> = both.iter().copied().filter(|(k, _)| *k != "WEBHOOK__URL").collect();
        let refused = sms_refusal(&with_sms(Environment::Test, &without_webhook));
        assert!(refused.contains("sms.webhook.url"), "{refused}");
        let twice: Vec<(&str, &str)> = both
            .iter()
            .map(|(k, v)| if *k == "PROVIDERS" { (*k, "webhook, twilio, webhook") } else { (*k, *v) })
            .collect();
        assert!(sms_refusal(&with_sms(Environment::Test, &twice)).contains("\"webhook\" twice"));
    }

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
            assert!(settings.sms_sender(&SmsMetrics::default()).is_ok());
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
        assert!(settings.sms_sender(&SmsMetrics::default()).is_ok());

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
        assert!(settings.sms_sender(&SmsMetrics::default()).is_ok());
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
}
