//! What `/readyz` reports of Redis: degraded as soon as a command or the probe fails, not
//! once the circuit opens, and the probe writes, so a Redis that answers `PING` but refuses
//! writes (a master a failover demoted) is not reported up.

mod common;

use std::time::Duration;

use common::config;
use factors_adapters_redis::{CachedSnapshots, Keys, Redis, RedisMetrics};
use factors_application::ports::{DependencyState, SnapshotCache};
use factors_domain::UserId;
use factors_testing::{OwnRedis, TcpProxy, TestRedis};

/// A client of `url`, connected.
async fn connected(url: &str) -> std::sync::Arc<Redis> {
    let redis = Redis::start(config(url, false), RedisMetrics::default()).expect("a valid configuration");
    assert!(redis.wait_connected(Duration::from_secs(5)).await, "connects");
    redis
}

fn probe_key() -> String {
    Keys::new("readiness:", "inst", b"a-test-secret").probe()
}

#[tokio::test]
async fn a_redis_that_answers_but_refuses_writes_is_degraded_until_it_takes_them_again() {
    let server = OwnRedis::start().await;
    let redis = connected(&server.url()).await;
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Up);

    server.demote().await;
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Degraded, "READONLY, though PING answers");
    assert_eq!(redis.state(), DependencyState::Degraded);

    server.promote().await;
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Up);
    assert_eq!(redis.state(), DependencyState::Up);
}

#[tokio::test]
async fn a_command_that_failed_is_reported_by_the_next_probe_even_if_redis_answers_it() {
    let shared = TestRedis::new().await;
    let proxy = TcpProxy::start(&shared.addr()).await;
    let redis = connected(&proxy.redis_url()).await;
    let keys = Keys::new(shared.prefix(), "inst", b"a-test-secret");
    let cache = CachedSnapshots::new(redis.clone(), keys, Duration::from_secs(60));
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Up);

    // Slower than the command timeout (50 ms): one read of the cache fails; the circuit
    // (three failures) stays closed, and the state says so at once.
    proxy.slow(Duration::from_millis(200));
    assert_eq!(cache.get(&UserId::new("alice").expect("valid")).await, None, "a failed read is a miss");
    assert_eq!(redis.state(), DependencyState::Degraded, "after one failure, before the circuit opens");
    proxy.slow(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Redis answers again; the next probe still tells of the failure, the one after does not.
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Degraded, "the failed command is reported");
    assert_eq!(redis.state(), DependencyState::Up, "the probe itself was answered");
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Up);
}
