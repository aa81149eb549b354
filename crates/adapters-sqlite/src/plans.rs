//! The query plan of every statement the store sends: each finds its rows by a key or an
//! index, on a fresh file (no statistics, as every database starts) and after `ANALYZE` of
//! a populated one, never by a scan, nor by walking everything the instance holds (an
//! index searched on `instance_id` alone). `EXPLAIN QUERY PLAN` is SQLite's own answer.

use factors_domain::InstanceId;
use factors_testing::TestSqliteFile;
use sqlx::SqlitePool;

use crate::{SqliteConfig, SqliteStore, inspection, policies, reads, sessions, writes};

/// Every statement of the store, by name.
const STATEMENTS: &[(&str, &str)] = &[
    ("LOAD_USER", reads::LOAD_USER),
    ("LOAD_USER_WITH_CODE", reads::LOAD_USER_WITH_CODE),
    ("LAST_SEQUENCE", reads::LAST_SEQUENCE),
    ("EVENTS_OF", inspection::EVENTS_OF),
    ("EVENTS_PAGE", reads::EVENTS_PAGE),
    ("FEED_PAGE", reads::FEED_PAGE),
    ("SEARCH_USERS_COUNT", reads::SEARCH_USERS_COUNT),
    ("SEARCH_USERS_PAGE", reads::SEARCH_USERS_PAGE),
    ("LOAD_SESSION", sessions::LOAD_SESSION),
    ("USER_AT", sessions::USER_AT),
    ("INSERT_SESSION", sessions::INSERT_SESSION),
    ("UPDATE_SESSION", sessions::UPDATE_SESSION),
    ("CLEAR_CHALLENGE", sessions::CLEAR_CHALLENGE),
    ("SET_CHALLENGE", sessions::SET_CHALLENGE),
    ("DELETE_SESSION", sessions::DELETE_SESSION),
    ("SESSIONS_OF", sessions::SESSIONS_OF),
    ("ANY_SESSION_OF", sessions::ANY_SESSION_OF),
    ("TAKE_SIGN_IN_TRY", sessions::TAKE_SIGN_IN_TRY),
    ("INSERT_USER", writes::INSERT_USER),
    ("APPEND_EVENT", writes::APPEND_EVENT),
    ("MOVE_USER", writes::MOVE_USER),
    ("MOVE_USER_TO_STATE", writes::MOVE_USER_TO_STATE),
    ("DELETE_USER", writes::DELETE_USER),
    ("ADD_AUTHENTICATOR", writes::ADD_AUTHENTICATOR),
    ("ADD_CODE", writes::ADD_CODE),
    ("DELETE_CODE", writes::DELETE_CODE),
    ("MARK_VERIFIED", writes::MARK_VERIFIED),
    ("REMOVE_AUTHENTICATOR", writes::REMOVE_AUTHENTICATOR),
    ("POLICY_VERSIONS", writes::POLICY_VERSIONS),
    ("INSERT_NOTICE", writes::INSERT_NOTICE),
    ("TAKE_CODE_TRY", writes::TAKE_CODE_TRY),
    ("BUDGET", writes::BUDGET),
    ("CHARGE", writes::CHARGE),
    ("FORGIVE", writes::FORGIVE),
    ("LOAD_POLICIES", policies::LOAD_POLICIES),
    ("INSERT_POLICY", policies::INSERT_POLICY),
    ("UPDATE_POLICY", policies::UPDATE_POLICY),
    ("CLAIM_NOTICES", policies::CLAIM_NOTICES),
    ("FINISH_NOTICE", policies::FINISH_NOTICE),
    ("RETRY_NOTICE", policies::RETRY_NOTICE),
    ("PENDING_NOTICES", inspection::PENDING_NOTICES),
    ("OLDEST_NOTICE", policies::OLDEST_NOTICE),
    ("RECORD_BREAKER", policies::RECORD_BREAKER),
    ("LAST_HAND_CLOSING", policies::LAST_HAND_CLOSING),
];

/// Statements that read everything of the instance in one table on purpose, and why.
const WHOLE_INSTANCE: &[(&str, &str)] = &[
    ("PENDING_NOTICES", "counts the instance's outbox (tests and operators), which holds only notices in flight"),
    ("CLAIM_NOTICES", "picks due notices from the instance's outbox, which holds only notices in flight"),
    ("OLDEST_NOTICE", "finds the oldest in the instance's outbox, which holds only notices in flight"),
    (
        "SEARCH_USERS_COUNT",
        "counts every user a search selects, which may be every user of the instance: an administrator's listing, \
         not a hot path",
    ),
    (
        "SEARCH_USERS_PAGE",
        "pages through the instance's users by key, sorting every user it selects: an administrator's listing, \
         not a hot path",
    ),
];

