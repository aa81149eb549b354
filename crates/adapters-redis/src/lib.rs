//! Redis for factors: a cache of users' snapshots for decisions to start from, and the
//! shared SMS rate limits. Redis only ever makes factors faster: every call has a short
//! timeout, a circuit breaker stops calling a Redis that keeps failing, and every caller
//! falls back to the store (the cache) or to counting in process (the limits).
//!
//! Why the cache can never make a wrong answer: nothing is ever answered from it. A use
//! case decides on the cached snapshot, and the store applies the decision only while the
//! user is still at the version the snapshot holds; a decision made on a state that moved
//! on is refused, and the use case reads the store and decides again. A refusal decided
//! on the cache is decided again on the store's state too. So writes need not reach Redis
//! for correctness, and no lost, late or raced invalidation can matter: a stale entry
//! costs one round trip, never an answer.

mod breaker;
mod cache;
mod client;
mod keys;
mod local;
mod metrics;
mod rate_limit;

pub use breaker::{BreakerConfig, BreakerState};
pub use cache::CachedSnapshots;
pub use client::{Redis, RedisConfig, RedisError};
pub use factors_domain::SmsBudgets;
pub use keys::Keys;
pub use local::LocalSnapshots;
pub use metrics::{Lookup, RedisMetrics};
pub use rate_limit::{InProcessLimiter, RateLimitConfig, SmsLimiter};
