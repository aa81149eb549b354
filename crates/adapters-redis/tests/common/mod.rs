//! Arrangements shared by the Redis suites: a real Postgres store, a real Redis (or a
//! proxy or cluster in front of one), and the invariant stress run.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use factors_adapters_postgres::PgStore;
use factors_adapters_redis::{BreakerConfig, CachedOtpSms, Keys, Lookup, Redis, RedisConfig, RedisMetrics};
use factors_application::ports::{DependencyState, NewOtpSms, OtpSmsReader, OtpSmsWriter, UserReader, UserWriter};
use factors_domain::{
    Contact, Event, EventKind, InstanceId, OrgId, OtpSmsAuthenticator, OtpSmsId, PhoneNumber, Removal, SchemaId, User,
    UserData, UserId, UserState,
};
use factors_testing::TestDatabase;

pub const INSTANCE: &str = "inst";

pub fn config(urls: &str, cluster: bool) -> RedisConfig {
    RedisConfig {
        urls: urls.split(',').map(str::to_owned).collect(),
        cluster,
        command_timeout: Duration::from_millis(50),
        connect_timeout: Duration::from_millis(500),
        breaker: BreakerConfig { failures_to_open: 3, open_for: Duration::from_millis(300) },
    }
}

pub fn uid(id: &str) -> UserId {
    UserId::new(id).expect("valid")
}

/// The store, and the cache in front of its OTP SMS lookup.
pub struct Stack {
    pub _db: TestDatabase,
    pub pool: sqlx::PgPool,
    pub store: Arc<PgStore>,
    pub redis: Arc<Redis>,
    pub cached: Arc<CachedOtpSms>,
    pub metrics: RedisMetrics,
}

pub async fn stack(redis_config: RedisConfig, prefix: &str) -> Stack {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let store = Arc::new(PgStore::new(pool.clone(), InstanceId::new(INSTANCE).expect("valid")));
    let metrics = RedisMetrics::default();
    let redis = Redis::start(redis_config, metrics.clone()).expect("a valid configuration");
    let cached = Arc::new(CachedOtpSms::new(
        store.clone(),
        redis.clone(),
        Keys::new(prefix, INSTANCE, b"a-test-secret"),
        Duration::from_secs(300),
    ));
    Stack { _db: db, pool, store, redis, cached, metrics }
}

/// Cache hits and misses so far.
pub fn lookups(metrics: &RedisMetrics) -> (u64, u64) {
    (metrics.lookups(Lookup::Hit), metrics.lookups(Lookup::Miss))
}

