//! The Postgres store against a real server, one fresh database per test: the store
//! contract suite, and what only Postgres itself can be asked.

use factors_adapters_postgres::PgStore;
use factors_application::ports::{
    AuditLog, EventStream, FeedCursor, StoreInspection, UserPage, UserReader, UserWriter, WriteError,
};
use factors_domain::InstanceId;
use factors_store_contract::Fixture;
use factors_testing::TestDatabase;

fn instance() -> InstanceId {
    InstanceId::new("inst").expect("valid")
}

async fn fixture() -> Fixture {
    let db = TestDatabase::new().await;
    let store = PgStore::new(&db.pool().await, instance());
    Fixture::new(store, db)
}

factors_store_contract::store_contract!(fixture);

/// Appends an event for `id` in the transaction `tx` has open.
async fn append_in(tx: &mut sqlx::PgConnection, id: &str) {
    sqlx::query(
        "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, created_at) \
         VALUES ('inst', 'user', $1, 1, 'user.human.added', '{}', 'admin', now())",
    )
    .bind(id)
    .execute(tx)
    .await
    .expect("appended");
}

/// The ids of the feed's next page after `after`, once it holds `expect` events (other
/// tests' transactions on the server hold the feed back a moment), and its last cursor.
async fn fed_ids(store: &PgStore, after: FeedCursor, expect: usize) -> (Vec<String>, FeedCursor) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = store.feed_page(after, 100).await.expect("readable");
        if page.len() >= expect || std::time::Instant::now() > deadline {
            let last = page.last().map_or(after, |e| e.cursor);
            return (page.into_iter().map(|e| e.aggregate_id).collect(), last);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Positions are taken at insert, commits come in any order: an event inserted first by a
/// transaction that commits last must still reach a reader who already read past the
/// position of one inserted after it. A cursor on positions alone would skip it.
#[tokio::test]
async fn an_event_whose_transaction_commits_after_a_later_positioned_one_still_reaches_the_feed() {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let store = PgStore::new(&pool, instance());
    let mut early = pool.acquire().await.expect("a connection");
    let mut late = pool.acquire().await.expect("a connection");

    // `early` takes its transaction id first, `late` inserts first.
    sqlx::query("BEGIN").execute(&mut *early).await.expect("began");
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *early).await.expect("an id");
    sqlx::query("BEGIN").execute(&mut *late).await.expect("began");
    append_in(&mut late, "inserted-first").await;
    append_in(&mut early, "inserted-second").await;
    sqlx::query("COMMIT").execute(&mut *early).await.expect("committed");

    let (read, cursor) = fed_ids(&store, FeedCursor::default(), 1).await;
    assert_eq!(read, ["inserted-second"], "its transaction is older than every open one");
    sqlx::query("COMMIT").execute(&mut *late).await.expect("committed");
    let (read, cursor) = fed_ids(&store, cursor, 1).await;
    assert_eq!(read, ["inserted-first"], "the reader past the later position still gets it");
    assert_eq!(fed_ids(&store, cursor, 0).await.0, [] as [String; 0], "each once");
}

/// The reverse: the transaction that commits first has the later id and position; a reader
/// past it must still get the other one when it commits.
#[tokio::test]
async fn a_reader_past_a_committed_event_still_gets_one_an_older_open_transaction_commits_later() {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let store = PgStore::new(&pool, instance());
    let mut open = pool.acquire().await.expect("a connection");
    let mut quick = pool.acquire().await.expect("a connection");

    sqlx::query("BEGIN").execute(&mut *open).await.expect("began");
    append_in(&mut open, "slow").await;
    sqlx::query("BEGIN").execute(&mut *quick).await.expect("began");
    append_in(&mut quick, "quick").await;
    sqlx::query("COMMIT").execute(&mut *quick).await.expect("committed");

    let (read, cursor) = fed_ids(&store, FeedCursor::default(), 0).await;
    assert_eq!(read, [] as [String; 0], "the quick one waits behind the open one");
    sqlx::query("COMMIT").execute(&mut *open).await.expect("committed");
    let (read, cursor) = fed_ids(&store, cursor, 2).await;
    assert_eq!(read, ["slow", "quick"]);
    assert_eq!(fed_ids(&store, cursor, 0).await.0, [] as [String; 0]);
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, created_at) \
         VALUES ('inst', 'user', 'alice', 1, 'user.human.added', '{}', 'admin', now())",
    )
    .execute(&pool)
    .await
    .expect("appended");

    let update = sqlx::query("UPDATE events SET event_type = 'x'").execute(&pool).await;
    let delete = sqlx::query("DELETE FROM events").execute(&pool).await;

    for (what, result) in [("update", update), ("delete", delete)] {
        let refused = result.expect_err(what);
        assert!(refused.to_string().contains("events are append-only"), "{what}: {refused}");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.expect("count");
    assert_eq!(left, 1);
}

