//! SMS limits against real Redis: shared by replicas, in process while Redis is away.

mod common;

use std::time::Duration;

use common::config;
use factors_adapters_redis::{Keys, RateLimitConfig, Redis, RedisMetrics, SmsLimiter};
use factors_application::ports::{DependencyState, LimitScope, SmsRateLimiter};
use factors_domain::{PhoneNumber, UserId};
use factors_testing::{TcpProxy, TestRedis};

const LIMITS: RateLimitConfig = RateLimitConfig { per_user: 5, per_phone: 5, window: Duration::from_secs(600) };

fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid")
}

fn phone(n: u8) -> PhoneNumber {
    PhoneNumber::parse(&format!("+4179123456{n}")).expect("valid")
}

async fn limiter(url: &str, prefix: &str) -> (SmsLimiter, std::sync::Arc<Redis>) {
    let metrics = RedisMetrics::default();
    let redis = Redis::start(config(url, false), metrics.clone()).expect("valid");
    for _ in 0..100 {
        if redis.state() == DependencyState::Up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (SmsLimiter::new(Some(redis.clone()), Keys::new(prefix, "inst", b"a-test-secret"), LIMITS, metrics), redis)
}

#[tokio::test]
async fn two_replicas_share_the_per_user_limit() {
    let redis = TestRedis::new().await;
    let (a, _) = limiter(redis.url(), redis.prefix()).await;
    let (b, _) = limiter(redis.url(), redis.prefix()).await;

    for n in 0..3 {
        assert!(a.try_acquire(&user("alice"), &phone(n)).await.is_ok(), "a: send {n}");
    }
    for n in 3..5 {
        assert!(b.try_acquire(&user("alice"), &phone(n)).await.is_ok(), "b: send {n}");
    }
    let refused = a.try_acquire(&user("alice"), &phone(5)).await.expect_err("the sixth in ten minutes");

    assert_eq!(refused.scope, LimitScope::User);
    assert!(
        refused.retry_after > Duration::from_secs(590) && refused.retry_after <= Duration::from_secs(600),
        "{refused:?}"
    );
    assert!(b.try_acquire(&user("bob"), &phone(5)).await.is_ok(), "other users are not affected");
}

#[tokio::test]
async fn the_per_phone_limit_holds_across_users_and_a_refusal_costs_the_user_nothing() {
    let redis = TestRedis::new().await;
    let (a, _) = limiter(redis.url(), redis.prefix()).await;

    for n in 0..5 {
        assert!(a.try_acquire(&user(&format!("user{n}")), &phone(1)).await.is_ok());
    }
    let refused = a.try_acquire(&user("mallory"), &phone(1)).await.expect_err("the number had five");

    assert_eq!(refused.scope, LimitScope::Phone);
    for n in 2..7 {
        assert!(a.try_acquire(&user("mallory"), &phone(n)).await.is_ok(), "mallory still has five: {n}");
    }
}

#[tokio::test]
async fn notices_count_against_the_numbers_limit_on_every_replica_and_a_given_back_one_does_not() {
    let redis = TestRedis::new().await;
    let (a, _) = limiter(redis.url(), redis.prefix()).await;
    let (b, _) = limiter(redis.url(), redis.prefix()).await;

    let failed_send = a.try_acquire_notice(&phone(1)).await.expect("admitted");
    a.release(&user("alice"), &phone(1), failed_send).await;
    for n in 0..3 {
        assert!(a.try_acquire_notice(&phone(1)).await.is_ok(), "a: notice {n}");
    }
    assert!(b.try_acquire(&user("bob"), &phone(1)).await.is_ok(), "b: a code, the fourth SMS");
    assert!(b.try_acquire_notice(&phone(1)).await.is_ok(), "b: the fifth");
    let refused = a.try_acquire_notice(&phone(1)).await.expect_err("the sixth SMS to the number");

    assert_eq!(refused.scope, LimitScope::Phone);
    for n in 2..6 {
        assert!(a.try_acquire(&user("alice"), &phone(n)).await.is_ok(), "notices used none of alice's: {n}");
    }
}

#[tokio::test]
async fn while_redis_is_away_limits_are_counted_in_process() {
    let redis = TestRedis::new().await;
    let proxy = TcpProxy::start(&redis.addr()).await;
    let (a, client) = limiter(&proxy.redis_url(), redis.prefix()).await;
    assert_eq!(client.state(), DependencyState::Up);

    proxy.down();
    for n in 0..5 {
        assert!(a.try_acquire(&user("alice"), &phone(n)).await.is_ok(), "send {n}");
    }
    let refused = a.try_acquire(&user("alice"), &phone(5)).await.expect_err("still limited without Redis");

    assert_eq!(refused.scope, LimitScope::User);
}

#[tokio::test]
async fn an_outage_never_starts_the_window_from_zero() {
    let redis = TestRedis::new().await;
    let proxy = TcpProxy::start(&redis.addr()).await;
    let (a, client) = limiter(&proxy.redis_url(), redis.prefix()).await;
    assert_eq!(client.state(), DependencyState::Up);
    for n in 0..3 {
        assert!(a.try_acquire(&user("alice"), &phone(n)).await.is_ok(), "send {n}, counted in Redis");
    }

    proxy.down();
    for n in 3..5 {
        assert!(a.try_acquire(&user("alice"), &phone(n)).await.is_ok(), "send {n}, counted in process");
    }
    let refused =
        a.try_acquire(&user("alice"), &phone(5)).await.expect_err("the sixth in the window, across the outage");

    assert_eq!(refused.scope, LimitScope::User);
}

#[tokio::test]
async fn once_redis_is_back_it_is_counted_in_again_within_five_seconds() {
    let redis = TestRedis::new().await;
    let proxy = TcpProxy::start(&redis.addr()).await;
    let (a, client) = limiter(&proxy.redis_url(), redis.prefix()).await;
    assert_eq!(client.state(), DependencyState::Up);
    proxy.down();
    // Long enough for every retry and the circuit to give up on Redis.
    for n in 0..20 {
        let _ = a.try_acquire(&user(&format!("during-{n}")), &phone(1)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redis.keys().await.is_empty(), "nothing reached Redis while it was away");

    proxy.up();
    let back = std::time::Instant::now();
    let keys = Keys::new(redis.prefix(), "inst", b"a-test-secret");
    let mut n = 0;
    loop {
        let probe = user(&format!("after-{n}"));
        let number = PhoneNumber::parse(&format!("+417912{n:05}")).expect("valid");
        assert!(a.try_acquire(&probe, &number).await.is_ok());
        if redis.keys().await.contains(&keys.sms_by_user(&probe)) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still counting in process {:?} after Redis returned",
            back.elapsed()
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `redis-server` of this test's own on `port` (`FACTORS_TEST_REDIS_SERVER`, else the one
/// on `PATH`), so that it can be killed and started again.
fn own_redis(port: u16) -> tokio::process::Child {
    let binary = std::env::var("FACTORS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    tokio::process::Command::new(&binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary} ({e}); install Redis or set FACTORS_TEST_REDIS_SERVER"))
}

async fn keys_at(port: u16) -> Vec<String> {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else { return Vec::new() };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else { return Vec::new() };
    redis::cmd("KEYS").arg("*").query_async(&mut connection).await.unwrap_or_default()
}

#[tokio::test]
async fn a_killed_and_restarted_redis_is_counted_in_again_within_five_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
    let mut server = own_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..100 {
        if redis::Client::open(url.as_str()).expect("a URL").get_multiplexed_async_connection().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a, client) = limiter(&url, "factors-restart:").await;
    assert_eq!(client.state(), DependencyState::Up);

    server.kill().await.expect("killed");
    for n in 0..20 {
        let _ = a.try_acquire(&user(&format!("during-{n}")), &phone(1)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _server = own_redis(port);
    let back = std::time::Instant::now();
    let keys = Keys::new("factors-restart:", "inst", b"a-test-secret");
    let mut n = 0;
    loop {
        let probe = user(&format!("after-{n}"));
        let number = PhoneNumber::parse(&format!("+417913{n:05}")).expect("valid");
        assert!(a.try_acquire(&probe, &number).await.is_ok());
        if keys_at(port).await.contains(&keys.sms_by_user(&probe)) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still counting in process {:?} after Redis returned",
            back.elapsed()
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_permit_given_back_no_longer_counts() {
    let redis = TestRedis::new().await;
    let (a, _) = limiter(redis.url(), redis.prefix()).await;
    let mut permits = Vec::new();
    for n in 0..5 {
        permits.push(a.try_acquire(&user("alice"), &phone(n)).await.expect("admitted"));
    }
    let refused = a.try_acquire(&user("alice"), &phone(5)).await.expect_err("the sixth is over the limit");
    assert_eq!(refused.scope, LimitScope::User);

    let first = permits.remove(0);
    a.release(&user("alice"), &phone(0), first).await;

    assert!(a.try_acquire(&user("alice"), &phone(5)).await.is_ok(), "the SMS that was not sent gave its place back");
}
