//! Redis for factors: a cache of "the OTP SMS authenticators of user X" and the shared SMS
//! rate limits. Redis only ever makes factors faster: every call has a short timeout, a
//! circuit breaker stops calling a Redis that keeps failing, and every caller falls back
//! to Postgres (the cache) or to counting in process (the limits).
//!
//! Why the cache can never show a removed authenticator: entries are keyed by the user's
//! `sequence`, which every write to the user or its authenticators moves inside its own
//! Postgres transaction, and which every read path takes from Postgres (the user row it
//! reads for the access rules) before it asks the cache. An entry is therefore only ever
//! read for the exact state it was built from; writes never need to reach Redis, so no
//! invalidation can be lost, reordered or raced by a slow populate.

mod breaker;
mod cache;
mod client;
mod keys;
mod metrics;
mod rate_limit;

pub use breaker::{BreakerConfig, BreakerState};
pub use cache::CachedOtpSms;
pub use client::{Redis, RedisConfig, RedisError};
pub use keys::Keys;
pub use metrics::{Lookup, RedisMetrics};
pub use rate_limit::{InProcessLimiter, RateLimitConfig, SmsLimiter};
