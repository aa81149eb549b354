//! The `factors` binary as an operator runs it: environment overrides, database creation
//! and migration, token minting, readiness, and a clean exit on SIGTERM.

mod common;

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
async fn json_logs_are_one_object_a_line_and_the_access_line_carries_the_request_span() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = factors(db.url())
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env("FACTORS__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_until_ready(&base, &mut child).await;
    let answer = reqwest::Client::new()
        .get(format!("{base}/resources/v3alpha/users/nobody"))
        .header("x-request-id", "req-log-shape")
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status().as_u16(), 401, "no token");

    let pid = child.id().expect("running").to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs").success());
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("waitable");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut entries = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("every line is one JSON object ({e}): {line}"));
        assert!(entry["fields"]["message"].is_string(), "a message: {line}");
        assert!(entry["level"].is_string() && entry["target"].is_string(), "a level and a target: {line}");
        let at = entry["timestamp"].as_str().unwrap_or_else(|| panic!("a timestamp: {line}"));
        chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("an RFC 3339 timestamp ({e}): {line}"));
        entries.push(entry);
    }
    let access = entries
        .iter()
        .find(|e| e["span"]["request_id"] == "req-log-shape")
        .unwrap_or_else(|| panic!("the request's access line: {entries:#?}"));
    assert_eq!(access["fields"]["message"], "request finished");
    assert_eq!(access["fields"]["status"], 401);
    assert!(access["fields"]["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{access}");
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["span"]["name"], "request");
    assert_eq!(access["span"]["method"], "GET");
    assert_eq!(access["span"]["route"], "/resources/v3alpha/users/{id}", "the route template, never the id");
    assert!(entries.iter().any(|e| e["fields"]["message"].as_str().is_some_and(|m| m.starts_with("shutting down"))));
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

