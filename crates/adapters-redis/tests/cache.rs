//! The snapshot cache against real Postgres and Redis: decisions start from it, the
//! guarded writes make a stale entry cost a round trip and never an answer (also under a
//! stress of concurrent writers and readers), and Redis faults only ever cost speed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{admin, config, lookups, stack, stress, uid, until_answers, until_up};
use factors_adapters_redis::Lookup;
use factors_application::RequestScope;
use factors_application::ports::{DependencyState, EventStream, SnapshotCache, StoreInspection, UserReader};
use factors_application::use_cases::remove_otp_sms::{RemoveOtpSms, RemoveOtpSmsCommand, RemoveOtpSmsError};
use factors_domain::OtpSmsId;
use factors_testing::{TcpProxy, TestRedis};

async fn removals_of(stack: &common::Stack, user: &str, otp: &str) -> usize {
    stack
        .store
        .events_of(EventStream::User(&uid(user)))
        .await
        .expect("readable")
        .iter()
        .filter(|e| e.event_type == "user.human.mfa.otp.sms.removed" && e.payload["otpSmsId"] == otp)
        .count()
}

#[tokio::test]
async fn a_read_keeps_its_snapshot_and_an_older_one_never_overwrites_a_newer_one() {
    let redis = TestRedis::new().await;
    let stack = stack(config(redis.url(), false), redis.prefix()).await;
    until_up(&stack, "nobody-yet").await;
    stack.create_user("alice").await;
    stack.add("alice", "a1", "+41791234567").await;
    let older = stack.store.load(&uid("alice")).await.expect("readable").expect("exists");
    stack.add("alice", "a2", "+41791234568").await;

    assert_eq!(stack.lookup("alice").await, ["a1", "a2"]);
    stack.until_cached("alice", 3).await;
    stack.cache.put(&older).await;

    assert_eq!(stack.cached("alice").await, Some((3, vec!["a1".to_owned(), "a2".to_owned()])));
    assert!(lookups(&stack.metrics).0 > 0, "served from Redis");
}

#[tokio::test]
async fn a_removal_decided_on_a_stale_snapshot_is_refused_by_the_store_and_decided_again() {
    let redis = TestRedis::new().await;
    let stack = stack(config(redis.url(), false), redis.prefix()).await;
    until_up(&stack, "nobody-yet").await;
    stack.create_user("alice").await;
    stack.add("alice", "a1", "+41791234567").await;
    assert_eq!(stack.lookup("alice").await, ["a1"]);
    stack.until_cached("alice", 2).await;
    // The store moves on behind the cache's back.
    stack.add("alice", "a2", "+41791234568").await;

    stack.remove("alice", "a1").await;
    // The cache has never seen a2: the refusal it would give is decided again on the store.
    stack.remove("alice", "a2").await;

    assert!(stack.lookup("alice").await.is_empty());
    assert_eq!((removals_of(&stack, "alice", "a1").await, removals_of(&stack, "alice", "a2").await), (1, 1));
    stack.until_cached("alice", 5).await;
    assert_eq!(stack.cached("alice").await, Some((5, vec![])), "the cache holds the state the last write left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_readers_and_a_writer_per_user_see_no_stale_read_and_every_removal_answers_200() {
    let redis = TestRedis::new().await;
    let stack = Arc::new(stack(config(redis.url(), false), redis.prefix()).await);
    until_up(&stack, "nobody-yet").await;

    let report = stress(stack.clone(), &["alice", "bob"], 4, 2_000).await;

    assert_eq!(report.stale_reads, 0, "{report:?}");
    assert_eq!(report.removals, 2_000, "{report:?}");
    assert!(report.reads > 1_000, "the readers kept reading: {report:?}");
    let (hits, _) = lookups(&stack.metrics);
    assert!(hits > 0, "removals decided on the cache during the run: {report:?}");
}

#[tokio::test]
async fn with_redis_never_started_every_read_and_removal_is_answered_from_postgres() {
    let stack = stack(config("redis://127.0.0.1:9", false), "never:").await;
    stack.create_user("alice").await;
    stack.add("alice", "a1", "+41791234567").await;

    for _ in 0..20 {
        assert_eq!(stack.lookup("alice").await, ["a1"]);
    }
    stack.remove("alice", "a1").await;
    assert!(stack.lookup("alice").await.is_empty());
    assert_eq!(stack.redis.state(), DependencyState::Degraded);
    assert_eq!(stack.metrics.lookups(Lookup::Bypass), 1, "the removal never waited on a Redis that is not there");
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
        assert_eq!(stack.cache.get(&uid("alice")).await, None, "a Redis that is gone answers as a miss");
    }
    assert_eq!(stack.redis.state(), DependencyState::Degraded);
    stack.remove("alice", "a1").await;
    assert_eq!(stack.lookup("alice").await, ["a2"]);

    redis.flush().await;
    proxy.up();
    until_answers(&stack).await;
    assert_eq!(stack.lookup("alice").await, ["a2"]);
    stack.until_cached("alice", 4).await;
    let (hits_before, _) = lookups(&stack.metrics);
    stack.remove("alice", "a2").await;
    assert_eq!(lookups(&stack.metrics).0, hits_before + 1, "the removal decided on the cache again");
    assert!(stack.lookup("alice").await.is_empty());
}

#[tokio::test]
async fn a_redis_slower_than_its_timeout_opens_the_circuit_and_decisions_stop_waiting_on_it() {
    let redis = TestRedis::new().await;
    let (proxy, stack) = behind_a_proxy(&redis, &[("a1", "+41791234567")]).await;

    proxy.slow(Duration::from_millis(250));
    for _ in 0..10 {
        assert_eq!(stack.cache.get(&uid("alice")).await, None, "a slow Redis answers as a miss");
    }
    let errors = stack.metrics.lookups(Lookup::Error);
    let bypassed = stack.metrics.lookups(Lookup::Bypass);
    assert_eq!(errors, 3, "three timeouts open the circuit");
    assert!(bypassed >= 6, "then Redis is not called at all: {bypassed}");
    assert_eq!(stack.redis.state(), DependencyState::Degraded);
    stack.remove("alice", "a1").await;

    proxy.slow(Duration::ZERO);
    until_up(&stack, "alice").await;
    assert!(stack.lookup("alice").await.is_empty());
}

#[tokio::test]
async fn an_entry_kept_before_a_removal_is_never_the_ground_of_an_answer_after_redis_returns() {
    let redis = TestRedis::new().await;
    let (proxy, stack) = behind_a_proxy(&redis, &[("a1", "+41791234567")]).await;
    assert_eq!(stack.lookup("alice").await, ["a1"]);
    stack.until_cached("alice", 2).await;

    // The removal happens while Redis is unreachable: nothing can tell Redis about it.
    proxy.down();
    stack.remove("alice", "a1").await;
    proxy.up();
    until_answers(&stack).await;

    assert_eq!(stack.cached("alice").await, Some((2, vec!["a1".to_owned()])), "the old entry is still in Redis");
    let again = RemoveOtpSmsCommand {
        scope: RequestScope::default(),
        user: uid("alice"),
        otp_sms: OtpSmsId::new("a1").expect("valid"),
    };
    let second = stack.remove_otp_sms.remove_otp_sms(&admin(), again).await;
    assert!(
        matches!(second, Err(RemoveOtpSmsError::NotFound)),
        "decided on the old entry, refused, decided again: {second:?}"
    );
    assert!(stack.lookup("alice").await.is_empty(), "and no read shows it");
    assert_eq!(removals_of(&stack, "alice", "a1").await, 1);
}
