//! The Postgres store against a real server: one fresh database per test.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use factors_adapters_postgres::PgStore;
use factors_application::ports::{
    AddOtpSmsError, DeleteUserError, InsertUserError, NewOtpSms, OtpSmsReader, OtpSmsWriter, RemoveOtpSmsError,
    UserReader, UserWriter, VerificationAttempt, VerifyOtpSmsError,
};
use factors_domain::{
    CodeKey, CodePolicy, CodeRejection, Contact, Event, EventKind, InstanceId, OrgId, OtpSmsAuthenticator, OtpSmsId,
    PendingCode, PhoneNumber, Removal, SchemaId, User, UserData, UserId, UserState, VerificationCode,
};
use factors_testing::TestDatabase;
use sqlx::PgPool;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, minute, 0).single().expect("valid time")
}

fn uid(id: &str) -> UserId {
    UserId::new(id).expect("valid")
}

fn oid(id: &str) -> OtpSmsId {
    OtpSmsId::new(id).expect("valid")
}

fn key() -> CodeKey {
    CodeKey::new([9u8; 32]).expect("32 bytes")
}

struct Fixture {
    _db: TestDatabase,
    pool: PgPool,
    store: PgStore,
}

async fn fixture() -> Fixture {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let store = PgStore::new(pool.clone(), InstanceId::new("inst").expect("valid"));
    Fixture { _db: db, pool, store }
}

fn user(id: &str) -> User {
    User {
        id: uid(id),
        org: OrgId::new("org-a").expect("valid"),
        state: UserState::Active,
        schema_id: SchemaId::new("human").expect("valid"),
        data: UserData::new(serde_json::json!({"name": "Ada"})).expect("object"),
        contact: Contact::default(),
        created: at(0),
        changed: at(0),
        sequence: 1,
    }
}

fn event(user: &str, minute: u32, kind: EventKind) -> Event {
    Event { user: uid(user), actor: uid("admin"), at: at(minute), kind }
}

async fn create_user(store: &PgStore, id: &str) {
    let added = event(
        id,
        0,
        EventKind::UserAdded {
            org: OrgId::new("org-a").expect("valid"),
            schema_id: SchemaId::new("human").expect("valid"),
        },
    );
    store.insert_user(&user(id), &added).await.expect("user inserted");
}

fn new_otp(user: &str, id: &str, phone: &str, code: Option<&str>, minute: u32) -> NewOtpSms {
    let phone = PhoneNumber::parse(phone).expect("valid phone");
    NewOtpSms {
        pending_code: code.map(|c| {
            PendingCode::issue(
                key().hash(&oid(id), &VerificationCode::parse(c).expect("digits")),
                at(minute),
                &CodePolicy::default(),
            )
        }),
        event: event(
            user,
            minute,
            EventKind::OtpSmsAdded { authenticator: oid(id), masked_phone: phone.masked(), verified: code.is_none() },
        ),
        authenticator: OtpSmsAuthenticator {
            id: oid(id),
            user: uid(user),
            phone,
            verified: code.is_none(),
            created: at(minute),
        },
    }
}

fn removal(user: &str, id: &str, minute: u32) -> Removal {
    Removal {
        user: uid(user),
        authenticator: oid(id),
        event: event(
            user,
            minute,
            EventKind::OtpSmsRemoved { authenticator: oid(id), masked_phone: "+41******567".into() },
        ),
    }
}

fn attempt(user: &str, id: &str, code: &str, minute: u32) -> VerificationAttempt {
    VerificationAttempt {
        user: uid(user),
        authenticator: oid(id),
        presented: key().hash(&oid(id), &VerificationCode::parse(code).expect("digits")),
        policy: CodePolicy::default(),
        now: at(minute),
        event: event(user, minute, EventKind::OtpSmsVerified { authenticator: oid(id) }),
    }
}

/// The authenticators of a user as the store lists them (for the user as read now).
async fn list(store: &PgStore, user: &str) -> Vec<OtpSmsAuthenticator> {
    match store.find_user(&uid(user)).await.expect("readable") {
        Some(found) => store.list_otp_sms(&found).await.expect("listed"),
        None => Vec::new(),
    }
}

async fn events(pool: &PgPool, user: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT sequence, event_type FROM events WHERE aggregate_id = $1 ORDER BY position")
        .bind(user)
        .fetch_all(pool)
        .await
        .expect("events readable")
}

