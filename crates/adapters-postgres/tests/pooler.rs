//! The Postgres store behind PgBouncer in transaction mode (`database.pooler =
//! "transaction"`), which gives a client a server connection only for the length of a
//! transaction: the whole store contract through it, and the start-up probe that refuses
//! such a pooler when the setting is missing.
//!
//! These need PgBouncer (`apt-get install pgbouncer`), which a fresh machine may lack, so
//! they are ignored in a plain `cargo test`; run them with
//! `cargo test -p factors-adapters-postgres --test pooler -- --ignored` (`.ci/run` does).

use std::time::Duration;

use factors_adapters_postgres::{PgConfig, PgStore, Pooler};
use factors_domain::InstanceId;
use factors_store_contract::Fixture;
use factors_testing::{TestDatabase, TestPooler};

fn config(url: String, pooler: Pooler) -> PgConfig {
    PgConfig {
        url,
        max_connections: 5,
        acquire_timeout: Duration::from_secs(5),
        create_database: false,
        pooler,
        migration_url: None,
    }
}

async fn fixture() -> Fixture {
    let db = TestDatabase::new().await;
    let pooler = TestPooler::start().await;
    let pool = factors_adapters_postgres::connect(&config(pooler.url_of(&db), Pooler::Transaction), Duration::ZERO)
        .await
        .expect("connects through PgBouncer with database.pooler = transaction");
    let store = PgStore::behind(&pool, InstanceId::new("inst").expect("valid"), Pooler::Transaction);
    Fixture::new(store, (db, pooler))
}

factors_store_contract::store_contract!(
    fixture,
    ignore = "needs PgBouncer: cargo test -p factors-adapters-postgres --test pooler -- --ignored"
);

#[tokio::test]
#[ignore = "needs PgBouncer: cargo test -p factors-adapters-postgres --test pooler -- --ignored"]
async fn without_the_setting_start_up_refuses_a_transaction_pooler_and_names_the_setting() {
    let db = TestDatabase::new().await;
    let pooler = TestPooler::start().await;

    let refused = factors_adapters_postgres::connect(&config(pooler.url_of(&db), Pooler::None), Duration::ZERO)
        .await
        .expect_err("statements prepared once per connection cannot run behind a transaction pooler");

    let message = format!("{refused:#}");
    assert!(message.contains("pooler in transaction mode"), "{message}");
    assert!(message.contains("database.pooler = \"transaction\""), "{message}");
    assert!(message.contains("FACTORS__DATABASE__POOLER"), "{message}");
    // The same database, reached directly, passes the probe.
    factors_adapters_postgres::connect(&config(db.url().to_owned(), Pooler::None), Duration::ZERO)
        .await
        .expect("PostgreSQL itself is no pooler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PgBouncer: cargo test -p factors-adapters-postgres --test pooler -- --ignored"]
async fn statements_cut_off_at_any_point_leave_no_transaction_open_and_the_store_serving() {
    use factors_application::ports::UserReader;
    let db = TestDatabase::new().await;
    let pooler = TestPooler::start().await;
    let pool = factors_adapters_postgres::connect(&config(pooler.url_of(&db), Pooler::Transaction), Duration::ZERO)
        .await
        .expect("connects");
    let store = PgStore::behind(&pool, InstanceId::new("inst").expect("valid"), Pooler::Transaction);
    let ghost = factors_domain::UserId::new("ghost").expect("valid");

    // Cut off between every pair of messages a lease sends: before BEGIN's answer, between
    // the statement's parse and execute, before COMMIT's answer.
    for i in 0..300_u64 {
        let _ = tokio::time::timeout(Duration::from_micros(20 + i * 7), store.load(&ghost)).await;
    }
    // Every pooled connection lent again (the pool holds five).
    let loads = (0..20).map(|_| store.load(&ghost));
    for read in futures::future::join_all(loads).await {
        assert_eq!(read.expect("the store still serves"), None);
    }

    let direct = db.pool().await;
    let name = db.url().rsplit('/').next().expect("a database name").to_owned();
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
    )
    .bind(&name)
    .fetch_one(&direct)
    .await
    .expect("pg_stat_activity");
    assert_eq!(open, 0, "a server left in a transaction holds PgBouncer's connection and its locks");
}
