//! Arrangements shared by the Redis suites: a real Postgres store, a real Redis (or a
//! proxy or cluster in front of one), the snapshot cache between them, the use cases that
//! use it, and the invariant stress run.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use factors_adapters_postgres::PgStore;
use factors_adapters_redis::{BreakerConfig, CachedSnapshots, Keys, Lookup, Redis, RedisConfig, RedisMetrics};
use factors_application::RequestScope;
use factors_application::ports::{Clock, DependencyState, SnapshotCache, UserReader, UserWriter, WriteError};
use factors_application::scope::InstanceContext;
use factors_application::use_cases::get_user::{GetUser, GetUserCommand, GetUserService};
use factors_application::use_cases::remove_otp_sms::{RemoveOtpSms, RemoveOtpSmsCommand, RemoveOtpSmsService};
use factors_domain::{
    Caller, CodePolicy, Contact, Creation, Grant, InstanceId, LoginPolicy, NewOtpSms, OrgId, OtpSmsId, Permission,
    PhoneNumber, RemovalPolicy, SchemaId, Scope, User, UserData, UserId, UserState, Verification, plan_registration,
};
use factors_testing::TestDatabase;

pub const INSTANCE: &str = "inst";

pub fn config(urls: &str, cluster: bool) -> RedisConfig {
    RedisConfig {
        urls: urls.split(',').map(str::to_owned).collect(),
        cluster,
        sentinel_master: None,
        command_timeout: Duration::from_millis(50),
        connect_timeout: Duration::from_millis(500),
        breaker: BreakerConfig { failures_to_open: 3, open_for: Duration::from_millis(300) },
    }
}

