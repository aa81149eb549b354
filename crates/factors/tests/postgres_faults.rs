//! PostgreSQL going away in the middle of a stream of removals, and coming back: the
//! service answers UNAVAILABLE in the contract's body within a bounded time, turns
//! not-ready, recovers without a restart, and no answer misstates what was written.
//!
//! The test runs a PostgreSQL server of its own (`initdb` and `pg_ctl` of the local
//! installation) and stops it at once, as a crash would, then starts it again.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use factors::{Application, Environment, Settings};
use factors_testing::OwnPostgres;
use serde_json::Value;

const USERS: usize = 160;
const WORKERS: usize = 4;

struct Outcome {
    user: String,
    otp: String,
    status: u16,
    body: Value,
    took: Duration,
}

/// The service on `url` (created if missing), with the settings `tweak` leaves: its
/// base URL, an HTTP client, an administrator's token, and what stops it when sent.
async fn serve(url: &str, tweak: impl FnOnce(&mut Settings)) -> (String, reqwest::Client, String, Stop) {
    let mut settings = Settings::load(Environment::Test).expect("test settings").settings;
    settings.database.url = Some(url.to_owned().into());
    settings.database.create_database = true;
    settings.database.acquire_timeout = Duration::from_secs(1);
    tweak(&mut settings);
    let app = Application::build(&settings).await.expect("builds");
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    (base, client, common::admin_token(&settings), stop)
}

type Stop = tokio::sync::oneshot::Sender<()>;

/// RemoveOTPSMSAuthenticator over REST, as `admin`.
async fn remove(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    (user, otp): &(String, String),
) -> reqwest::Response {
    let path = format!("{base}/resources/v3alpha/users/{user}/otp_sms/{otp}");
    client.delete(path).bearer_auth(admin).send().await.expect("answered")
}

/// GetUser over REST, as `admin`.
async fn get_user(client: &reqwest::Client, base: &str, admin: &str, user: &str) -> reqwest::Response {
    client.get(format!("{base}/resources/v3alpha/users/{user}")).bearer_auth(admin).send().await.expect("answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_mid_stream_answers_unavailable_at_once_and_the_service_recovers_without_a_restart() {
    let postgres = Arc::new(OwnPostgres::start().await);
    let url = postgres.url("factors");
    let (base, client, admin, stop) = serve(&url, |_| {}).await;

    let removals = common::users_with_an_otp_sms(&client, &base, &admin, USERS).await;

    // Removals stream from several clients; part way, the database goes away for a while.
    let chunks: Vec<Vec<(String, String)>> =
        removals.chunks(USERS / WORKERS).map(<[(String, String)]>::to_vec).collect();
    let workers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let (client, base, admin) = (client.clone(), base.clone(), admin.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for (user, otp) in chunk {
                    let started = Instant::now();
                    let answer = client
                        .delete(format!("{base}/resources/v3alpha/users/{user}/otp_sms/{otp}"))
                        .bearer_auth(&admin)
                        .send()
                        .await
                        .expect("every removal is answered");
                    let status = answer.status().as_u16();
                    let body = answer.json().await.expect("a JSON body");
                    outcomes.push(Outcome { user, otp, status, body, took: started.elapsed() });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                outcomes
            })
        })
        .collect();
    // Each worker takes about four seconds; the outage lasts from 0.5 s to 2 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    postgres.down().await;
    let not_ready = client.get(format!("{base}/readyz")).send().await.expect("answers");
    assert_eq!(not_ready.status().as_u16(), 503, "not ready while the database is away");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.up().await;

    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.expect("worker"));
    }
    let ready = client.get(format!("{base}/readyz")).send().await.expect("answers");
    assert_eq!(ready.status().as_u16(), 200, "ready again, without a restart");

    let unavailable = outcomes.iter().filter(|o| o.status == 503).count();
    assert!(unavailable > 0, "the outage was felt");
    for outcome in &outcomes {
        assert!(matches!(outcome.status, 200 | 503), "{}: {} {}", outcome.user, outcome.status, outcome.body);
        assert!(outcome.took < Duration::from_secs(4), "{} answered after {:?}", outcome.user, outcome.took);
        if outcome.status == 503 {
            assert_eq!(
                (outcome.body["code"].as_i64(), outcome.body["details"][0]["id"].as_str()),
                (Some(14), Some("STORE-Unavailable")),
                "{}",
                outcome.body
            );
        }
    }
    let last_of_each_worker: Vec<u16> = outcomes.chunks(USERS / WORKERS).map(|c| c[c.len() - 1].status).collect();
    assert!(last_of_each_worker.iter().all(|s| *s == 200), "recovered: {last_of_each_worker:?}");

    // What each answer said against what was written: a 200 was committed with its event;
    // a 503 left all or nothing, never part.
    let pool = sqlx::PgPool::connect(&url).await.expect("the restarted server answers");
    for outcome in &outcomes {
        let (held, events): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM otp_sms_authenticators WHERE id = $1), \
             (SELECT count(*) FROM events WHERE aggregate_id = $2 AND event_type = 'user.human.mfa.otp.sms.removed')",
        )
        .bind(&outcome.otp)
        .bind(&outcome.user)
        .fetch_one(&pool)
        .await
        .expect("readable");
        match outcome.status {
            200 => assert_eq!((held, events), (0, 1), "{}: committed", outcome.user),
            _ => assert!((held, events) == (1, 0) || (held, events) == (0, 1), "{}: all or nothing", outcome.user),
        }
    }
    let _ = stop.send(());
}

