//! Bearer tokens: verification of JWTs (HS256 for development; RS*, PS*, ES256/384 and
//! EdDSA public keys from PEM or a JWKS document for production) into a [`Caller`], and
//! minting of development tokens.
//!
//! A token is accepted only when its header's `alg` is the algorithm of a configured key
//! (selected by `kid` when the token names one), so `alg: none` and algorithm confusion
//! (an HS256 token "signed" with an RSA public key) never verify. Issuer, audience,
//! `exp` and `nbf` are checked, with a small leeway for clock skew. OpenID Connect's `amr`
//! and `auth_time`, when present, say how and when the user signed in (for rules that
//! ask for a recent second factor); like every claim factors reads, a malformed one makes
//! the token invalid rather than being taken as absent.
//!
//! Clients send the same token with request after request, so a token that verified is
//! remembered, by its exact text, until its own `exp`: the signature, the claims and the
//! role mapping are worked out once per token instead of once per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_application::ports::{AuthError, TokenVerifier};
use factors_domain::{Authentication, Caller, Grant, OrgId, Origin, Permission, Scope, UserId};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// ZITADEL's claim for the organization a user belongs to.
pub const ORG_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";

/// A role grant as a token carries it: `{"role": "IAM_OWNER"}` or
/// `{"role": "ORG_USER_MANAGER", "org": "<org id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleClaim {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// What a role grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    pub permissions: Vec<Permission>,
    /// A grant of this role without an `org` holds instance-wide; otherwise it holds on
    /// the caller's own organization.
    pub instance_wide: bool,
}

/// The mapping from role names to permissions, ZITADEL-like, overridable by config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMap(HashMap<String, RoleDefinition>);

impl RoleMap {
    pub fn new(roles: HashMap<String, RoleDefinition>) -> Self {
        Self(roles)
    }

    /// The default table, as `config/default.toml` writes it out: `IAM_OWNER` (everything,
    /// instance-wide), `ORG_OWNER` (everything on users of its org, and its org's login
    /// policy, as in ZITADEL, where the owner sets the org's policies),
    /// `ORG_USER_MANAGER` (everything on users of its org, but not the policy: managing
    /// users must not let one loosen the rules that protect them), `ORG_USER_READER`
    /// (read), `IAM_LOGIN_CLIENT` (the session permissions, instance-wide: a login UI).
    pub fn zitadel_defaults() -> Self {
        let users = Permission::USER.to_vec();
        let owner = [users.as_slice(), &[Permission::PolicyRead, Permission::PolicyWrite]].concat();
        let role = |permissions: Vec<Permission>, instance_wide| RoleDefinition { permissions, instance_wide };
        Self(HashMap::from([
            ("IAM_OWNER".to_owned(), role(Permission::ALL.to_vec(), true)),
            ("IAM_LOGIN_CLIENT".to_owned(), role(Permission::SESSION.to_vec(), true)),
            ("ORG_OWNER".to_owned(), role(owner, false)),
            ("ORG_USER_MANAGER".to_owned(), role(users, false)),
            ("ORG_USER_READER".to_owned(), role(vec![Permission::UserRead], false)),
        ]))
    }

    /// The grants of a token's role claims. Unknown roles grant nothing.
    pub fn grants(&self, claims: &[RoleClaim], caller_org: Option<&OrgId>) -> Vec<Grant> {
        let mut grants = Vec::new();
        for claim in claims {
            let Some(definition) = self.0.get(&claim.role) else {
                tracing::debug!(role = %claim.role, "a token names a role this deployment does not map");
                continue;
            };
            let scope = match (&claim.org, definition.instance_wide) {
                (Some(org), _) => match OrgId::new(org.as_str()) {
                    Ok(org) => Scope::Org(org),
                    Err(_) => continue,
                },
                (None, true) => Scope::Instance,
                (None, false) => match caller_org {
                    Some(org) => Scope::Org(org.clone()),
                    None => continue,
                },
            };
            for permission in &definition.permissions {
                let grant = Grant { permission: *permission, scope: scope.clone() };
                if !grants.contains(&grant) {
                    grants.push(grant);
                }
            }
        }
        grants
    }
}