#[tokio::test]
async fn production_will_not_start_with_the_logging_sms_sender() {
    // Everything else a production start needs is given, so the SMS provider is what stops it.
    let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters-jwt/tests/keys/jwks.json");
    let output = factors("postgres://postgres@127.0.0.1:1/none")
        .env("FACTORS_ENV", "production")
        .env("FACTORS__AUTH__JWKS_FILE", jwks)
        .env("FACTORS__CODES__HMAC_KEY", "a-production-key-of-at-least-32-bytes-0123")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r#"sms.provider = "log" sends no SMS"#), "{stderr}");
    assert!(stderr.contains("refused in production"), "{stderr}");
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn mint(db: &TestDatabase, sub: &str, role: &str) -> String {
    let minted = factors(db.url())
        .args(["token", "mint", "--sub", sub, "--org", "org-a", "--role", role, "--ttl", "5m"])
        .output()
        .await
        .expect("mints");
    assert!(minted.status.success());
    String::from_utf8(minted.stdout).expect("utf-8").trim_end().to_owned()
}

#[tokio::test]
async fn codes_go_out_through_the_configured_webhook_and_a_failing_gateway_answers_503() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let db = TestDatabase::new().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST")).and(path("/sms")).respond_with(ResponseTemplate::new(202)).mount(&gateway).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = factors(db.url())
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env("FACTORS__SMS__PROVIDER", "webhook")
        .env("FACTORS__SMS__WEBHOOK__URL", format!("{}/sms", gateway.uri()))
        .env("FACTORS__SMS__WEBHOOK__SECRET", WEBHOOK_SECRET)
        .env("FACTORS__SMS__APP_NAME", "Acme")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_until_ready(&base, &mut child).await;
    let admin = mint(&db, "admin", "ORG_USER_MANAGER").await;
    let client = reqwest::Client::new();
    let users = format!("{base}/resources/v3alpha/users");
    let created = client
        .post(format!("{users}?organization.orgId=org-a"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"schemaId": "human", "userId": "alice", "data": {"name": "Alice"}}))
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status().as_u16(), 201);

    let added = client
        .post(format!("{users}/alice/otp_sms"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"number": "+41 79 123 45 67"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(added.status().as_u16(), 200);
    let added: serde_json::Value = added.json().await.expect("JSON");
    let otp_sms_id = added["otpSmsId"].as_str().expect("an id").to_owned();

    let requests = gateway.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    let sms: serde_json::Value = requests[0].body_json().expect("JSON");
    assert_eq!((sms["type"].as_str(), sms["to"].as_str()), (Some("sms.code"), Some("+41791234567")));
    assert_eq!((sms["purpose"].as_str(), sms["userId"].as_str()), (Some("registration"), Some("alice")));
    let text = sms["text"].as_str().expect("a text");
    assert!(text.ends_with(" is your Acme verification code. It expires in 10 minutes."), "{text}");
    let code = text.split(' ').next().expect("the code first").to_owned();
    let header = |name: &str| requests[0].headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let secret = factors_adapters_sms::WebhookSecret::parse(WEBHOOK_SECRET).expect("valid");
    assert!(factors_adapters_sms::verify_signature(
        &secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        &requests[0].body,
        header("webhook-signature"),
    ));

    let verified = client
        .post(format!("{users}/alice/otp_sms/{otp_sms_id}/_verify"))
        .bearer_auth(&admin)
        .json(&code)
        .send()
        .await
        .expect("answers");
    assert_eq!(verified.status().as_u16(), 200, "the code in the SMS is the code");

    gateway.reset().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(500).set_body_string("GATEWAY-INTERNALS"))
        .mount(&gateway)
        .await;
    let failed = client
        .post(format!("{users}/alice/otp_sms"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"number": "+41 79 765 43 21"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(failed.status().as_u16(), 503);
    let failed = failed.text().await.expect("a body");
    assert!(failed.contains("SMS-SendFailed") && !failed.contains("GATEWAY-INTERNALS"), "{failed}");
    assert_eq!(gateway.received_requests().await.expect("recording").len(), 1, "sent once, not again");

    let metrics = client.get(format!("{base}/metrics")).send().await.expect("answers").text().await.expect("text");
    for line in [
        r#"factors_sms_sent_total{provider="webhook",outcome="sent"} 1"#,
        r#"factors_sms_sent_total{provider="webhook",outcome="failed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    let pid = child.id().expect("running").to_string();
    Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("waitable");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut log = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(log.contains("SMS handed to the provider") && log.contains("+41******567"), "{log}");
    for secret in
        [code.as_str(), "+41791234567", "+41797654321", "GATEWAY-INTERNALS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    {
        assert!(!log.contains(secret), "the log shows {secret:?}:\n{log}");
    }
}

/// `factors` as a new user runs it: no FACTORS_* variable but the port (8080 may be
/// taken here), in an empty folder.
fn unconfigured(folder: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FACTORS") {
            command.env_remove(&name);
        }
    }
    command.current_dir(folder).env("RUST_LOG", "info").kill_on_drop(true);
    command
}

#[tokio::test]
async fn with_nothing_configured_it_runs_on_sqlite_in_its_data_folder_and_says_how_to_mint_a_token() {
    let folder = factors_testing::TestSqliteFile::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = unconfigured(folder.folder())
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_until_ready(&base, &mut child).await;

    let ready: serde_json::Value =
        reqwest::get(format!("{base}/readyz")).await.expect("answers").json().await.expect("JSON");
    assert_eq!(ready["dependencies"], serde_json::json!({"sqlite": "up"}), "the embedded store, no Redis");
    let data = folder.folder().join("data");
    for file in ["factors.db", "development-secrets.toml"] {
        assert!(data.join(file).is_file(), "data/{file} was created");
    }
    let minted = unconfigured(folder.folder())
        .args(["token", "mint", "--sub", "iam", "--org", "org-a", "--role", "IAM_OWNER"])
        .output()
        .await
        .expect("mints");
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    let token = String::from_utf8(minted.stdout).expect("utf-8");
    let answer = reqwest::Client::new()
        .get(format!("{base}/resources/v3alpha/users/nobody"))
        .bearer_auth(token.trim_end())
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status().as_u16(), 404, "the minted token is accepted; the user does not exist");

    child.start_kill().expect("killable");
    let output = child.wait_with_output().await.expect("waitable");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("token mint --sub"), "the log says how to mint a token: {log}");
    assert!(!log.contains("dev-only-"), "the generated secrets never reach the log: {log}");
}

