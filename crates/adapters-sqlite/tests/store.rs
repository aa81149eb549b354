//! The SQLite store on a fresh file per test: the store contract suite, and what only
//! SQLite itself can be asked.

use factors_adapters_sqlite::{SqliteConfig, SqliteStore};
use factors_application::ports::{EventStream, StoreInspection, UserPage, UserReader, UserWriter};
use factors_domain::InstanceId;
use factors_store_contract::Fixture;
use factors_testing::TestSqliteFile;

fn instance() -> InstanceId {
    InstanceId::new("inst").expect("valid")
}

fn config(file: &TestSqliteFile) -> SqliteConfig {
    SqliteConfig { url: file.url().to_owned(), max_connections: 4, acquire_timeout: std::time::Duration::from_secs(5) }
}

async fn open(file: &TestSqliteFile, instance: InstanceId) -> SqliteStore {
    SqliteStore::open(&config(file), instance).await.expect("the store opens")
}

async fn fixture() -> Fixture {
    let file = TestSqliteFile::new();
    let store = open(&file, instance()).await;
    Fixture::new(store, file)
}

factors_store_contract::store_contract!(fixture);

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let file = TestSqliteFile::new();
    let store = open(&file, instance()).await;
    store.create(&creation("alice")).await.expect("created");
    let pool = sqlx::SqlitePool::connect(file.url()).await.expect("opens");

    let update = sqlx::query("UPDATE events SET event_type = 'x'").execute(&pool).await;
    let delete = sqlx::query("DELETE FROM events").execute(&pool).await;

    for (what, result) in [("update", update), ("delete", delete)] {
        let refused = result.expect_err(what);
        assert!(refused.to_string().contains("events are append-only"), "{what}: {refused}");
    }
    assert_eq!(store.events_of(EventStream::User(&uid("alice"))).await.expect("readable").len(), 1);
}

#[tokio::test]
async fn a_store_of_another_instance_sees_nothing_of_this_one() {
    let file = TestSqliteFile::new();
    let ours = open(&file, instance()).await;
    let theirs = open(&file, InstanceId::new("other").expect("valid")).await;

    ours.create(&creation("alice")).await.expect("created");

    assert_eq!(theirs.load(&uid("alice")).await.expect("readable"), None);
    assert_eq!(theirs.last_sequence(&uid("alice")).await.expect("readable"), 0);
    assert!(theirs.events_of(EventStream::User(&uid("alice"))).await.expect("readable").is_empty());
    assert_eq!(theirs.search(&factors_store_contract::everyone()).await.expect("readable"), UserPage::default());
}

#[tokio::test]
async fn the_file_and_its_folder_are_created_and_reopened_with_what_they_hold() {
    let file = TestSqliteFile::new();
    let nested = format!("sqlite://{}", file.folder().join("a/b/factors.db").display());
    let config = SqliteConfig { url: nested, ..config(&file) };

    let first = SqliteStore::open(&config, instance()).await.expect("opens, creating a/b");
    first.create(&creation("alice")).await.expect("created");
    let node = first.allocate_id_node().await.expect("a node");
    first.close().await;
    let again = SqliteStore::open(&config, instance()).await.expect("reopens; migrations already applied");

    assert!(again.load(&uid("alice")).await.expect("readable").is_some(), "alice survived the reopening");
    assert_ne!(again.allocate_id_node().await.expect("a node"), node, "each start takes another id node");
}

#[tokio::test]
async fn an_in_memory_database_is_refused_naming_the_setting() {
    let config =
        SqliteConfig { url: "sqlite::memory:".into(), max_connections: 1, acquire_timeout: Default::default() };
    let refused = SqliteStore::open(&config, instance()).await.expect_err("memory is refused").to_string();
    assert!(refused.contains("database.url") && refused.contains("in a file"), "{refused}");
}

fn uid(id: &str) -> factors_domain::UserId {
    factors_domain::UserId::new(id).expect("valid")
}

fn creation(id: &str) -> factors_domain::Creation {
    let at = chrono::Utc::now();
    let user = factors_domain::User {
        id: uid(id),
        org: factors_domain::OrgId::new("org").expect("valid"),
        state: factors_domain::UserState::Active,
        schema_id: factors_domain::SchemaId::new("human").expect("valid"),
        data: factors_domain::UserData::new(serde_json::json!({})).expect("object"),
        contact: factors_domain::Contact::default(),
        created: at,
        changed: at,
        sequence: 0,
    };
    factors_domain::Creation::new(user, &factors_store_contract::admin(), 0, at)
}