pub fn uid(id: &str) -> UserId {
    UserId::new(id).expect("valid")
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// An instance administrator.
pub fn admin() -> Caller {
    Caller {
        user_id: uid("admin"),
        org: None,
        grants: Permission::ALL.iter().map(|p| Grant { permission: *p, scope: Scope::Instance }).collect(),
        authentication: Default::default(),
        origin: Default::default(),
    }
}

/// The store, the cache, and the use cases that read and decide through it.
pub struct Stack {
    pub _db: TestDatabase,
    pub pool: sqlx::PgPool,
    pub store: Arc<PgStore>,
    pub redis: Arc<Redis>,
    pub cache: Arc<CachedSnapshots>,
    pub metrics: RedisMetrics,
    pub get_user: GetUserService,
    pub remove_otp_sms: RemoveOtpSmsService,
}

pub async fn stack(redis_config: RedisConfig, prefix: &str) -> Stack {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let store = Arc::new(PgStore::new(&pool, InstanceId::new(INSTANCE).expect("valid")));
    let metrics = RedisMetrics::default();
    let redis = Redis::start(redis_config, metrics.clone()).expect("a valid configuration");
    let cache = Arc::new(CachedSnapshots::new(
        redis.clone(),
        Keys::new(prefix, INSTANCE, b"a-test-secret"),
        Duration::from_secs(300),
    ));
    let context = Arc::new(InstanceContext {
        id: InstanceId::new(INSTANCE).expect("valid"),
        domains: vec![],
        org_domains: HashMap::new(),
    });
    let get_user = GetUserService { context: context.clone(), users: store.clone(), warm: Some(cache.clone()) };
    let remove_otp_sms = RemoveOtpSmsService {
        context,
        users: store.clone(),
        store: store.clone(),
        cache: Some(cache.clone()),
        clock: Arc::new(SystemClock),
        policy: RemovalPolicy::default(),
        login_policies: Arc::new(factors_application::use_cases::login_policy::PoliciesInForce::new(store.clone())),
        notices: Arc::new(tokio::sync::Notify::new()),
    };
    Stack { _db: db, pool, store, redis, cache, metrics, get_user, remove_otp_sms }
}

/// Cache hits and misses so far.
pub fn lookups(metrics: &RedisMetrics) -> (u64, u64) {
    (metrics.lookups(Lookup::Hit), metrics.lookups(Lookup::Miss))
}

/// Waits until Redis is connected with the circuit closed, poking it through the cache
/// (a half-open circuit closes only after a successful call).
pub async fn until_up(stack: &Stack, user: &str) {
    for _ in 0..100 {
        if stack.redis.state() == DependencyState::Up {
            return;
        }
        let _ = stack.cache.get(&uid(user)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis did not come back up");
}

/// Waits until Redis answers a call again (a connection that broke may need one failed
/// call to reconnect), and the circuit is closed.
pub async fn until_answers(stack: &Stack) {
    for _ in 0..100 {
        let failed = |m: &RedisMetrics| m.lookups(Lookup::Error) + m.lookups(Lookup::Bypass);
        let before = failed(&stack.metrics);
        let _ = stack.cache.get(&uid("nobody")).await;
        if failed(&stack.metrics) == before && stack.redis.state() == DependencyState::Up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis did not answer again");
}

impl Stack {
    pub async fn create_user(&self, id: &str) {
        let now = SystemClock.now();
        let user = User {
            id: uid(id),
            org: OrgId::new("org-a").expect("valid"),
            state: UserState::Active,
            schema_id: SchemaId::new("human").expect("valid"),
            data: UserData::default(),
            contact: Contact::default(),
            created: now,
            changed: now,
            sequence: 0,
        };
        let last = self.store.last_sequence(&user.id).await.expect("readable");
        self.store.create(&Creation::new(user, &admin(), last, now)).await.expect("user stored");
    }

    /// Adds a verified authenticator, as an administrator would (reading and deciding
    /// again when another write to the user got there first).
    pub async fn add(&self, user: &str, id: &str, phone: &str) {
        for _ in 0..10 {
            let snapshot = self.store.load(&uid(user)).await.expect("readable");
            let new = NewOtpSms {
                id: OtpSmsId::new(id).expect("valid"),
                phone: PhoneNumber::parse(phone).expect("valid phone"),
                verification: Verification::IsVerified,
                code: None,
            };
            let decision = plan_registration(
                &admin(),
                &uid(user),
                snapshot.as_ref(),
                new,
                true,
                &LoginPolicy::default(),
                &CodePolicy::default(),
                SystemClock.now(),
            )
            .expect("allowed");
            match self.store.apply(&decision).await {
                Ok(()) => return,
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Unexpected(e)) => panic!("adding: {e}"),
            }
        }
        panic!("the add lost ten races in a row");
    }

    /// Removes through the use case, which decides on the cache first.
    pub async fn remove(&self, user: &str, id: &str) {
        let command = RemoveOtpSmsCommand {
            scope: RequestScope::default(),
            user: uid(user),
            otp_sms: OtpSmsId::new(id).expect("valid"),
        };
        if let Err(e) = self.remove_otp_sms.remove_otp_sms(&admin(), command).await {
            panic!("removing {user}/{id}: {e:?}");
        }
    }

    /// What GetUser shows: the ids of the user's authenticators.
    pub async fn lookup(&self, user: &str) -> Vec<String> {
        let command = GetUserCommand { scope: RequestScope::default(), user: uid(user) };
        match self.get_user.get_user(&admin(), command).await {
            Ok(view) => view.otp_sms.into_iter().map(|a| a.id.into_string()).collect(),
            Err(e) => panic!("reading {user}: {e:?}"),
        }
    }

    /// What the cache holds for `user`: the sequence and the authenticators' ids.
    pub async fn cached(&self, user: &str) -> Option<(u64, Vec<String>)> {
        self.cache
            .get(&uid(user))
            .await
            .map(|s| (s.user.sequence, s.otp_sms.into_iter().map(|a| a.id.into_string()).collect()))
    }

    /// Waits for the snapshot a write or read kept (on a task of its own) to reach Redis.
    pub async fn until_cached(&self, user: &str, sequence: u64) {
        for _ in 0..100 {
            if self.cached(user).await.is_some_and(|(kept, _)| kept >= sequence) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{user} at sequence {sequence} never reached the cache");
    }
}

/// What the stress run saw.
#[derive(Debug)]
pub struct StressReport {
    pub reads: u64,
    pub stale_reads: u64,
    pub removals: u64,
}

/// One writer per user adds and removes authenticators for `cycles` cycles in total, each
/// removal deciding on the cache first, while `readers` readers read through GetUser (whose
/// reads keep snapshots in the cache, racing the writers' own). A read is stale when it
/// shows an authenticator whose removal had returned before the read began; every removal
/// must answer 200 although the cache it decides on may be behind.
pub async fn stress(stack: Arc<Stack>, users: &[&'static str], readers: usize, cycles: usize) -> StressReport {
    // Every user starts with an authenticator that readers see (and keep in the cache)
    // before its writer removes it first thing.
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
    for (w, user) in users.iter().copied().enumerate() {
        let (stack, removed_at) = (stack.clone(), removed_at.clone());
        let per_writer = cycles / users.len();
        writer_tasks.push(tokio::spawn(async move {
            let seed = format!("seed-{user}");
            stack.remove(user, &seed).await;
            let at = Instant::now();
            removed_at.lock().expect("lock").insert(seed, at);
            for cycle in 0..per_writer {
                let id = format!("w{w}c{cycle}");
                stack.add(user, &id, &format!("+417912345{w:02}")).await;
                // Let readers see it (and keep it in the cache) before it goes.
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
