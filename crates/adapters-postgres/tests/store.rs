//! The Postgres store against a real server, one fresh database per test: the store
//! contract suite, and what only Postgres itself can be asked.

use factors_adapters_postgres::PgStore;
use factors_domain::InstanceId;
use factors_store_contract::Fixture;
use factors_testing::TestDatabase;

fn instance() -> InstanceId {
    InstanceId::new("inst").expect("valid")
}

async fn fixture() -> Fixture {
    let db = TestDatabase::new().await;
    let store = PgStore::new(db.pool().await, instance());
    Fixture::new(store, db)
}

factors_store_contract::store_contract!(fixture);

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
    let ours = Fixture::new(PgStore::new(pool.clone(), instance()), ());
    let theirs = PgStore::new(pool, InstanceId::new("other").expect("valid"));
    let user = factors_domain::UserId::new("alice").expect("valid");
    let creation = factors_domain::Creation::new(
        factors_domain::User {
            id: user.clone(),
            org: factors_domain::OrgId::new("org-a").expect("valid"),
            state: factors_domain::UserState::Active,
            schema_id: factors_domain::SchemaId::new("human").expect("valid"),
            data: factors_domain::UserData::default(),
            contact: factors_domain::Contact::default(),
            created: chrono::Utc::now(),
            changed: chrono::Utc::now(),
            sequence: 0,
        },
        &user,
        0,
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid"),
    );
    ours.store.create(&creation).await.expect("created");

    use factors_application::ports::{AuditLog, UserReader};
    assert_eq!(theirs.load(&user).await.expect("readable"), None);
    assert_eq!(theirs.last_sequence(&user).await.expect("readable"), 0);
    assert!(theirs.events_of(&user).await.expect("readable").is_empty());
}