/// Waits until Redis is connected with the circuit closed, poking it with lookups (a
/// half-open circuit closes only after a successful call).
pub async fn until_up(stack: &Stack, user: &str) {
    for _ in 0..100 {
        if stack.redis.state() == DependencyState::Up {
            return;
        }
        let _ = stack.lookup(user).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis did not come back up");
}

fn event(user: &str, kind: EventKind) -> Event {
    Event { user: uid(user), actor: uid("admin"), at: Utc::now(), kind }
}

impl Stack {
    pub async fn create_user(&self, id: &str) {
        let now = Utc::now();
        let user = User {
            id: uid(id),
            org: OrgId::new("org-a").expect("valid"),
            state: UserState::Active,
            schema_id: SchemaId::new("human").expect("valid"),
            data: UserData::default(),
            contact: Contact::default(),
            created: now,
            changed: now,
            sequence: 1,
        };
        let added = EventKind::UserAdded { org: user.org.clone(), schema_id: user.schema_id.clone() };
        self.store.insert_user(&user, &event(id, added)).await.expect("user stored");
    }

    pub async fn add(&self, user: &str, id: &str, phone: &str) {
        let phone = PhoneNumber::parse(phone).expect("valid phone");
        let new = NewOtpSms {
            event: event(
                user,
                EventKind::OtpSmsAdded {
                    authenticator: OtpSmsId::new(id).expect("valid"),
                    masked_phone: phone.masked(),
                    verified: true,
                },
            ),
            authenticator: OtpSmsAuthenticator {
                id: OtpSmsId::new(id).expect("valid"),
                user: uid(user),
                phone,
                verified: true,
                created: Utc::now(),
            },
            pending_code: None,
        };
        self.store.add_otp_sms(&new).await.expect("added");
    }

    pub async fn remove(&self, user: &str, id: &str) {
        let removal = Removal {
            user: uid(user),
            authenticator: OtpSmsId::new(id).expect("valid"),
            event: event(
                user,
                EventKind::OtpSmsRemoved {
                    authenticator: OtpSmsId::new(id).expect("valid"),
                    masked_phone: "+41******000".into(),
                },
            ),
        };
        self.store.remove_otp_sms(&removal).await.expect("removed");
    }

    /// What a read path does: the user from Postgres, then its authenticators through the cache.
    pub async fn lookup(&self, user: &str) -> Vec<String> {
        let Some(found) = self.store.find_user(&uid(user)).await.expect("readable") else { return Vec::new() };
        self.cached
            .list_otp_sms(&found)
            .await
            .expect("a lookup never fails while Postgres answers")
            .into_iter()
            .map(|a| a.id.into_string())
            .collect()
    }
}

/// What the stress run saw.
#[derive(Debug)]
pub struct StressReport {
    pub reads: u64,
    pub stale_reads: u64,
    pub removals: u64,
}

/// `writers` writers each add and remove authenticators for `cycles` cycles in total
/// while `readers` readers look up; a read is stale when it shows an authenticator whose
/// removal had returned before the read began.
pub async fn stress(
    stack: Arc<Stack>,
    users: &[&'static str],
    writers: usize,
    readers: usize,
    cycles: usize,
) -> StressReport {
    // Every user starts with an authenticator that readers see (and a cache stores) before
    // its writer removes it first thing: a cache that kept serving what it stored would be
    // caught on the very first removal.
    for (i, user) in users.iter().enumerate() {
        stack.create_user(user).await;
        stack.add(user, &format!("seed-{user}"), &format!("+4179123450{i}")).await;
    }
    let removed_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(AtomicU64::new(0));

    let mut reader_tasks = Vec::new();
    for r in 0..readers {
        let (stack, removed_at, done, reads, stale) =
            (stack.clone(), removed_at.clone(), done.clone(), reads.clone(), stale.clone());
        let users: Vec<&'static str> = users.to_vec();
        reader_tasks.push(tokio::spawn(async move {
            let mut i = r;
            while !done.load(Ordering::SeqCst) {
                let user = users[i % users.len()];
                i += 1;
                let began = Instant::now();
                let shown = stack.lookup(user).await;
                reads.fetch_add(1, Ordering::Relaxed);
                let removed = removed_at.lock().expect("lock");
                for id in shown {
                    if removed.get(&id).is_some_and(|at| *at < began) {
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    while reads.load(Ordering::SeqCst) < u64::try_from(readers * 2).unwrap_or(u64::MAX) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut writer_tasks = Vec::new();
    for w in 0..writers {
        let (stack, removed_at) = (stack.clone(), removed_at.clone());
        let user = users[w % users.len()];
        let per_writer = cycles / writers;
        let owns_seed = w < users.len();
        writer_tasks.push(tokio::spawn(async move {
            let seed = format!("seed-{user}");
            if owns_seed {
                stack.remove(user, &seed).await;
                let at = Instant::now();
                removed_at.lock().expect("lock").insert(seed, at);
            }
            for cycle in 0..per_writer {
                let id = format!("w{w}c{cycle}");
                stack.add(user, &id, &format!("+417912345{w:02}")).await;
                // Let readers see it (and a cache store it) before it goes.
                tokio::time::sleep(Duration::from_millis(1)).await;
                stack.remove(user, &id).await;
                // Taken before the lock, which readers hold while they check.
                let at = Instant::now();
                removed_at.lock().expect("lock").insert(id, at);
            }
        }));
    }
    for task in writer_tasks {
        task.await.expect("writer ran");
    }
    done.store(true, Ordering::SeqCst);
    for task in reader_tasks {
        task.await.expect("reader ran");
    }
    let removals = u64::try_from(removed_at.lock().expect("lock").keys().filter(|id| !id.starts_with("seed-")).count())
        .unwrap_or(u64::MAX);
    StressReport { reads: reads.load(Ordering::SeqCst), stale_reads: stale.load(Ordering::SeqCst), removals }
}
