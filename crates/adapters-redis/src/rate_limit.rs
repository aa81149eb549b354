//! SMS rate limits, per user and per phone number, and budgets per region and per number
//! prefix against SMS pumping, shared by every replica through Redis
//! (one Lua script per key, so each touches one hash slot), counted in process while
//! Redis is away. The in-process count is kept warm while Redis answers (every admission
//! Redis grants is noted here too), so an outage never starts a replica's window from
//! zero: across an outage, one replica never admits more than the limit in a window.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use factors_application::ports::{LimitScope, RateLimited, SmsPermit, SmsRateLimiter};
use factors_domain::rate_limit::admit;
use factors_domain::{PhoneNumber, RateLimit, SmsBudgets, UserId};

use crate::metrics::{Counting, LimitedBy};
use crate::{Keys, Redis, RedisError, RedisMetrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_user: u32,
    pub per_phone: u32,
    pub window: Duration,
    pub budgets: SmsBudgets,
}

impl RateLimitConfig {
    fn rule(&self, scope: LimitScope) -> RateLimit {
        let millis = |window: Duration| u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let (limit, window) = match scope {
            LimitScope::User => (self.per_user, self.window),
            LimitScope::Phone => (self.per_phone, self.window),
            LimitScope::Country => (self.budgets.per_country, self.budgets.window),
            LimitScope::Prefix => (self.budgets.per_prefix, self.budgets.window),
        };
        RateLimit { limit, window_ms: millis(window) }
    }
}

/// The sliding window of `factors_domain::rate_limit::admit`, in Lua, on a sorted set of
/// admission times. Redis's own clock is used so that every replica counts alike.
const ADMIT: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local retry = window
if oldest[2] then retry = tonumber(oldest[2]) + window - now_ms end
if retry < 1 then retry = 1 end
return {0, retry}
";

/// Counts in this process only: the fallback while Redis is away, and the limiter of a
/// deployment without Redis.
#[derive(Debug)]
pub struct InProcessLimiter {
    config: RateLimitConfig,
    started: Instant,
    logs: Mutex<HashMap<String, VecDeque<u64>>>,
    calls: AtomicU64,
}

impl InProcessLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self { config, started: Instant::now(), logs: Mutex::new(HashMap::new()), calls: AtomicU64::new(0) }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admits into the window of every key (each counted by its scope's rule), or into
    /// none; the admission's time names it.
    fn acquire(&self, keys: &[(&str, LimitScope)]) -> Result<u64, RateLimited> {
        let now = self.now_ms();
        let mut logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024) {
            // The longest window any key is counted in.
            let window = self.config.window.max(self.config.budgets.window).as_millis();
            logs.retain(|_, log| log.back().is_some_and(|t| u128::from(now.saturating_sub(*t)) < window));
        }
        for (admitted, (key, scope)) in keys.iter().enumerate() {
            let log = logs.entry((*key).to_owned()).or_default();
            if let Err(ms) = admit(log, now, self.config.rule(*scope)) {
                // Give the earlier keys' admissions back: nothing is sent.
                for (earlier, _) in &keys[..admitted] {
                    if let Some(log) = logs.get_mut(*earlier) {
                        log.pop_back();
                    }
                }
                return Err(limited(*scope, ms));
            }
        }
        Ok(now)
    }

    /// Notes an admission granted elsewhere (by Redis) in the window of every key,
    /// whatever they hold: Redis decides while it answers; this only keeps the count warm
    /// for when it does not. Answers the time that names it.
    fn record(&self, keys: &[(&str, LimitScope)]) -> u64 {
        let now = self.now_ms();
        let mut logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, scope) in keys {
            let window_ms = self.config.rule(*scope).window_ms;
            let log = logs.entry((*key).to_owned()).or_default();
            while log.front().is_some_and(|t| t.saturating_add(window_ms) <= now) {
                log.pop_front();
            }
            log.push_back(now);
        }
        now
    }

    /// Forgets the admission made at `at` in the window of every key.
    fn release(&self, keys: &[&str], at: u64) {
        let mut logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys {
            if let Some(log) = logs.get_mut(*key)
                && let Some(position) = log.iter().rposition(|t| *t == at)
            {
                log.remove(position);
            }
        }
    }
}