async fn pending_codes(pool: &PgPool, otp: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM otp_sms_codes WHERE otp_sms_id = $1")
        .bind(otp)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_user_is_stored_and_read_back_as_written() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;

    let read = f.store.find_user(&uid("alice")).await.expect("readable").expect("found");

    assert_eq!(read, user("alice"));
    assert_eq!(f.store.find_user(&uid("ghost")).await.expect("readable"), None);
    assert_eq!(events(&f.pool, "alice").await, vec![(1, "user.human.added".to_owned())]);
}

#[tokio::test]
async fn a_taken_user_id_is_already_exists_and_writes_no_event() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;

    let again = f.store.insert_user(&user("alice"), &event("alice", 1, EventKind::UserRemoved)).await;

    assert!(matches!(again, Err(InsertUserError::AlreadyExists)));
    assert_eq!(events(&f.pool, "alice").await.len(), 1);
}

#[tokio::test]
async fn adding_authenticators_moves_the_user_and_lists_them_oldest_first() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;

    let first = f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", Some("123456"), 1)).await.expect("added");
    f.store.add_otp_sms(&new_otp("alice", "a2", "+41791234568", None, 2)).await.expect("added");

    assert_eq!((first.created, first.changed, first.owner.as_str()), (at(0), at(1), "org-a"));
    let listed = list(&f.store, "alice").await;
    assert_eq!(listed.iter().map(|a| (a.id.as_str(), a.verified)).collect::<Vec<_>>(), [("a1", false), ("a2", true)]);
    assert_eq!(f.store.find_user(&uid("alice")).await.expect("readable").expect("found").sequence, 3);
    assert_eq!(pending_codes(&f.pool, "a1").await, 1);
}

#[tokio::test]
async fn the_same_number_twice_on_one_user_is_refused_but_another_user_may_use_it() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    create_user(&f.store, "bob").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", None, 1)).await.expect("added");

    let twice = f.store.add_otp_sms(&new_otp("alice", "a2", "+41791234567", None, 2)).await;
    let other_user = f.store.add_otp_sms(&new_otp("bob", "b1", "+41791234567", None, 2)).await;

    assert!(matches!(twice, Err(AddOtpSmsError::PhoneTaken)));
    assert!(other_user.is_ok());
    assert_eq!(events(&f.pool, "alice").await.len(), 2, "the refused add wrote no event");
}

#[tokio::test]
async fn adding_to_a_missing_user_is_user_not_found() {
    let f = fixture().await;
    let result = f.store.add_otp_sms(&new_otp("ghost", "g1", "+41791234567", None, 1)).await;
    assert!(matches!(result, Err(AddOtpSmsError::UserNotFound)));
}

#[tokio::test]
async fn removal_deletes_the_authenticator_voids_its_codes_and_appends_one_event() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", Some("123456"), 1)).await.expect("added");

    let details = f.store.remove_otp_sms(&removal("alice", "a1", 5)).await.expect("removed");

    assert_eq!(details.changed, at(5));
    assert!(list(&f.store, "alice").await.is_empty());
    assert_eq!(pending_codes(&f.pool, "a1").await, 0);
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM events WHERE event_type = 'user.human.mfa.otp.sms.removed'")
            .fetch_one(&f.pool)
            .await
            .expect("one removal event");
    assert_eq!(payload["otpSmsId"], "a1");
    assert_eq!(payload["phone"], "+41******567");
    assert_eq!(payload["actor"], "admin");
    // The code sent for it can no longer be used.
    let late = f.store.verify_otp_sms(&attempt("alice", "a1", "123456", 6)).await;
    assert!(matches!(late, Err(VerifyOtpSmsError::NotFound)));
}

#[tokio::test]
async fn a_second_removal_or_one_through_another_user_is_not_found_and_changes_nothing() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    create_user(&f.store, "bob").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", None, 1)).await.expect("added");

    let through_bob = f.store.remove_otp_sms(&removal("bob", "a1", 2)).await;
    f.store.remove_otp_sms(&removal("alice", "a1", 3)).await.expect("removed");
    let second = f.store.remove_otp_sms(&removal("alice", "a1", 4)).await;

    assert!(matches!(through_bob, Err(RemoveOtpSmsError::NotFound)));
    assert!(matches!(second, Err(RemoveOtpSmsError::NotFound)));
    assert_eq!(f.store.find_user(&uid("bob")).await.expect("readable").expect("found").sequence, 1, "bob untouched");
    assert_eq!(events(&f.pool, "alice").await.len(), 3, "added, otp added, one removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_fifty_concurrent_removals_exactly_one_succeeds() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", None, 1)).await.expect("added");

    let attempts = (0..50).map(|_| {
        let store = f.store.clone();
        tokio::spawn(async move { store.remove_otp_sms(&removal("alice", "a1", 2)).await })
    });
    let results: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(|r| r.expect("task ran")).collect();

    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Err(RemoveOtpSmsError::NotFound))).count(), 49);
    let removals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'user.human.mfa.otp.sms.removed'")
            .fetch_one(&f.pool)
            .await
            .expect("count");
    assert_eq!(removals, 1);
}