/// Runs `factors migrate` with `url`, expecting it to fail; its stderr and stdout.
async fn refused(url: &str, variables: &[(&str, &str)]) -> (String, String) {
    let output = factors(url).arg("migrate").envs(variables.iter().copied()).output().await.expect("runs");
    assert!(!output.status.success(), "{url} is refused");
    (String::from_utf8_lossy(&output.stderr).into_owned(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn start_up_errors_say_once_what_failed_where_and_which_setting_to_change() {
    let db = TestDatabase::reserve().await;
    let server = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(db.url()).expect("a URL");
    let (host, port) = (server.get_host().to_owned(), server.get_port());
    let database = server.get_database().expect("named").to_owned();

    let closed = free_port();
    let started = std::time::Instant::now();
    let (unreachable, log) = refused(
        &format!("postgres://postgres:hunter2@127.0.0.1:{closed}/factors"),
        &[("FACTORS__DATABASE__CONNECT_WAIT", "1s")],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "the wait is bounded");
    assert!(
        unreachable.contains(&format!("PostgreSQL at 127.0.0.1:{closed}/factors cannot be reached")),
        "{unreachable}"
    );
    assert!(unreachable.contains("FACTORS__DATABASE__URL"), "{unreachable}");
    assert_eq!(unreachable.matches("Connection refused").count(), 1, "the cause once: {unreachable}");
    assert!(log.contains("not accepting connections yet"), "each retry is logged: {log}");

    let (missing, _) = refused(db.url(), &[("FACTORS__DATABASE__CREATE_DATABASE", "false")]).await;
    assert!(missing.contains(&format!("database \"{database}\" does not exist at {host}:{port}")), "{missing}");
    assert!(missing.contains("FACTORS__DATABASE__CREATE_DATABASE=true"), "{missing}");

    let (credentials, _) =
        refused(&format!("postgres://no_such_factors_role:hunter2@{host}:{port}/{database}"), &[]).await;
    assert!(credentials.contains("refused the user or password"), "{credentials}");
    assert!(credentials.contains("FACTORS__DATABASE__URL"), "{credentials}");

    let (malformed, _) = refused("postgres://postgres@127.0.0.1:notaport/factors", &[]).await;
    assert!(
        malformed.contains("is not a valid PostgreSQL URL") && malformed.contains("FACTORS__DATABASE__URL"),
        "{malformed}"
    );

    let (scheme, _) = refused("mysql://root:hunter2@127.0.0.1/factors", &[]).await;
    assert!(scheme.contains("must start with postgres:// or sqlite://"), "{scheme}");

    for message in [&unreachable, &missing, &credentials, &malformed, &scheme] {
        assert!(!message.contains("hunter2"), "passwords never show: {message}");
        assert_eq!(message.lines().filter(|l| !l.trim().is_empty()).count(), 1, "one line: {message}");
    }
}

#[tokio::test]
async fn a_database_that_is_still_starting_is_waited_for() {
    let db = TestDatabase::new().await;
    let server = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(db.url()).expect("a URL");
    let proxy = factors_testing::TcpProxy::start(&format!("{}:{}", server.get_host(), server.get_port())).await;
    proxy.down();
    let through_proxy =
        format!("postgres://{}@{}/{}", server.get_username(), proxy.addr(), server.get_database().expect("named"));
    let port = free_port();
    let mut child = factors(&through_proxy)
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env("FACTORS__DATABASE__CONNECT_WAIT", "30s")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(child.try_wait().expect("pollable").is_none(), "still waiting for the database");
    proxy.up();
    wait_until_ready(&format!("http://127.0.0.1:{port}"), &mut child).await;

    child.start_kill().expect("killable");
    let output = child.wait_with_output().await.expect("waitable");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("not accepting connections yet"), "the wait was logged: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_turns_not_ready_first_finishes_what_started_and_exits_in_time() {
    const USERS: usize = 48;
    let file = factors_testing::TestSqliteFile::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = factors(file.url())
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env("FACTORS__SERVER__DRAIN_DELAY", "1s")
        .stdout(Stdio::null())
        .spawn()
        .expect("starts");
    wait_until_ready(&base, &mut child).await;
    let minted = factors(file.url())
        .args(["token", "mint", "--sub", "iam", "--org", "org-a", "--role", "IAM_OWNER"])
        .output()
        .await
        .expect("mints");
    let admin = String::from_utf8(minted.stdout).expect("utf-8").trim_end().to_owned();
    let client = reqwest::Client::new();
    let removals = common::users_with_an_otp_sms(&client, &base, &admin, USERS).await;

    // Removals stream from four clients over kept-alive connections while SIGTERM comes.
    let signalled = std::time::Instant::now() + Duration::from_millis(300);
    let workers: Vec<_> = removals
        .chunks(USERS / 4)
        .map(|chunk| {
            let (client, base, admin, chunk) = (client.clone(), base.clone(), admin.clone(), chunk.to_vec());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for (user, otp) in chunk {
                    let started = std::time::Instant::now();
                    let answer = client
                        .delete(format!("{base}/resources/v3alpha/users/{user}/otp_sms/{otp}"))
                        .bearer_auth(&admin)
                        .send()
                        .await;
                    outcomes.push((user, otp, started, answer.map(|a| a.status().as_u16())));
                    tokio::time::sleep(Duration::from_millis(80)).await;
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep_until(signalled.into()).await;
    let pid = child.id().expect("running").to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs").success());
    // The signal reaches the service's handler a moment after `kill` returns (later still
    // on a loaded machine): readiness is asked until it has, and must still be answered.
    let mut readiness = client.get(format!("{base}/readyz")).send().await.expect("still serving while draining");
    let asked = std::time::Instant::now();
    while readiness.status().as_u16() == 200 && asked.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        readiness = client.get(format!("{base}/readyz")).send().await.expect("still serving while draining");
    }
    assert_eq!(readiness.status().as_u16(), 503, "not ready first");
    let body: serde_json::Value = readiness.json().await.expect("JSON");
    assert_eq!(body["status"], "draining");

    let exit =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("waits");
    assert!(exit.success(), "{exit:?}");
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.expect("worker"));
    }
    let served_while_draining =
        outcomes.iter().filter(|(_, _, started, answer)| *started > signalled && matches!(answer, Ok(200))).count();
    assert!(served_while_draining > 0, "removals were still served after the signal");

    let pool = sqlx::SqlitePool::connect(file.url()).await.expect("the file opens");
    for (user, otp, _, answer) in &outcomes {
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM otp_sms_authenticators WHERE id = ?1")
            .bind(otp)
            .fetch_one(&pool)
            .await
            .expect("readable");
        let events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = ?1 AND event_type = 'user.human.mfa.otp.sms.removed'",
        )
        .bind(user)
        .fetch_one(&pool)
        .await
        .expect("readable");
        match answer {
            Ok(200) => assert_eq!((held, events), (0, 1), "{user}: answered, so committed"),
            Ok(other) => panic!("{user}: {other}"),
            Err(_) => assert_eq!((held, events), (1, 0), "{user}: unanswered, so never started"),
        }
    }
}

/// `factors policy ...` against the service on `port`, found through server.addr as an
/// operator's shell would, with `token` in FACTORS_TOKEN (none: unset).
async fn policy(db: &TestDatabase, port: u16, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = factors(db.url());
    command.env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}")).env_remove("FACTORS_TOKEN").arg("policy");
    if let Some(token) = token {
        command.env("FACTORS_TOKEN", token);
    }
    command.args(args).output().await.expect("runs")
}

fn stdout_json(output: &std::process::Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the answer, as JSON, on stdout")
}

#[tokio::test]
async fn policy_set_and_get_act_through_the_running_service_with_the_callers_permissions() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let mut child =
        factors(db.url()).env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}")).spawn().expect("starts");
    wait_until_ready(&format!("http://127.0.0.1:{port}"), &mut child).await;
    let admin = mint(&db, "iam", "IAM_OWNER").await;
    let owner = mint(&db, "owner-a", "ORG_OWNER").await;
    let manager = mint(&db, "manager-a", "ORG_USER_MANAGER").await;

    let set =
        stdout_json(&policy(&db, port, Some(&admin), &["set", "--force-mfa", "true", "--step-up-max-age", "5m"]).await);
    assert_eq!(
        set["policy"],
        serde_json::json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": false})
    );
    assert_eq!(set["source"], "POLICY_SOURCE_INSTANCE");

    // org-a inherits the default; its owner changes one setting and keeps the rest.
    let inherited = stdout_json(&policy(&db, port, Some(&owner), &["get", "--org", "org-a"]).await);
    assert_eq!(
        (&inherited["source"], &inherited["policy"]),
        (&serde_json::json!("POLICY_SOURCE_INSTANCE"), &set["policy"])
    );
    let own = policy(&db, port, Some(&owner), &["set", "--org", "org-a", "--notify-on-removal", "true"]).await;
    let own = stdout_json(&own);
    assert_eq!(
        (&own["source"], &own["policy"]),
        (
            &serde_json::json!("POLICY_SOURCE_ORGANIZATION"),
            &serde_json::json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true})
        )
    );
    let read = policy(&db, port, Some(&owner), &["get", "--org", "org-a"]).await;
    assert_eq!(stdout_json(&read), own, "read back as set");
    assert!(String::from_utf8_lossy(&read.stdout).contains("\n  \"policy\""), "pretty JSON for a person");

    // A manager holds no policy permission: refused by the service, and said so.
    let refused = policy(&db, port, Some(&manager), &["set", "--org", "org-a", "--force-mfa", "false"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("403") && stderr.contains("AUTHZ-PermissionDenied"), "{stderr}");
    assert!(refused.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&refused.stdout));
    let unchanged = stdout_json(&policy(&db, port, Some(&owner), &["get", "--org", "org-a"]).await);
    assert_eq!(unchanged, own);

    let fractional = policy(&db, port, Some(&admin), &["set", "--step-up-max-age", "1500ms"]).await;
    let stderr = String::from_utf8_lossy(&fractional.stderr);
    assert!(!fractional.status.success() && stderr.contains("POLICY-InvalidStepUpAge"), "{stderr}");
    let tokenless = policy(&db, port, None, &["get"]).await;
    let stderr = String::from_utf8_lossy(&tokenless.stderr);
    assert!(!tokenless.status.success() && stderr.contains("FACTORS_TOKEN"), "{stderr}");
    let no_change = policy(&db, port, Some(&admin), &["set", "--org", "org-a"]).await;
    assert_eq!(no_change.status.code(), Some(2), "a usage error: {}", String::from_utf8_lossy(&no_change.stderr));

    child.start_kill().expect("killable");
    let _ = child.wait().await;
}
