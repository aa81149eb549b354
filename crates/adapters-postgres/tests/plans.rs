//! The plan PostgreSQL runs for every statement of the store (`sql.rs`), in the store's own
//! session settings (one generic plan per statement): each finds its rows by a key or an
//! index on tables of realistic size after `ANALYZE`, never by a sequential scan, nor by an
//! index searched on the instance alone.

use factors_adapters_postgres::sql;
use factors_testing::TestDatabase;
use sqlx::Connection;

/// Every statement of the store, by name.
const STATEMENTS: &[(&str, &str)] = &[
    ("LOAD_USER", sql::LOAD_USER),
    ("LOAD_USER_WITH_CODE", sql::LOAD_USER_WITH_CODE),
    ("LAST_SEQUENCE", sql::LAST_SEQUENCE),
    ("CREATE_USER", sql::CREATE_USER),
    ("ADD_OTP_SMS", sql::ADD_OTP_SMS),
    ("VERIFY_OTP_SMS", sql::VERIFY_OTP_SMS),
    ("REMOVE_OTP_SMS", sql::REMOVE_OTP_SMS),
    ("DELETE_USER", sql::DELETE_USER),
    ("SET_STATE", sql::SET_STATE),
    ("TAKE_CODE_TRY", sql::TAKE_CODE_TRY),
    ("FORGIVE_CODE_TRY", sql::FORGIVE_CODE_TRY),
    ("EVENTS_OF", sql::EVENTS_OF),
    ("EVENTS_PAGE", sql::EVENTS_PAGE),
    ("FEED_PAGE", sql::FEED_PAGE),
    ("SEARCH_USERS_COUNT", sql::SEARCH_USERS_COUNT),
    ("SEARCH_USERS_PAGE", sql::SEARCH_USERS_PAGE),
    ("LOAD_SESSION", sql::LOAD_SESSION),
    ("CREATE_SESSION", sql::CREATE_SESSION),
    ("UPDATE_SESSION", sql::UPDATE_SESSION),
    ("DELETE_SESSION", sql::DELETE_SESSION),
    ("SESSIONS_OF", sql::SESSIONS_OF),
    ("LOCK_USER", sql::LOCK_USER),
    ("TAKE_SIGN_IN_TRY", sql::TAKE_SIGN_IN_TRY),
    ("LOAD_POLICIES", sql::LOAD_POLICIES),
    ("APPLY_POLICY", sql::APPLY_POLICY),
    ("CLAIM_NOTICES", sql::CLAIM_NOTICES),
    ("FINISH_NOTICE", sql::FINISH_NOTICE),
    ("RETRY_NOTICE", sql::RETRY_NOTICE),
    ("PENDING_NOTICES", sql::PENDING_NOTICES),
    ("OLDEST_NOTICE", sql::OLDEST_NOTICE),
    ("RECORD_BREAKER", sql::RECORD_BREAKER),
    ("LAST_HAND_CLOSING", sql::LAST_HAND_CLOSING),
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

/// Twenty thousand users of one instance, each with an authenticator, a pending code, an
/// event, a session with a challenge, a budget row, an organization policy and a notice.
const POPULATE: &str = "INSERT INTO users (instance_id, id, org_id, state, schema_id, created_at, changed_at, sequence) \
     SELECT 'inst', 'u' || i, 'org' || i, 1, 'human', now(), now(), 1 FROM generate_series(1, 20000) i; \
     INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, created_at) \
     SELECT 'inst', 'a' || i, 'u' || i, '+4179' || (1000000 + i), true, now() FROM generate_series(1, 20000) i; \
     INSERT INTO otp_sms_codes (instance_id, otp_sms_id, code_hash, expires_at, created_at) \
     SELECT 'inst', 'a' || i, decode(repeat('00', 32), 'hex'), now(), now() FROM generate_series(1, 20000) i; \
     INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, created_at) \
     SELECT 'inst', 'user', 'u' || i, 1, 'user.human.added', '{}', 'admin', now() FROM generate_series(1, 20000) i; \
     INSERT INTO sessions (instance_id, id, user_id, user_org_id, token_hash, created_at, changed_at, sequence) \
     SELECT 'inst', 's' || i, 'u' || i, 'org' || i, decode(repeat('00', 32), 'hex'), now(), now(), 1 \
     FROM generate_series(1, 20000) i; \
     INSERT INTO session_challenges (instance_id, session_id, otp_sms_id, code_hash, expires_at, created_at) \
     SELECT 'inst', 's' || i, 'a' || i, decode(repeat('00', 32), 'hex'), now(), now() FROM generate_series(1, 20000) i; \
     INSERT INTO code_check_failures (instance_id, user_id, window_start, failures) \
     SELECT 'inst', 'u' || i, now(), 1 FROM generate_series(1, 20000) i; \
     INSERT INTO login_policies (instance_id, aggregate_type, aggregate_id, force_mfa, step_up_max_age_seconds, \
     notify_on_removal, created_at, changed_at, sequence) \
     SELECT 'inst', 'org', 'org' || i, false, 0, false, now(), now(), 1 FROM generate_series(1, 20000) i; \
     INSERT INTO notice_outbox (instance_id, id, kind, user_id, phone, created_at, available_at) \
     SELECT 'inst', 'n' || i, 'otp_sms_removed', 'u' || i, '+41791234567', now(), now() FROM generate_series(1, 20000) i; \
     ANALYZE;";

/// The lines of `statement`'s generic plan, every parameter NULL, in the store's settings.
async fn plan(connection: &mut sqlx::PgConnection, name: &str, statement: &str) -> Vec<String> {
    let parameters = (1..=40).rev().find(|n| statement.contains(&format!("${n}::"))).unwrap_or(0);
    let prepared = format!("PREPARE plan_of_{} AS {statement}", name.to_lowercase());
    sqlx::raw_sql(&prepared).execute(&mut *connection).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    let nulls = vec!["NULL"; parameters].join(", ");
    let execute = if parameters == 0 {
        format!("EXPLAIN EXECUTE plan_of_{}", name.to_lowercase())
    } else {
        format!("EXPLAIN EXECUTE plan_of_{}({nulls})", name.to_lowercase())
    };
    sqlx::query_scalar(&execute).fetch_all(&mut *connection).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The lines that read more than the statement's key selects: a sequential scan, or an
/// index searched on the instance alone.
fn wide_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|line| {
            line.contains("Seq Scan")
                || line.trim_start().starts_with("Index Cond: (instance_id = $1)")
                    && line.trim_end().ends_with("(instance_id = $1)")
        })
        .collect()
}

#[tokio::test]
async fn every_statement_finds_its_rows_by_a_key_or_an_index_in_its_generic_plan() {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    sqlx::raw_sql(POPULATE).execute(&pool).await.expect("populated and analysed");
    let mut connection = sqlx::PgConnection::connect(db.url()).await.expect("connects");
    for (name, value) in sql::SESSION_SETTINGS {
        sqlx::raw_sql(&format!("SET {name} = {value}")).execute(&mut connection).await.expect("set");
    }

    let mut wide = Vec::new();
    for (name, statement) in STATEMENTS {
        let lines = plan(&mut connection, name, statement).await;
        let excused = WHOLE_INSTANCE.iter().any(|(excused, _)| excused == name);
        if !excused && !wide_lines(&lines).is_empty() {
            wide.push(format!("{name}:\n{}", lines.join("\n")));
        }
    }
    assert!(wide.is_empty(), "statements that read more than their key:\n{}", wide.join("\n\n"));
}