#[tokio::test]
async fn the_right_code_verifies_once() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", Some("123456"), 1)).await.expect("added");

    f.store.verify_otp_sms(&attempt("alice", "a1", "123456", 2)).await.expect("verified");
    let again = f.store.verify_otp_sms(&attempt("alice", "a1", "123456", 3)).await;

    assert!(list(&f.store, "alice").await[0].verified);
    assert!(matches!(again, Err(VerifyOtpSmsError::AlreadyVerified)));
    assert_eq!(pending_codes(&f.pool, "a1").await, 0, "the code is used up");
}

#[tokio::test]
async fn wrong_codes_count_even_though_they_fail_and_five_void_the_code() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", Some("123456"), 1)).await.expect("added");

    for try_number in 1..=5 {
        let wrong = f.store.verify_otp_sms(&attempt("alice", "a1", "000000", 2)).await;
        assert!(
            matches!(wrong, Err(VerifyOtpSmsError::Rejected(CodeRejection::Wrong { void })) if void == (try_number == 5)),
            "try {try_number}: {wrong:?}"
        );
    }
    let right_but_late = f.store.verify_otp_sms(&attempt("alice", "a1", "123456", 2)).await;

    assert!(matches!(right_but_late, Err(VerifyOtpSmsError::Rejected(CodeRejection::Exhausted))));
    assert!(!list(&f.store, "alice").await[0].verified);
    assert_eq!(events(&f.pool, "alice").await.len(), 2, "failed tries write no events");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", Some("123456"), 1)).await.expect("added");

    let mut late = attempt("alice", "a1", "123456", 1);
    late.now = at(1) + TimeDelta::minutes(10);
    let result = f.store.verify_otp_sms(&late).await;

    assert!(matches!(result, Err(VerifyOtpSmsError::Rejected(CodeRejection::Expired))));
}

#[tokio::test]
async fn deleting_a_user_takes_its_authenticators_and_codes_and_a_recreated_id_continues_its_events() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", Some("123456"), 1)).await.expect("added");

    f.store.delete_user(&uid("alice"), &event("alice", 5, EventKind::UserRemoved)).await.expect("deleted");
    let twice = f.store.delete_user(&uid("alice"), &event("alice", 6, EventKind::UserRemoved)).await;
    create_user(&f.store, "alice").await;

    assert!(matches!(twice, Err(DeleteUserError::NotFound)));
    assert!(list(&f.store, "alice").await.is_empty());
    assert_eq!(pending_codes(&f.pool, "a1").await, 0);
    let sequences: Vec<i64> = events(&f.pool, "alice").await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;

    let update = sqlx::query("UPDATE events SET event_type = 'x'").execute(&f.pool).await;
    let delete = sqlx::query("DELETE FROM events").execute(&f.pool).await;

    assert!(update.is_err() && delete.is_err());
    assert_eq!(events(&f.pool, "alice").await.len(), 1);
}

#[tokio::test]
async fn changed_always_moves_and_the_event_carries_the_same_time_even_from_a_clock_behind() {
    let f = fixture().await;
    create_user(&f.store, "alice").await;
    let added = f.store.add_otp_sms(&new_otp("alice", "a1", "+41791234567", None, 30)).await.expect("added");

    // A replica whose clock is 20 minutes behind removes it.
    let removed = f.store.remove_otp_sms(&removal("alice", "a1", 10)).await.expect("removed");

    assert!(removed.changed > added.changed, "{} then {}", added.changed, removed.changed);
    let at: DateTime<Utc> =
        sqlx::query_scalar("SELECT created_at FROM events WHERE event_type = 'user.human.mfa.otp.sms.removed'")
            .fetch_one(&f.pool)
            .await
            .expect("one removal event");
    assert_eq!(at, removed.changed);
}