fn limited(scope: LimitScope, retry_ms: u64) -> RateLimited {
    RateLimited { scope, retry_after: Duration::from_millis(retry_ms.max(1)) }
}

/// The SMS limiter: Redis when it answers, in process otherwise.
pub struct SmsLimiter {
    redis: Option<Arc<Redis>>,
    keys: Keys,
    config: RateLimitConfig,
    local: InProcessLimiter,
    script: redis::Script,
    metrics: RedisMetrics,
    nonce: u64,
    counter: AtomicU64,
}

impl SmsLimiter {
    /// `redis: None` counts in process only.
    pub fn new(redis: Option<Arc<Redis>>, keys: Keys, config: RateLimitConfig, metrics: RedisMetrics) -> Self {
        let nonce =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self {
            redis,
            keys,
            config,
            local: InProcessLimiter::new(config),
            script: redis::Script::new(ADMIT),
            metrics,
            nonce,
            counter: AtomicU64::new(0),
        }
    }

    /// A member unique across replicas and calls, for the sorted sets.
    fn member(&self) -> String {
        format!("{:x}-{:x}", self.nonce, self.counter.fetch_add(1, Ordering::Relaxed))
    }

    async fn admit_in_redis(
        &self,
        redis: &Redis,
        key: &str,
        scope: LimitScope,
        member: &str,
    ) -> Result<Result<(), RateLimited>, RedisError> {
        let rule = self.config.rule(scope);
        let args = [rule.window_ms.to_string(), rule.limit.to_string(), member.to_owned()];
        let (admitted, retry_ms): (i64, i64) = redis.script(&self.script, key, &args).await?;
        Ok(if admitted == 1 { Ok(()) } else { Err(limited(scope, u64::try_from(retry_ms).unwrap_or(1))) })
    }

    /// Admits into every key's window in turn, narrowest first, or into none: a refusal
    /// (or Redis failing) gives the earlier admissions back, best effort, since nothing
    /// is sent.
    async fn acquire_in_redis(
        &self,
        redis: &Redis,
        keys: &[(&str, LimitScope)],
    ) -> Result<Result<String, RateLimited>, RedisError> {
        let member = self.member();
        for (admitted, (key, scope)) in keys.iter().enumerate() {
            let outcome = self.admit_in_redis(redis, key, *scope, &member).await;
            if !matches!(outcome, Ok(Ok(()))) {
                for (earlier, _) in &keys[..admitted] {
                    let _ = redis.zrem(earlier, &member).await;
                }
                return outcome.map(|admitted| admitted.map(|()| member));
            }
        }
        Ok(Ok(member))
    }

    /// The keys a code to `to` for `user` counts against, narrowest first: the user, the
    /// number, and the budgets that are set (the prefix's, the region's).
    fn code_keys(&self, user: &UserId, to: &PhoneNumber) -> Vec<(String, LimitScope)> {
        let mut keys =
            vec![(self.keys.sms_by_user(user), LimitScope::User), (self.keys.sms_to_phone(to), LimitScope::Phone)];
        let budgets = &self.config.budgets;
        if budgets.per_prefix > 0 {
            let digits = to.as_e164().trim_start_matches('+');
            let prefix = digits.get(..budgets.prefix_digits).unwrap_or(digits);
            keys.push((self.keys.sms_to_prefix(prefix), LimitScope::Prefix));
        }
        if budgets.per_country > 0 {
            keys.push((self.keys.sms_to_region(&to.region()), LimitScope::Country));
        }
        keys
    }
}

impl SmsLimiter {
    /// Forgets the in-process admission of time `at` (as the permit wrote it) in `keys`.
    fn release_locally(&self, keys: &[&str], at: &str) {
        if let Ok(at) = at.parse() {
            self.local.release(keys, at);
        }
    }
}

/// Permits name where they were counted: `redis:<member>@<time noted here>` or
/// `local:<time>`; a notice's, counted against its number only, `redis-phone:…` or
/// `local-phone:…`.
const REDIS_PERMIT: &str = "redis:";
const LOCAL_PERMIT: &str = "local:";
const REDIS_PHONE_PERMIT: &str = "redis-phone:";
const LOCAL_PHONE_PERMIT: &str = "local-phone:";