/// The steps of `statement`'s plan, every parameter bound to NULL.
async fn plan(pool: &SqlitePool, statement: &str) -> Vec<String> {
    let parameters = (1..=32).rev().find(|n| statement.contains(&format!("?{n}"))).unwrap_or(0);
    let explain = format!("EXPLAIN QUERY PLAN {statement}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
    for _ in 0..parameters {
        query = query.bind(None::<String>);
    }
    query.fetch_all(pool).await.unwrap_or_else(|e| panic!("{statement}: {e}")).into_iter().map(|r| r.3).collect()
}

/// The steps that read more than the statement's key selects: a scan, or an index
/// searched on the instance alone.
fn wide_steps(steps: &[String]) -> Vec<&String> {
    steps
        .iter()
        .filter(|step| {
            let scan = step.starts_with("SCAN ") && step.as_str() != "SCAN CONSTANT ROW";
            let instance_only =
                step.starts_with("SEARCH ") && step.ends_with("(instance_id=?)") || step.contains("(instance_id=?) ");
            scan || instance_only
        })
        .collect()
}

async fn store_on(file: &TestSqliteFile) -> SqliteStore {
    let config = SqliteConfig {
        url: file.url().to_owned(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(5),
    };
    SqliteStore::open(&config, InstanceId::new("inst").expect("valid")).await.expect("the store opens")
}

/// Fills every table the statements read with many rows of one instance, for `ANALYZE` to
/// find: the shape that led the planner astray (one instance, many users).
async fn populate(pool: &SqlitePool) {
    fill(pool).await;
    sqlx::raw_sql("ANALYZE").execute(pool).await.expect("analysed");
}

async fn fill(pool: &SqlitePool) {
    let script = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
         INSERT INTO users (instance_id, id, org_id, state, schema_id, data, email_verified, phone_verified, \
         created_at, changed_at, sequence) SELECT 'inst', 'u' || i, 'org-a', 1, 'human', '{}', 0, 0, \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1 FROM n; \
         INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, created_at) \
         SELECT 'inst', 'a' || substr(id, 2), id, '+4179' || (1000000 + substr(id, 2)), 1, created_at FROM users; \
         INSERT INTO otp_sms_codes (instance_id, otp_sms_id, code_hash, expires_at, failed_attempts, created_at) \
         SELECT 'inst', id, zeroblob(32), created_at, 0, created_at FROM otp_sms_authenticators; \
         INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, \
         created_at) SELECT 'inst', 'user', id, 1, 'user.human.added', '{}', 'admin', created_at FROM users;";
    sqlx::raw_sql(script).execute(pool).await.expect("populated");
}

#[tokio::test]
async fn every_statement_finds_its_rows_by_a_key_or_an_index_with_or_without_statistics() {
    let file = TestSqliteFile::new();
    let store = store_on(&file).await;
    for statistics in ["none", "after ANALYZE of a populated file"] {
        if statistics != "none" {
            populate(&store.writer).await;
        }
        let mut wide = Vec::new();
        for (name, statement) in STATEMENTS {
            let steps = plan(&store.readers, statement).await;
            let excused = WHOLE_INSTANCE.iter().any(|(excused, _)| excused == name);
            if !excused && !wide_steps(&steps).is_empty() {
                wide.push(format!("{name}: {steps:?}"));
            }
        }
        assert!(wide.is_empty(), "statistics {statistics}: statements that read more than their key:\n{wide:#?}");
    }
}

#[tokio::test]
async fn the_join_of_a_users_authenticators_uses_their_index_even_when_the_statistics_say_otherwise() {
    let file = TestSqliteFile::new();
    let store = store_on(&file).await;
    // Statistics claiming every user holds a million authenticators and the instance's
    // primary-key prefix picks one: the planner would walk the instance if it could choose.
    sqlx::raw_sql(
        "ANALYZE; DELETE FROM sqlite_stat1; \
         INSERT INTO sqlite_stat1 VALUES ('otp_sms_authenticators', 'otp_sms_authenticators_of_user', '1000000 1 1000000 1 1'); \
         INSERT INTO sqlite_stat1 VALUES ('otp_sms_authenticators', 'otp_sms_authenticators', '1000000 1 1'); \
         ANALYZE sqlite_schema;",
    )
    .execute(&store.writer)
    .await
    .expect("statistics planted");
    let reader = SqlitePool::connect(file.url()).await.expect("a fresh connection reads the statistics");
    for (name, statement) in [("LOAD_USER", reads::LOAD_USER), ("LOAD_USER_WITH_CODE", reads::LOAD_USER_WITH_CODE)] {
        let steps = plan(&reader, statement).await;
        assert!(
            steps.iter().any(|s| s.contains("otp_sms_authenticators_of_user (instance_id=? AND user_id=?)")),
            "{name}: {steps:?}"
        );
        assert!(wide_steps(&steps).is_empty(), "{name}: {steps:?}");
    }
}

#[tokio::test]
async fn opening_a_file_brings_the_statistics_of_its_tables_up_to_date() {
    let file = TestSqliteFile::new();
    let store = store_on(&file).await;
    fill(&store.writer).await;
    store.close().await;

    let reopened = store_on(&file).await;

    let analysed: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY tbl")
        .fetch_all(&reopened.readers)
        .await
        .expect("statistics are kept");
    for table in ["events", "otp_sms_authenticators", "users"] {
        assert!(analysed.iter().any(|t| t == table), "{table}: {analysed:?}");
    }
}

#[test]
fn a_step_on_the_instance_alone_or_a_scan_is_wide_and_a_key_lookup_is_not() {
    let steps = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let today = steps(&[
        "SEARCH u USING PRIMARY KEY (instance_id=? AND id=?)",
        "SEARCH a USING PRIMARY KEY (instance_id=?) LEFT-JOIN",
        "SCAN events",
    ]);
    assert_eq!(wide_steps(&today).len(), 2, "{today:?}");
    let fixed = steps(&[
        "SEARCH u USING PRIMARY KEY (instance_id=? AND id=?)",
        "SEARCH a USING COVERING INDEX otp_sms_authenticators_of_user (instance_id=? AND user_id=?) LEFT-JOIN",
        "SCAN CONSTANT ROW",
    ]);
    assert!(wide_steps(&fixed).is_empty(), "{fixed:?}");
}
