//! The cache against real Postgres and Redis: it serves, it never shows a removed
//! authenticator (also under a stress of concurrent writers and readers), and Redis
//! faults only ever cost speed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, lookups, stack, stress, until_up};
use factors_adapters_redis::Lookup;
use factors_application::ports::DependencyState;
use factors_testing::{TcpProxy, TestRedis};

#[tokio::test]
async fn a_second_lookup_is_served_from_redis_and_a_write_moves_past_it() {
    let redis = TestRedis::new().await;
    let stack = stack(config(redis.url(), false), redis.prefix()).await;
    until_up(&stack, "nobody-yet").await;
    stack.create_user("alice").await;
    stack.add("alice", "a1", "+41791234567").await;

    assert_eq!(stack.lookup("alice").await, ["a1"]);
    assert_eq!(stack.lookup("alice").await, ["a1"]);
    assert_eq!(lookups(&stack.metrics), (1, 1), "one miss stored it, one hit served it");

    // Deleted behind the store's back (no write moved the user): the cache still shows it,
    // which proves the answer came from Redis...
    sqlx::query("DELETE FROM otp_sms_authenticators").execute(&stack.pool).await.expect("deleted");
    assert_eq!(stack.lookup("alice").await, ["a1"]);
    // ...while a real write moves the user's sequence, and the next lookup reads anew.
    stack.add("alice", "a2", "+41791234568").await;
    assert_eq!(stack.lookup("alice").await, ["a2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_readers_and_two_writers_over_two_thousand_cycles_see_no_stale_read() {
    let redis = TestRedis::new().await;
    let stack = Arc::new(stack(config(redis.url(), false), redis.prefix()).await);
    until_up(&stack, "nobody-yet").await;

    let report = stress(stack.clone(), &["alice"], 2, 4, 2_000).await;

    assert_eq!(report.stale_reads, 0, "{report:?}");
    assert_eq!(report.removals, 2_000, "{report:?}");
    assert!(report.reads > 1_000, "the readers kept reading: {report:?}");
    let (hits, _) = lookups(&stack.metrics);
    assert!(hits > 0, "the cache served reads during the run: {report:?}");
}

#[tokio::test]
async fn with_redis_never_started_every_lookup_is_answered_from_postgres() {
    let stack = stack(config("redis://127.0.0.1:9", false), "never:").await;
    stack.create_user("alice").await;
    stack.add("alice", "a1", "+41791234567").await;

    for _ in 0..20 {
        assert_eq!(stack.lookup("alice").await, ["a1"]);
    }
    stack.remove("alice", "a1").await;
    assert!(stack.lookup("alice").await.is_empty());
    assert_eq!(stack.redis.state(), DependencyState::Degraded);
    assert_eq!(stack.metrics.lookups(Lookup::Bypass), 21, "never waited on a Redis that is not there");
}

/// A stack whose Redis sits behind a proxy the test controls, with user alice holding
/// `authenticators` (id, phone), and Redis answering.
async fn behind_a_proxy(redis: &TestRedis, authenticators: &[(&str, &str)]) -> (TcpProxy, common::Stack) {
    let proxy = TcpProxy::start(&redis.addr()).await;
    let stack = stack(config(&proxy.redis_url(), false), redis.prefix()).await;
    stack.create_user("alice").await;
    for (id, phone) in authenticators {
        stack.add("alice", id, phone).await;
    }
    until_up(&stack, "alice").await;
    (proxy, stack)
}

#[tokio::test]
async fn killed_mid_run_and_restarted_empty_redis_costs_nothing_but_speed() {
    let redis = TestRedis::new().await;
    let (proxy, stack) = behind_a_proxy(&redis, &[("a1", "+41791234567"), ("a2", "+41791234568")]).await;
    assert_eq!(stack.lookup("alice").await, ["a1", "a2"]);

    proxy.down();
    for _ in 0..10 {
        assert_eq!(stack.lookup("alice").await, ["a1", "a2"], "served from Postgres while Redis is gone");
    }
    assert_eq!(stack.redis.state(), DependencyState::Degraded);
    stack.remove("alice", "a1").await;
    assert_eq!(stack.lookup("alice").await, ["a2"]);

    redis.flush().await;
    proxy.up();
    until_up(&stack, "alice").await;
    assert_eq!(stack.lookup("alice").await, ["a2"]);
    let (hits_before, _) = lookups(&stack.metrics);
    assert_eq!(stack.lookup("alice").await, ["a2"]);
    assert_eq!(lookups(&stack.metrics).0, hits_before + 1, "the cache works again");
}

#[tokio::test]
async fn a_redis_slower_than_its_timeout_opens_the_circuit_and_lookups_stop_waiting_on_it() {
    let redis = TestRedis::new().await;
    let (proxy, stack) = behind_a_proxy(&redis, &[("a1", "+41791234567")]).await;

    proxy.slow(Duration::from_millis(250));
    for _ in 0..10 {
        assert_eq!(stack.lookup("alice").await, ["a1"]);
    }
    let errors = stack.metrics.lookups(Lookup::Error);
    let bypassed = stack.metrics.lookups(Lookup::Bypass);
    assert_eq!(errors, 3, "three timeouts open the circuit");
    assert!(bypassed >= 6, "then Redis is not called at all: {bypassed}");
    assert_eq!(stack.redis.state(), DependencyState::Degraded);

    proxy.slow(Duration::ZERO);
    until_up(&stack, "alice").await;
    assert_eq!(stack.lookup("alice").await, ["a1"]);
}

#[tokio::test]
async fn an_entry_written_before_a_removal_is_never_served_after_redis_returns() {
    let redis = TestRedis::new().await;
    let (proxy, stack) = behind_a_proxy(&redis, &[("a1", "+41791234567")]).await;
    assert_eq!(stack.lookup("alice").await, ["a1"], "cached with a1");

    // The removal happens while Redis is unreachable: nothing can tell Redis about it.
    proxy.down();
    stack.remove("alice", "a1").await;
    proxy.up();
    until_up(&stack, "alice").await;

    assert!(redis.keys().await.iter().any(|k| k.contains(":otp_sms:")), "the old entry is still in Redis");
    for _ in 0..5 {
        assert!(stack.lookup("alice").await.is_empty(), "and is never served");
    }
}