impl SmsLimiter {
    fn acquire_locally(&self, keys: &[(&str, LimitScope)], prefix: &str) -> Result<SmsPermit, RateLimited> {
        self.metrics.counted(Counting::InProcess);
        self.local.acquire(keys).map(|at| SmsPermit(format!("{prefix}{at}")))
    }

    fn count_refusal(&self, outcome: &Result<SmsPermit, RateLimited>) {
        if let Err(limit) = outcome {
            self.metrics.limited(match limit.scope {
                LimitScope::User => LimitedBy::User,
                LimitScope::Phone => LimitedBy::Phone,
                LimitScope::Country => LimitedBy::Country,
                LimitScope::Prefix => LimitedBy::Prefix,
            });
        }
    }
}

#[async_trait]
impl SmsRateLimiter for SmsLimiter {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "redis", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn try_acquire(&self, user: &UserId, to: &PhoneNumber) -> Result<SmsPermit, RateLimited> {
        let owned = self.code_keys(user, to);
        let keys: Vec<(&str, LimitScope)> = owned.iter().map(|(key, scope)| (key.as_str(), *scope)).collect();
        let outcome = match &self.redis {
            Some(redis) => match self.acquire_in_redis(redis, &keys).await {
                Ok(outcome) => {
                    self.metrics.counted(Counting::Redis);
                    outcome.map(|member| {
                        let at = self.local.record(&keys);
                        SmsPermit(format!("{REDIS_PERMIT}{member}@{at}"))
                    })
                }
                Err(_) => self.acquire_locally(&keys, LOCAL_PERMIT),
            },
            None => self.acquire_locally(&keys, LOCAL_PERMIT),
        };
        self.count_refusal(&outcome);
        outcome
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "redis", otel.kind = "client"), err(level = "debug", Display))]
    async fn try_acquire_notice(&self, to: &PhoneNumber) -> Result<SmsPermit, RateLimited> {
        let phone_key = self.keys.sms_to_phone(to);
        let keys = [(phone_key.as_str(), LimitScope::Phone)];
        let outcome = match &self.redis {
            Some(redis) => {
                let member = self.member();
                match self.admit_in_redis(redis, &phone_key, LimitScope::Phone, &member).await {
                    Ok(outcome) => {
                        self.metrics.counted(Counting::Redis);
                        outcome.map(|()| {
                            let at = self.local.record(&[(&phone_key, LimitScope::Phone)]);
                            SmsPermit(format!("{REDIS_PHONE_PERMIT}{member}@{at}"))
                        })
                    }
                    Err(_) => self.acquire_locally(&keys, LOCAL_PHONE_PERMIT),
                }
            }
            None => self.acquire_locally(&keys, LOCAL_PHONE_PERMIT),
        };
        self.count_refusal(&outcome);
        outcome
    }

    async fn release(&self, user: &UserId, to: &PhoneNumber, permit: SmsPermit) {
        let phone_key = self.keys.sms_to_phone(to);
        let code_keys = self.code_keys(user, to);
        let code_keys: Vec<&str> = code_keys.iter().map(|(key, _)| key.as_str()).collect();
        // What the permit was counted against: a notice's, the number only.
        let (counted, keys): (&str, &[&str]) = if let Some(rest) = permit.0.strip_prefix(REDIS_PHONE_PERMIT) {
            (rest, &[&phone_key])
        } else if let Some(rest) = permit.0.strip_prefix(LOCAL_PHONE_PERMIT) {
            return self.release_locally(&[&phone_key], rest);
        } else if let Some(rest) = permit.0.strip_prefix(REDIS_PERMIT) {
            (rest, &code_keys)
        } else if let Some(rest) = permit.0.strip_prefix(LOCAL_PERMIT) {
            return self.release_locally(&code_keys, rest);
        } else {
            return;
        };
        let (member, at) = counted.rsplit_once('@').unwrap_or((counted, ""));
        if let Some(redis) = &self.redis {
            for key in keys {
                let _ = redis.zrem(key, member).await;
            }
        }
        self.release_locally(keys, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateLimitConfig {
        RateLimitConfig { per_user: 2, per_phone: 3, window: Duration::from_secs(600), budgets: SmsBudgets::OFF }
    }

    /// An SMS for `user` to `phone`.
    fn sms<'a>(user: &'a str, phone: &'a str) -> [(&'a str, LimitScope); 2] {
        [(user, LimitScope::User), (phone, LimitScope::Phone)]
    }

    #[test]
    fn in_process_the_user_limit_and_the_phone_limit_both_hold() {
        let limiter = InProcessLimiter::new(config());
        assert!(limiter.acquire(&sms("u:a", "p:1")).is_ok());
        assert!(limiter.acquire(&sms("u:a", "p:1")).is_ok());
        assert_eq!(limiter.acquire(&sms("u:a", "p:2")).map_err(|l| l.scope), Err(LimitScope::User));
        assert!(limiter.acquire(&sms("u:b", "p:1")).is_ok(), "the phone's third");
        assert_eq!(limiter.acquire(&sms("u:c", "p:1")).map_err(|l| l.scope), Err(LimitScope::Phone));
        // The refused phone did not use up u:c's allowance.
        assert!(limiter.acquire(&sms("u:c", "p:9")).is_ok());
        assert!(limiter.acquire(&sms("u:c", "p:8")).is_ok());
    }

    #[test]
    fn admissions_noted_from_elsewhere_count_against_the_in_process_limits() {
        let limiter = InProcessLimiter::new(config());
        let first = limiter.record(&sms("u:a", "p:1"));
        limiter.record(&sms("u:a", "p:2"));
        let refused = limiter.acquire(&sms("u:a", "p:3")).map_err(|l| l.scope);
        assert_eq!(refused, Err(LimitScope::User), "two noted, limit two");
        limiter.release(&["u:a", "p:1"], first);
        assert!(limiter.acquire(&sms("u:a", "p:3")).is_ok(), "a noted admission given back no longer counts");
    }

    #[test]
    fn in_process_a_released_admission_is_given_back() {
        let limiter = InProcessLimiter::new(config());
        let first = limiter.acquire(&sms("u:a", "p:1")).expect("admitted");
        limiter.acquire(&sms("u:a", "p:2")).expect("admitted");
        limiter.release(&["u:a", "p:1"], first);
        assert!(limiter.acquire(&sms("u:a", "p:3")).is_ok(), "the released one no longer counts");
    }

    #[test]
    fn in_process_the_budgets_of_a_prefix_and_a_region_hold_over_many_users_and_numbers() {
        let budgets = SmsBudgets { per_country: 2, per_prefix: 1, prefix_digits: 6, window: Duration::from_secs(3600) };
        let limiter = InProcessLimiter::new(RateLimitConfig { budgets, ..config() });
        let code = |user, phone, prefix, region| {
            [
                (user, LimitScope::User),
                (phone, LimitScope::Phone),
                (prefix, LimitScope::Prefix),
                (region, LimitScope::Country),
            ]
        };
        assert!(limiter.acquire(&code("u:a", "p:1", "x:417912", "c:CH")).is_ok());
        let refused = limiter.acquire(&code("u:b", "p:2", "x:417912", "c:CH")).map_err(|l| l.scope);
        assert_eq!(refused, Err(LimitScope::Prefix), "one per prefix");
        assert!(limiter.acquire(&code("u:b", "p:2", "x:417813", "c:CH")).is_ok(), "the refusal cost u:b nothing");
        let refused = limiter.acquire(&code("u:c", "p:3", "x:417714", "c:CH")).map_err(|l| l.scope);
        assert_eq!(refused, Err(LimitScope::Country), "two per region");
        assert!(limiter.acquire(&code("u:c", "p:3", "x:491512", "c:DE")).is_ok());
    }

    #[test]
    fn notices_count_against_their_number_only() {
        let limiter = InProcessLimiter::new(config());
        let notice = [("p:1", LimitScope::Phone)];
        for n in 0..3 {
            assert!(limiter.acquire(&notice).is_ok(), "notice {n}");
        }
        assert_eq!(limiter.acquire(&notice).map_err(|l| l.scope), Err(LimitScope::Phone), "the number's limit, three");
        assert_eq!(limiter.acquire(&sms("u:a", "p:1")).map_err(|l| l.scope), Err(LimitScope::Phone), "codes too");
        assert!(limiter.acquire(&sms("u:a", "p:2")).is_ok(), "no user's allowance was used");
        assert!(limiter.acquire(&sms("u:a", "p:3")).is_ok());
    }
}
