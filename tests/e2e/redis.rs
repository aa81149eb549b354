//! The service with Redis: two replicas never show a removed authenticator, SMS limits
//! answer 429 with Retry-After, and a Redis that goes away only costs speed.

use super::TestApp;
use factors_testing::{OwnRedis, RedisCluster, TcpProxy, TestRedis};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_through_one_replica_and_reading_through_the_other_shows_no_stale_authenticator() {
    let redis = TestRedis::new().await;
    let one = TestApp::spawn_with_redis(&redis, redis.url()).await;
    let other = one.replica().await;
    one.given_user("alice", "org-a").await;

    let mut stale = 0;
    for round in 0..30 {
        let otp = one.given_authenticator("alice", "+41791234567").await;
        // The other replica reads (and caches) it...
        assert_eq!(other.otp_sms_ids("alice").await, std::slice::from_ref(&otp), "round {round}");
        assert_eq!(other.otp_sms_ids("alice").await, std::slice::from_ref(&otp), "round {round}, from the cache");
        // ...the first removes it...
        assert_eq!(one.remove_otp_sms(Some(&one.admin()), "alice", &otp).await.status, 200);
        // ...and the other must not show it any more.
        if other.otp_sms_ids("alice").await.contains(&otp) {
            stale += 1;
        }
    }

    assert_eq!(stale, 0);
}

#[tokio::test]
async fn the_sixth_sms_in_ten_minutes_answers_429_with_retry_after_and_changes_nothing() {
    let redis = TestRedis::new().await;
    let app = TestApp::spawn_with_redis(&redis, redis.url()).await;
    app.given_user("alice", "org-a").await;
    let alice = app.token("alice", "org-a", &[]);

    for n in 0..5 {
        let added = app.add_otp_sms(&alice, "alice", json!({"number": format!("+4179123456{n}")})).await;
        assert_eq!(added.status, 200, "send {n}: {}", added.body);
    }
    let refused = app.add_otp_sms(&alice, "alice", json!({"number": "+41791234569"})).await;

    refused.assert_error(429, 8, "SMS-RateLimitedUser");
    let retry_after: u64 = refused.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    assert_eq!(app.sms.count(), 5, "no sixth SMS");
    assert_eq!(app.otp_sms_ids("alice").await.len(), 5, "nothing stored");
    // An administrator adding with returnCode sends nothing, and is not limited.
    let returned = app.add_otp_sms(&app.admin(), "alice", json!({"number": "+41791234569", "returnCode": {}})).await;
    assert_eq!(returned.status, 200);
}

#[tokio::test]
async fn without_redis_the_service_stays_ready_and_answers_with_redis_reported_degraded() {
    let redis = TestRedis::new().await;
    let proxy = TcpProxy::start(&redis.addr()).await;
    let app = TestApp::spawn_with_redis(&redis, &proxy.redis_url()).await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&otp));

    proxy.down();

    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["dependencies"], json!({app.store(): "up", "redis": "degraded"}));
    assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&otp));
    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);
    assert!(app.otp_sms_ids("alice").await.is_empty());
    let added = app.add_otp_sms(&app.token("alice", "org-a", &[]), "alice", json!({"number": "+41791234568"})).await;
    assert_eq!(added.status, 200, "limits are counted in process: {}", added.body);
}

#[tokio::test]
async fn a_redis_that_answers_but_refuses_writes_is_reported_degraded_and_costs_no_answer() {
    let server = OwnRedis::start().await;
    let url = server.url();
    let app = TestApp::spawn_with(move |settings| settings.redis.url = Some(url.into())).await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["dependencies"]["redis"], "up", "{}", ready.body);

    // A failover demoted it: PING still answers, every write is refused.
    server.demote().await;
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!((ready.status, &ready.body["dependencies"]["redis"]), (200, &json!("degraded")), "{}", ready.body);
    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);
    assert!(app.otp_sms_ids("alice").await.is_empty());

    server.promote().await;
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["dependencies"]["redis"], "up", "{}", ready.body);
}