/// What a proxy does to a connection while its cluster elects the next leader: it reaches a
/// server that takes no writes (a standby). Simulated by making the whole server read-only
/// under the service's open connections, and writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_taking_writes_is_unavailable_with_retry_after_never_internal_nor_stale() {
    let postgres = OwnPostgres::start().await;
    let url = postgres.url("factors");
    let (base, client, admin, stop) = serve(&url, |_| {}).await;
    let users = common::users_with_an_otp_sms(&client, &base, &admin, 3).await;
    let admin_pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let read_only = |on: bool| {
        let admin_pool = admin_pool.clone();
        async move {
            let value = if on { "on" } else { "off" };
            sqlx::query(&format!("ALTER SYSTEM SET default_transaction_read_only = {value}"))
                .execute(&admin_pool)
                .await
                .expect("set");
            sqlx::query("SELECT pg_reload_conf()").execute(&admin_pool).await.expect("reloaded");
            // The postmaster signals every backend; give them a moment to read the file.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    read_only(true).await;
    let refused = remove(&client, &base, &admin, &users[0]).await;
    let (status, retry_after) = (refused.status().as_u16(), refused.headers().get("retry-after").cloned());
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!((status, &body["details"][0]["id"]), (503, &Value::from("STORE-Unavailable")), "{body}");
    assert_eq!(retry_after.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
    // A read is not served from a server that takes no writes: it may be behind.
    let read = get_user(&client, &base, &admin, &users[1].0).await;
    assert_eq!(read.status().as_u16(), 503);
    let not_ready = client.get(format!("{base}/readyz")).send().await.expect("answers");
    assert_eq!(not_ready.status().as_u16(), 503, "not ready while no write can land");

    read_only(false).await;
    let ready = client.get(format!("{base}/readyz")).send().await.expect("answers");
    assert_eq!(ready.status().as_u16(), 200, "ready again, without a restart");
    for removal in &users {
        let answer = remove(&client, &base, &admin, removal).await;
        assert_eq!(answer.status().as_u16(), 200, "the writes land again");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM otp_sms_authenticators")
        .fetch_one(&admin_pool)
        .await
        .expect("readable");
    assert_eq!(left, 0);
    let _ = stop.send(());
}

/// A replica whose connections are all busy answers in time, not from a queue that grows:
/// the one connection it may hold waits on a user's row that another client keeps locked,
/// and a read behind it answers 503 once `database.acquire_timeout` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_connection_busy_a_request_answers_unavailable_after_the_acquire_timeout() {
    let postgres = OwnPostgres::start().await;
    let url = postgres.url("factors");
    let (base, client, admin, stop) = serve(&url, |settings| {
        settings.database.max_connections = 1;
        settings.database.acquire_timeout = Duration::from_millis(300);
    })
    .await;
    let users = common::users_with_an_otp_sms(&client, &base, &admin, 2).await;
    let other = sqlx::PgPool::connect(&url).await.expect("connects");
    let mut holder = other.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(&users[0].0)
        .execute(&mut *holder)
        .await
        .expect("locked");

    let blocked = tokio::spawn({
        let (client, base, admin, removal) = (client.clone(), base.clone(), admin.clone(), users[0].clone());
        async move { remove(&client, &base, &admin, &removal).await.status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let waited = get_user(&client, &base, &admin, &users[1].0).await;
    let took = started.elapsed();
    let retry_after = waited.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, body): (u16, Value) = (waited.status().as_u16(), waited.json().await.expect("JSON"));
    assert_eq!((status, &body["details"][0]["id"]), (503, &Value::from("STORE-Unavailable")), "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "answered after {took:?}");

    holder.rollback().await.expect("released");
    assert_eq!(blocked.await.expect("the removal finished"), 200, "the removal went on once the row was free");
    let read = get_user(&client, &base, &admin, &users[1].0).await;
    assert_eq!(read.status().as_u16(), 200, "the connection serves again");
    let _ = stop.send(());
}