/// A key tokens may be signed with.
#[derive(Clone)]
struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The claims factors reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// Seconds since the Unix epoch; validation requires it.
    exp: i64,
    #[serde(rename = "urn:zitadel:iam:user:resourceowner:id", default)]
    org: Option<String>,
    #[serde(default)]
    roles: Vec<RoleClaim>,
    /// OpenID Connect's authentication methods (RFC 8176): an array of strings.
    #[serde(default, deserialize_with = "present")]
    amr: Option<Vec<String>>,
    /// OpenID Connect's time of sign-in: whole seconds since the Unix epoch.
    #[serde(default, deserialize_with = "present")]
    auth_time: Option<i64>,
}

/// A claim that, when present, must have its type: `null` or a value of another type is
/// refused, not read as absent (an absent claim is `None` through `#[serde(default)]`).
/// A token that says something about how its user signed in must say it properly.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl Claims {
    /// How the token says its user signed in.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] when `auth_time` is before 1970, or later than `now` plus
    /// the `leeway` for clock skew (a sign-in that has not happened yet would pass every
    /// step-up as fresh), which no honest token says.
    fn authentication(&mut self, now: i64, leeway: Duration) -> Result<Authentication, AuthError> {
        let latest = now.saturating_add(i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX));
        let at = self
            .auth_time
            .map(|seconds| {
                (0..=latest)
                    .contains(&seconds)
                    .then(|| DateTime::<Utc>::from_timestamp(seconds, 0))
                    .flatten()
                    .ok_or(AuthError::Invalid)
            })
            .transpose()?;
        Ok(Authentication { methods: self.amr.take().unwrap_or_default(), at })
    }
}

/// Verifies bearer tokens against configured keys, issuer and audience.
#[derive(Clone)]
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    leeway: Duration,
    keys: Vec<VerificationKey>,
    roles: RoleMap,
    verified: Arc<VerifiedTokens>,
}

/// Tokens that verified, by their exact text, with the caller they stand for (grants and
/// how it signed in, whole: a step-up rule must see a remembered token's `amr` and
/// `auth_time` as it would a fresh one's) and their `exp`. Only a byte-identical token is served from here, so it carries the very
/// signature and claims that were checked; keys and roles are fixed for the life of the
/// process. Bounded in count and in token length, so memory stays small whatever
/// clients send.
struct VerifiedTokens {
    entries: quick_cache::sync::Cache<Box<str>, (Caller, i64)>,
}

impl VerifiedTokens {
    /// Tokens remembered at most.
    const CAPACITY: usize = 4_096;
    /// Longer tokens are verified every time (real ones are well under this).
    const MAX_TOKEN_BYTES: usize = 4_096;

    fn new() -> Self {
        Self { entries: quick_cache::sync::Cache::new(Self::CAPACITY) }
    }

    /// The caller of `token` if it verified before and its `exp` has not passed.
    fn get(&self, token: &str, now: i64) -> Option<Caller> {
        self.entries.get(token).filter(|(_, exp)| now < *exp).map(|(caller, _)| caller)
    }