#[tokio::test]
async fn a_store_of_another_instance_sees_nothing_of_this_one() {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let ours = PgStore::new(&pool, instance());
    let theirs = PgStore::new(&pool, InstanceId::new("other").expect("valid"));

    ours.create(&creation("alice")).await.expect("created");

    assert_eq!(theirs.load(&uid("alice")).await.expect("readable"), None);
    assert_eq!(theirs.last_sequence(&uid("alice")).await.expect("readable"), 0);
    assert!(theirs.events_of(EventStream::User(&uid("alice"))).await.expect("readable").is_empty());
    assert_eq!(theirs.search(&factors_store_contract::everyone()).await.expect("readable"), UserPage::default());
}

#[tokio::test]
async fn statements_cut_off_by_cancelled_requests_never_confuse_the_next_ones() {
    let db = TestDatabase::new().await;
    // One connection: every statement after a cut-off one runs on the very same connection.
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(db.url()).await.expect("connects");
    let store = PgStore::new(&pool, instance());
    for id in ["alice", "bob"] {
        store.create(&creation(id)).await.expect("created");
    }
    let (alice, bob) = (uid("alice"), uid("bob"));

    for attempt in 0..200u64 {
        // Cut off at every stage: before sending, mid-answer, after the answer.
        let cut_after = std::time::Duration::from_micros(attempt % 40 * 25);
        let _ = tokio::time::timeout(cut_after, store.load(&alice)).await;
        let read = store.load(&bob).await.expect("readable").expect("bob exists");
        assert_eq!(read.user.id, bob, "attempt {attempt}: the answer is bob's own");
    }
}

#[tokio::test]
async fn a_session_created_while_a_deletion_waits_for_its_user_makes_the_deletion_decide_again() {
    let db = TestDatabase::new().await;
    let pool = db.pool().await;
    let store = PgStore::new(&pool, instance());
    store.create(&creation("alice")).await.expect("created");
    let snapshot = store.load(&uid("alice")).await.expect("readable").expect("alice exists");
    let admin = factors_domain::Caller {
        user_id: uid("admin"),
        org: None,
        grants: vec![factors_domain::Grant {
            permission: factors_domain::Permission::UserDelete,
            scope: factors_domain::Scope::Instance,
        }],
        authentication: factors_domain::Authentication::default(),
        origin: Default::default(),
    };
    let login = factors_domain::PolicyInForce::resolve(None, None);
    // Decided while alice holds no session.
    let deletion =
        factors_domain::plan_deletion(&admin, &uid("alice"), Some(&snapshot), &[], &login, chrono::Utc::now())
            .expect("the rules allow it");
    // A session being created for alice: until it commits, its transaction holds her row
    // (the session's foreign key).
    let mut creating = pool.begin().await.expect("begins");
    sqlx::query(
        "INSERT INTO sessions (instance_id, id, user_id, user_org_id, token_hash, created_at, changed_at, sequence) \
         VALUES ('inst', 's1', 'alice', 'org-a', $1, now(), now(), 1)",
    )
    .bind(vec![7u8; 32])
    .execute(&mut *creating)
    .await
    .expect("inserted");

    let deleting = tokio::spawn(async move { store.apply(&deletion).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!deleting.is_finished(), "the deletion waits for alice's row");
    creating.commit().await.expect("committed");
    let outcome = deleting.await.expect("joined");

    assert!(matches!(outcome, Err(WriteError::Conflict)), "a session it did not plan to end: {outcome:?}");
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE id = 's1'").fetch_one(&pool).await.expect("count");
    assert_eq!(sessions, 1, "the session stays, and alice with it, until a deletion ends it with its event");
}

fn uid(id: &str) -> factors_domain::UserId {
    factors_domain::UserId::new(id).expect("valid")
}

fn creation(id: &str) -> factors_domain::Creation {
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
    factors_domain::Creation::new(
        factors_domain::User {
            id: uid(id),
            org: factors_domain::OrgId::new("org-a").expect("valid"),
            state: factors_domain::UserState::Active,
            schema_id: factors_domain::SchemaId::new("human").expect("valid"),
            data: factors_domain::UserData::default(),
            contact: factors_domain::Contact::default(),
            created: at,
            changed: at,
            sequence: 0,
        },
        &factors_store_contract::admin(),
        0,
        at,
    )
}
