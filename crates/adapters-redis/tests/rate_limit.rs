//! SMS limits against real Redis: shared by replicas, in process while Redis is away.

mod common;

use std::time::Duration;

use common::config;
use factors_adapters_redis::{Keys, RateLimitConfig, Redis, RedisMetrics, SmsBudgets, SmsLimiter};
use factors_application::ports::{DependencyState, LimitScope, RateLimited, SmsPermit, SmsRateLimiter};
use factors_domain::{PhoneNumber, UserId};
use factors_testing::{TcpProxy, TestRedis};

const LIMITS: RateLimitConfig =
    RateLimitConfig { per_user: 5, per_phone: 5, window: Duration::from_secs(600), budgets: SmsBudgets::OFF };

fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid")
}

fn phone(n: u8) -> PhoneNumber {
    PhoneNumber::parse(&format!("+4179123456{n}")).expect("valid")
}

async fn limiter(url: &str, prefix: &str) -> (SmsLimiter, std::sync::Arc<Redis>) {
    limiter_with(url, prefix, LIMITS).await
}

async fn limiter_with(url: &str, prefix: &str, limits: RateLimitConfig) -> (SmsLimiter, std::sync::Arc<Redis>) {
    let metrics = RedisMetrics::default();
    let redis = Redis::start(config(url, false), metrics.clone()).expect("valid");
    for _ in 0..100 {
        if redis.state() == DependencyState::Up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (SmsLimiter::new(Some(redis.clone()), Keys::new(prefix, "inst", b"a-test-secret"), limits, metrics), redis)
}

/// A limiter on `redis` through a proxy, up when this returns, and the proxy to take Redis away with.
async fn limiter_behind_a_proxy(redis: &TestRedis) -> (SmsLimiter, TcpProxy) {
    let proxy = TcpProxy::start(&redis.addr()).await;
    let (limiter, client) = limiter(&proxy.redis_url(), redis.prefix()).await;
    assert_eq!(client.state(), DependencyState::Up);
    (limiter, proxy)
}

/// Asserts that `limiter` admits an SMS from `who` to each of `phones`, numbered as by [`phone`];
/// a failure names `why` and the number.
async fn assert_admits(limiter: &SmsLimiter, who: &str, phones: std::ops::Range<u8>, why: &str) {
    for n in phones {
        assert!(limiter.try_acquire(&user(who), &phone(n)).await.is_ok(), "{why}: {n}");
    }
}

/// Asks `limiter` for twenty SMS of different users, 100 ms apart, while Redis is away: long
/// enough for every retry and the circuit to give up on Redis.
async fn send_while_redis_is_away(limiter: &SmsLimiter) {
    for n in 0..20 {
        let _ = limiter.try_acquire(&user(&format!("during-{n}")), &phone(1)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that within five seconds of Redis coming back, `limiter` counts an SMS in Redis
/// again: it sends SMS of new users (to `{numbers}{n:05}`) until `keys` lists the count of
/// one of them, under the key `prefix` gives.
async fn assert_counted_in_redis_again_within_five_seconds<F, Fut>(
    limiter: &SmsLimiter,
    prefix: &str,
    numbers: &str,
    keys: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let back = std::time::Instant::now();
    let key_names = Keys::new(prefix, "inst", b"a-test-secret");
    let mut n = 0;
    loop {
        let probe = user(&format!("after-{n}"));
        let number = PhoneNumber::parse(&format!("{numbers}{n:05}")).expect("valid");
        assert!(limiter.try_acquire(&probe, &number).await.is_ok());
        if keys().await.contains(&key_names.sms_by_user(&probe)) {
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

/// An SMS from `who` to `number` through `limiter`.
async fn send(limiter: &SmsLimiter, who: &str, number: &str) -> Result<SmsPermit, RateLimited> {
    limiter.try_acquire(&user(who), &PhoneNumber::parse(number).expect("valid")).await
}

#[tokio::test]
async fn replicas_share_the_budgets_of_a_prefix_and_of_a_region_and_a_refusal_costs_nothing_else() {
    let redis = TestRedis::new().await;
    let budgets = SmsBudgets { per_country: 5, per_prefix: 3, prefix_digits: 7, window: Duration::from_secs(3600) };
    let limits = RateLimitConfig { budgets, ..LIMITS };
    let (a, _) = limiter_with(redis.url(), redis.prefix(), limits).await;
    let (b, _) = limiter_with(redis.url(), redis.prefix(), limits).await;
    let swiss = |number: &str| PhoneNumber::parse(number).expect("valid");

    // Three users, three numbers of +41 79 123 (seven digits), two replicas: the prefix's three.
    send(&a, "u1", "+41791234561").await.expect("first of the prefix");
    send(&b, "u2", "+41791234562").await.expect("second");
    let third = send(&a, "u3", "+41791234563").await.expect("third");
    let refused = send(&b, "u4", "+41791234564").await.expect_err("the prefix's fourth within the hour");
    assert_eq!(refused.scope, LimitScope::Prefix);
    assert!(refused.retry_after > Duration::from_secs(3590), "{refused:?}");
    // The refusal cost u4 and its number nothing: the same user goes on elsewhere.
    send(&a, "u4", "+41781234564").await.expect("another prefix, the region's fourth");
    send(&b, "u5", "+41771234565").await.expect("the region's fifth");
    let refused = send(&a, "u6", "+41761234566").await.expect_err("the region's sixth");
    assert_eq!(refused.scope, LimitScope::Country);
    send(&b, "u6", "+4915123456789").await.expect("another region");
    // A permit given back gives its place in the budgets back.
    a.release(&user("u3"), &swiss("+41791234563"), third).await;
    send(&b, "u7", "+41791234567").await.expect("the place given back, in the prefix and the region");
    assert_eq!(send(&a, "u8", "+41751234568").await.expect_err("full again").scope, LimitScope::Country);
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
    assert_admits(&a, "mallory", 2..7, "mallory still has five").await;
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
    assert_admits(&a, "alice", 2..6, "notices used none of alice's").await;
}

#[tokio::test]
async fn while_redis_is_away_limits_are_counted_in_process() {
    let redis = TestRedis::new().await;
    let (a, proxy) = limiter_behind_a_proxy(&redis).await;

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
    let (a, proxy) = limiter_behind_a_proxy(&redis).await;
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
    let (a, proxy) = limiter_behind_a_proxy(&redis).await;
    proxy.down();
    send_while_redis_is_away(&a).await;
    assert!(redis.keys().await.is_empty(), "nothing reached Redis while it was away");

    proxy.up();
    assert_counted_in_redis_again_within_five_seconds(&a, redis.prefix(), "+417912", || redis.keys()).await;
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
    send_while_redis_is_away(&a).await;
    let _server = own_redis(port);
    assert_counted_in_redis_again_within_five_seconds(&a, "factors-restart:", "+417913", || keys_at(port)).await;
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