#[tokio::test]
async fn metrics_report_requests_cache_results_circuit_state_and_limits() {
    let redis = TestRedis::new().await;
    let app = TestApp::spawn_with_redis(&redis, redis.url()).await;
    app.given_user("alice", "org-a").await;
    // The add decides on a cache that has never seen alice (a miss in both tiers), then
    // keeps the state it left in its process; the removal decides on that (a hit).
    let otp = app.given_authenticator("alice", "+41791234567").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);
    let _ = app.otp_sms_ids("alice").await;
    let _ = app.otp_sms_ids("alice").await;

    let response = reqwest::get(format!("{}/metrics", app.address)).await.expect("answers");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");

    for series in [
        r#"factors_http_requests_total{method="GET",route="/resources/v3alpha/users/{id}",status="200"} 2"#,
        r#"factors_cache_lookups_total{result="hit"} 1"#,
        r#"factors_cache_lookups_total{result="miss"} 1"#,
        "factors_redis_circuit_state 0",
        "factors_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
}

/// Whether `/metrics` (`text`) serves `name`: a sample of it, or the family it is a
/// sample name of (`_total`, `_bucket`, `_count`, `_sum`), whose samples appear once
/// something happened.
fn serves(text: &str, name: &str) -> bool {
    let sampled = text.lines().any(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])));
    let declared = ["", "_total", "_bucket", "_count", "_sum"].iter().any(|suffix| {
        name.strip_suffix(suffix).is_some_and(|family| text.lines().any(|l| l.starts_with(&format!("# TYPE {family} "))))
    });
    sampled || declared
}

#[tokio::test]
async fn every_metric_the_alert_rules_name_is_served() {
    let redis = TestRedis::new().await;
    let (url, prefix) = (redis.url().to_owned(), redis.prefix().to_owned());
    let app = TestApp::spawn_with(move |settings| {
        settings.redis.url = Some(url.into());
        settings.redis.key_prefix = prefix;
        // Every code must be read: the first unread one opens its region's breaker, whose
        // state is served from then on.
        let breaker = &mut settings.sms.breaker;
        (breaker.enabled, breaker.threshold, breaker.min_sends) = (true, 1.0, 1);
    })
    .await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);
    app.given_user("bob", "org-a").await;
    let sent = app.add_otp_sms(&app.admin(), "bob", serde_json::json!({"number": "+41791234568"})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(app.send(Method::GET, "/readyz", None, None).await.status, 200);

    let text = reqwest::get(format!("{}/metrics", app.address)).await.expect("answers").text().await.expect("text");
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/factors.rules.yml"))
        .expect("deploy/prometheus/factors.rules.yml");
    let named: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("factors_"))
        .collect();

    assert!(named.len() >= 8, "the rules name the metrics they watch: {named:?}");
    for name in named {
        assert!(serves(&text, name), "the alert rules name {name}, which /metrics does not serve:\n{text}");
    }
    assert!(text.contains("factors_notice_outbox_oldest_seconds 0"), "an empty outbox has waited 0 s:\n{text}");
    let store = format!(r#"factors_dependency_up{{dependency="{}"}} 1"#, app.store());
    for up in [store.as_str(), r#"factors_dependency_up{dependency="redis"} 1"#] {
        assert!(text.contains(up), "missing {up} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_two_replicas_stay_consistent_and_a_dead_master_costs_no_answer() {
    let mut cluster = RedisCluster::start().await;
    let urls = cluster.urls();
    let one = TestApp::spawn_with(move |settings| {
        settings.redis.url = Some(urls.into());
        settings.redis.cluster = true;
    })
    .await;
    let other = one.replica().await;
    let users = ["alice", "bob", "carol"];
    for user in users {
        one.given_user(user, "org-a").await;
    }

    for round in 0..10 {
        for user in users {
            let otp = one.given_authenticator(user, "+41791234567").await;
            assert_eq!(other.otp_sms_ids(user).await, std::slice::from_ref(&otp), "{user}, round {round}");
            assert_eq!(one.remove_otp_sms(Some(&one.admin()), user, &otp).await.status, 200);
            assert!(other.otp_sms_ids(user).await.is_empty(), "{user}, round {round}: not shown after removal");
        }
    }
    let ready = other.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["dependencies"]["redis"], "up", "the cluster was in use");

    cluster.kill(0).await;

    for user in users {
        let otp = one.given_authenticator(user, "+41791234568").await;
        assert_eq!(other.otp_sms_ids(user).await, std::slice::from_ref(&otp), "{user} with a master down");
        assert_eq!(one.remove_otp_sms(Some(&one.admin()), user, &otp).await.status, 200);
        assert!(other.otp_sms_ids(user).await.is_empty(), "{user} with a master down: not shown after removal");
        let sent = one.add_otp_sms(&one.token(user, "org-a", &[]), user, json!({"number": "+41791234569"})).await;
        assert_eq!(sent.status, 200, "{user}: limits still answer: {}", sent.body);
    }
}
