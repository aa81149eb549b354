//! The cache decorator of the OTP SMS lookup.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_application::ports::{OtpSmsReader, Unexpected};
use factors_domain::{OtpSmsAuthenticator, OtpSmsId, PhoneNumber, User};
use serde::{Deserialize, Serialize};

use crate::metrics::Lookup;
use crate::{Keys, Redis, RedisError};

/// Serves "the OTP SMS authenticators of user X" from Redis when it can, from the wrapped
/// reader (Postgres) otherwise, and stores what it read for the next caller.
///
/// Entries are keyed by the user's `sequence` (see the crate documentation), so an entry
/// is only read for the state of the user it was built from. Redis errors, timeouts and
/// an open circuit all mean "read Postgres"; they never fail the lookup.
pub struct CachedOtpSms {
    inner: Arc<dyn OtpSmsReader>,
    redis: Arc<Redis>,
    keys: Keys,
    ttl: Duration,
}

impl CachedOtpSms {
    pub fn new(inner: Arc<dyn OtpSmsReader>, redis: Arc<Redis>, keys: Keys, ttl: Duration) -> Self {
        Self { inner, redis, keys, ttl }
    }
}

/// An authenticator as cached; the user is the key's.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    id: String,
    phone: String,
    verified: bool,
    created: DateTime<Utc>,
}

fn encode(list: &[OtpSmsAuthenticator]) -> Vec<u8> {
    let entries: Vec<Entry> = list
        .iter()
        .map(|a| Entry {
            id: a.id.to_string(),
            phone: a.phone.as_e164().to_owned(),
            verified: a.verified,
            created: a.created,
        })
        .collect();
    serde_json::to_vec(&entries).unwrap_or_default()
}

/// `None` for anything that does not decode: it is then read from Postgres again.
fn decode(bytes: &[u8], user: &User) -> Option<Vec<OtpSmsAuthenticator>> {
    let entries: Vec<Entry> = serde_json::from_slice(bytes).ok()?;
    entries
        .into_iter()
        .map(|e| {
            Some(OtpSmsAuthenticator {
                id: OtpSmsId::new(e.id).ok()?,
                user: user.id.clone(),
                phone: PhoneNumber::from_stored(&e.phone).ok()?,
                verified: e.verified,
                created: e.created,
            })
        })
        .collect()
}

#[async_trait]
impl OtpSmsReader for CachedOtpSms {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id, sequence = user.sequence, cache))]
    async fn list_otp_sms(&self, user: &User) -> Result<Vec<OtpSmsAuthenticator>, Unexpected> {
        let key = self.keys.otp_sms(&user.id, user.sequence, user.changed.timestamp_micros());
        let metrics = self.redis.metrics();
        let cached = self.redis.get(&key).await;
        let lookup = match cached {
            Ok(Some(bytes)) => match decode(&bytes, user) {
                Some(list) => {
                    metrics.lookup(Lookup::Hit);
                    tracing::Span::current().record("cache", "hit");
                    return Ok(list);
                }
                None => Lookup::Miss,
            },
            Ok(None) => Lookup::Miss,
            Err(RedisError::Failed) => Lookup::Error,
            Err(RedisError::Bypassed) => Lookup::Bypass,
        };
        metrics.lookup(lookup);
        let list = self.inner.list_otp_sms(user).await?;
        // Only a Redis that just answered is worth a write; a failing one would cost
        // another timeout for nothing.
        if lookup == Lookup::Miss {
            let _ = self.redis.set(&key, &encode(&list), self.ttl).await;
        }
        Ok(list)
    }
}
