//! The snapshot cache: the last known state of each user, for decisions to start from.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_application::ports::SnapshotCache;
use factors_domain::{
    Contact, ContactEmail, ContactPhone, EmailAddress, OrgId, OtpSmsAuthenticator, OtpSmsId, PhoneNumber, SchemaId,
    User, UserData, UserId, UserSnapshot, UserState,
};
use serde::{Deserialize, Serialize};

use crate::metrics::Lookup;
use crate::{Keys, Redis, RedisError};

/// Keeps a snapshot only when it is newer than the one kept: a slow writer can never put
/// an older state back over a newer one. `KEYS[1]` the user's key; `ARGV` the snapshot's
/// sequence, its encoding and the lifetime in milliseconds. Answers 1 when kept.
const PUT_IF_NEWER: &str = r"
local kept = redis.call('HGET', KEYS[1], 's')
if kept and tonumber(kept) >= tonumber(ARGV[1]) then
    return 0
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Users' snapshots in Redis, one hash per user (`s`: sequence, `d`: the snapshot).
///
/// What it holds may be behind the store: use cases only decide on it, and their guarded
/// writes refuse a decision made on an old version (see the application's
/// `SnapshotCache`). Redis errors, timeouts and an open circuit all answer as a miss.
pub struct CachedSnapshots {
    redis: Arc<Redis>,
    keys: Keys,
    ttl: Duration,
    put: redis::Script,
}

impl CachedSnapshots {
    pub fn new(redis: Arc<Redis>, keys: Keys, ttl: Duration) -> Self {
        Self { redis, keys, ttl, put: redis::Script::new(PUT_IF_NEWER) }
    }
}

/// A snapshot as cached. Phone numbers are in it, as in the store: protect Redis like
/// the database.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    id: String,
    org: String,
    state: u8,
    schema: String,
    data: serde_json::Map<String, serde_json::Value>,
    email: Option<(String, bool)>,
    phone: Option<(String, bool)>,
    created: DateTime<Utc>,
    changed: DateTime<Utc>,
    sequence: u64,
    otp_sms: Vec<(String, String, bool, DateTime<Utc>)>,
}

fn state_code(state: UserState) -> u8 {
    match state {
        UserState::Active => 1,
        UserState::Inactive => 2,
        UserState::Deleted => 3,
        UserState::Locked => 4,
    }
}

fn encode(snapshot: &UserSnapshot) -> Vec<u8> {
    let user = &snapshot.user;
    let entry = Entry {
        id: user.id.to_string(),
        org: user.org.to_string(),
        state: state_code(user.state),
        schema: user.schema_id.to_string(),
        data: user.data.as_map().clone(),
        email: user.contact.email.as_ref().map(|e| (e.address.as_str().to_owned(), e.verified)),
        phone: user.contact.phone.as_ref().map(|p| (p.number.as_e164().to_owned(), p.verified)),
        created: user.created,
        changed: user.changed,
        sequence: user.sequence,
        otp_sms: snapshot
            .otp_sms
            .iter()
            .map(|a| (a.id.to_string(), a.phone.as_e164().to_owned(), a.verified, a.created))
            .collect(),
    };
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// `None` for anything that does not decode (another version's layout, say): a miss.
fn decode(bytes: &[u8], asked: &UserId) -> Option<UserSnapshot> {
    let entry: Entry = serde_json::from_slice(bytes).ok()?;
    let id = UserId::new(entry.id).ok()?;
    if &id != asked {
        return None;
    }
    let state = match entry.state {
        1 => UserState::Active,
        2 => UserState::Inactive,
        3 => UserState::Deleted,
        4 => UserState::Locked,
        _ => return None,
    };
    let otp_sms = entry
        .otp_sms
        .into_iter()
        .map(|(otp, phone, verified, created)| {
            Some(OtpSmsAuthenticator {
                id: OtpSmsId::new(otp).ok()?,
                user: id.clone(),
                phone: PhoneNumber::from_stored(&phone).ok()?,
                verified,
                created,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let email = match entry.email {
        Some((address, verified)) => Some(ContactEmail { address: EmailAddress::parse(&address).ok()?, verified }),
        None => None,
    };
    let phone = match entry.phone {
        Some((number, verified)) => Some(ContactPhone { number: PhoneNumber::from_stored(&number).ok()?, verified }),
        None => None,
    };
    let user = User {
        id,
        org: OrgId::new(entry.org).ok()?,
        state,
        schema_id: SchemaId::new(entry.schema).ok()?,
        data: UserData::new(serde_json::Value::Object(entry.data)).ok()?,
        contact: Contact { email, phone },
        created: entry.created,
        changed: entry.changed,
        sequence: entry.sequence,
    };
    Some(UserSnapshot { user, otp_sms })
}

#[async_trait]
impl SnapshotCache for CachedSnapshots {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "redis", otel.kind = "client", user_id = %user, cache))]
    async fn get(&self, user: &UserId) -> Option<UserSnapshot> {
        let fetched = self.redis.hget(&self.keys.snapshot(user), "d").await;
        let (lookup, snapshot) = match fetched {
            Ok(Some(bytes)) => match decode(&bytes, user) {
                Some(snapshot) => (Lookup::Hit, Some(snapshot)),
                None => (Lookup::Miss, None),
            },
            Ok(None) => (Lookup::Miss, None),
            Err(RedisError::Failed) => (Lookup::Error, None),
            Err(RedisError::Bypassed) => (Lookup::Bypass, None),
        };
        self.redis.metrics().lookup(lookup);
        tracing::Span::current().record("cache", lookup.label());
        snapshot
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "redis", otel.kind = "client", user_id = %snapshot.user.id, sequence = snapshot.user.sequence))]
    async fn put(&self, snapshot: &UserSnapshot) {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let args = [
            snapshot.user.sequence.to_string(),
            String::from_utf8(encode(snapshot)).unwrap_or_default(),
            ttl_ms.to_string(),
        ];
        // Best effort: a snapshot not kept only costs a later decision a read of the store.
        let _: Result<i64, RedisError> =
            self.redis.script(&self.put, &self.keys.snapshot(&snapshot.user.id), &args).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_snapshot_survives_the_trip_through_its_encoding() {
        let at =
            Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().expect("valid") + chrono::TimeDelta::microseconds(7);
        let id = UserId::new("alice").expect("valid");
        let snapshot = UserSnapshot {
            user: User {
                id: id.clone(),
                org: OrgId::new("org-a").expect("valid"),
                state: UserState::Locked,
                schema_id: SchemaId::new("human").expect("valid"),
                data: UserData::new(serde_json::json!({"name": "Ada", "n": [1, 2]})).expect("object"),
                contact: Contact {
                    email: Some(ContactEmail {
                        address: EmailAddress::parse("ada@example.com").expect("valid"),
                        verified: true,
                    }),
                    phone: Some(ContactPhone {
                        number: PhoneNumber::parse("+41791234567").expect("valid"),
                        verified: false,
                    }),
                },
                created: at,
                changed: at,
                sequence: 9,
            },
            otp_sms: vec![OtpSmsAuthenticator {
                id: OtpSmsId::new("a1").expect("valid"),
                user: id.clone(),
                phone: PhoneNumber::parse("+41791234568").expect("valid"),
                verified: true,
                created: at,
            }],
        };

        assert_eq!(decode(&encode(&snapshot), &id), Some(snapshot.clone()));
        assert_eq!(decode(&encode(&snapshot), &UserId::new("bob").expect("valid")), None, "another user's entry");
        assert_eq!(decode(b"{\"not\": \"an entry\"}", &id), None);
    }
}
