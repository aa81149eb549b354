//! What `/readyz` reports of Redis: degraded as soon as a command or the probe fails, not
//! once the circuit opens, and the probe writes, so a Redis that answers `PING` but refuses
//! writes (a master a failover demoted) is not reported up.

mod common;

use std::time::Duration;

use common::config;
use factors_adapters_redis::{Keys, Redis, RedisMetrics};
use factors_application::ports::DependencyState;
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
async fn one_failed_command_reports_degraded_at_once_and_one_answered_call_up_again() {
    let shared = TestRedis::new().await;
    let proxy = TcpProxy::start(&shared.addr()).await;
    let redis = connected(&proxy.redis_url()).await;
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Up);

    // Slower than the command timeout (50 ms): one call fails, the circuit (three failures)
    // stays closed, and the state says so at once.
    proxy.slow(Duration::from_millis(200));
    assert_eq!(redis.probe(&probe_key()).await, DependencyState::Degraded);
    assert_eq!(redis.state(), DependencyState::Degraded, "after one failure, before the circuit opens");

    proxy.slow(Duration::ZERO);
    let mut answered = false;
    for _ in 0..50 {
        // The slow answer may still be on the wire: wait for a call that is answered.
        if redis.probe(&probe_key()).await == DependencyState::Up {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "Redis answered again");
    assert_eq!(redis.state(), DependencyState::Up);
}
