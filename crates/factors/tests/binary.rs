//! The `factors` binary as an operator runs it: environment overrides, database creation
//! and migration, token minting, readiness, and a clean exit on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use factors_testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_factors");

fn factors(database_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("FACTORS_ENV", "test")
        .env("FACTORS__DATABASE__URL", database_url)
        .env("RUST_LOG", "info")
        .env_remove("FACTORS_CONFIG_DIR")
        .kill_on_drop(true);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn wait_until_ready(base: &str, child: &mut Child) {
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("{base}/readyz")).await {
            assert_eq!(response.status().as_u16(), 200);
            return;
        }
        assert!(child.try_wait().expect("pollable").is_none(), "factors exited before it was ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("factors did not become ready at {base}");
}

#[tokio::test]
async fn migrate_creates_a_missing_database_and_applies_the_migrations() {
    let db = TestDatabase::reserve().await;

    let status = factors(db.url())
        .arg("migrate")
        .env("FACTORS__DATABASE__CREATE_DATABASE", "true")
        .status()
        .await
        .expect("runs");

    assert!(status.success());
    let pool = db.pool().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('users', 'otp_sms_authenticators', 'otp_sms_codes', 'events')",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(tables, 4);
}

#[tokio::test]
async fn the_service_listens_where_told_serves_a_minted_token_and_stops_cleanly_on_sigterm() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = factors(db.url())
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_until_ready(&base, &mut child).await;

    let minted = factors(db.url())
        .args(["token", "mint", "--sub", "iam", "--org", "org-a", "--role", "IAM_OWNER", "--ttl", "5m"])
        .output()
        .await
        .expect("mints");
    assert!(minted.status.success());
    let stdout = String::from_utf8(minted.stdout).expect("utf-8");
    let token = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "just the token on stdout: {stdout:?}");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let answer = reqwest::Client::new()
        .get(format!("{base}/resources/v3alpha/users/nobody"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status().as_u16(), 404, "authenticated, and the user does not exist");

    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
    assert!(killed.success());
    let exit =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("waitable");
    assert!(exit.success(), "a clean exit on SIGTERM: {exit:?}");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut log = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(token), "tokens never reach the log");
}

#[tokio::test]
async fn a_bad_configuration_stops_the_start_with_a_clear_message() {
    let output = factors("postgres://postgres@127.0.0.1:1/none")
        .env("FACTORS__CODES__MAX_ATTEMPTS", "zero")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_attempts"), "{stderr}");
}

#[tokio::test]
async fn unknown_configuration_keys_are_reported() {
    let db = TestDatabase::new().await;

    let output = factors(db.url()).arg("migrate").env("FACTORS__DATABASE__URLL", "typo").output().await.expect("runs");

    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("unknown configuration key") && log.contains("database.urll"), "{log}");
}