    fn insert(&self, token: &str, caller: &Caller, exp: i64) {
        if token.len() <= Self::MAX_TOKEN_BYTES {
            self.entries.insert(token.into(), (caller.clone(), exp));
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys.iter().map(|k| (k.kid.as_deref(), k.algorithm)).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, leeway: Duration, roles: RoleMap) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway,
            keys: Vec::new(),
            roles,
            verified: Arc::new(VerifiedTokens::new()),
        }
    }

    /// Accepts HS256 tokens signed with `secret` (development).
    ///
    /// # Errors
    /// When the secret is shorter than 32 bytes.
    pub fn with_hs256_secret(mut self, secret: &[u8]) -> anyhow::Result<Self> {
        if secret.len() < 32 {
            bail!("the HS256 secret must be at least 32 bytes");
        }
        self.keys.push(VerificationKey {
            kid: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        });
        Ok(self)
    }

    /// Accepts tokens signed by the private half of a PEM public key.
    ///
    /// # Errors
    /// When `algorithm` is not asymmetric or the PEM does not hold a key of its family.
    pub fn with_public_key_pem(
        mut self,
        algorithm: Algorithm,
        pem: &[u8],
        kid: Option<String>,
    ) -> anyhow::Result<Self> {
        let key = match algorithm.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                bail!("{algorithm:?} is symmetric: configure it as the HS256 secret, not as a public key")
            }
        }
        .with_context(|| format!("the PEM is not a {algorithm:?} public key"))?;
        self.keys.push(VerificationKey { kid, algorithm, key });
        Ok(self)
    }

    /// Accepts tokens signed by any public key of a JWKS document. Symmetric (`oct`) keys
    /// in it are refused (a JWKS is for keys that may be published), and keys marked for
    /// encryption (`"use": "enc"`) are skipped.
    ///
    /// # Errors
    /// When the document is not a JWKS or holds a key whose algorithm cannot be told.
    pub fn with_jwks(mut self, jwks: &str) -> anyhow::Result<Self> {
        let set: JwkSet = serde_json::from_str(jwks).context("not a JWKS document")?;
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                tracing::warn!(kid = ?kid, "skipping a JWKS key marked for encryption");
                continue;
            }
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (_, AlgorithmParameters::OctetKey(_)) => bail!("key {kid:?}: symmetric keys do not belong in a JWKS"),
                (Some(alg), _) => {
                    jwk_algorithm(*alg).with_context(|| format!("key {kid:?}: unsupported alg {alg:?}"))?
                }
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(ec)) => match ec.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => bail!("key {kid:?}: unsupported curve"),
                },
                (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
                (None, _) => bail!("key {kid:?}: unsupported key type"),
            };
            let key = DecodingKey::from_jwk(jwk).with_context(|| format!("key {kid:?} is not usable"))?;
            self.keys.push(VerificationKey { kid, algorithm, key });
        }
        Ok(self)
    }

    /// Whether any key is configured; a verifier without keys refuses every token.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        validation
    }

    /// Checks `token` in full: the caller it stands for and its `exp`.
    fn verify_uncached(&self, token: &str) -> Result<(Caller, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let candidates = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid);
        let mut outcome = Err(AuthError::Invalid);
        for candidate in candidates {
            match jsonwebtoken::decode::<Claims>(token, &candidate.key, &self.validation(candidate.algorithm)) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    outcome = Err(AuthError::Expired);
                    break;
                }
                Err(_) => {}
            }
        }
        let mut claims = outcome?;
        let authentication = claims.authentication(unix_now(), self.leeway)?;
        let user_id = UserId::new(claims.sub).map_err(|_| AuthError::Invalid)?;
        let org = claims.org.map(OrgId::new).transpose().map_err(|_| AuthError::Invalid)?;
        let grants = self.roles.grants(&claims.roles, org.as_ref());
        Ok((Caller { user_id, org, grants, authentication, origin: Origin::default() }, claims.exp))
    }
}

fn jwk_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if let Some(caller) = self.verified.get(token, unix_now()) {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_uncached(token)?;
        self.verified.insert(token, &caller, exp);
        Ok(caller)
    }
}

/// Claims of a minted development token.
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(rename = "urn:zitadel:iam:user:resourceowner:id", skip_serializing_if = "Option::is_none")]
    org: Option<&'a str>,
    roles: &'a [RoleClaim],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
}

/// Signs development tokens with the HS256 secret, for `factors token mint`.
pub struct DevTokenMinter {
    issuer: String,
    audience: String,
    key: EncodingKey,
}

impl std::fmt::Debug for DevTokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevTokenMinter")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// What to put in a minted token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub sub: String,
    pub org: Option<String>,
    pub roles: Vec<RoleClaim>,
    pub ttl: Duration,
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// The `amr` claim (`pwd`, `sms`, ...); left out when empty, as a token of a caller
    /// that says nothing about how it signed in.
    pub amr: Vec<String>,
    /// The `auth_time` claim, in seconds since the Unix epoch; left out when `None`.
    pub auth_time: Option<i64>,
}

impl DevTokenMinter {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, secret: &[u8]) -> Self {
        Self { issuer: issuer.into(), audience: audience.into(), key: EncodingKey::from_secret(secret) }
    }

    /// # Errors
    /// When the token cannot be encoded (a TTL beyond the range of `exp`), or would not
    /// verify (an `auth_time` before 1970).
    pub fn mint(&self, request: &MintRequest) -> anyhow::Result<String> {
        let ttl = i64::try_from(request.ttl.as_secs()).context("ttl is too long")?;
        if request.auth_time.is_some_and(|at| at < 0) {
            bail!("auth_time is before 1970");
        }
        let claims = MintedClaims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &request.sub,
            iat: request.now,
            nbf: request.now,
            exp: request.now.checked_add(ttl).context("ttl is too long")?,
            org: request.org.as_deref(),
            roles: &request.roles,
            amr: &request.amr,
            auth_time: request.auth_time,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key).context("signing the token")
    }
}
