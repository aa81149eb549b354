//! The store's connections: opened with the settings the store documents, and left
//! usable by a caller that goes away in the middle of a transaction's start (a client that
//! disconnects while its removal waits for `BEGIN IMMEDIATE`): the next write starts, and
//! the file's log is not held.

use std::time::Duration;

use factors_domain::InstanceId;
use factors_testing::TestSqliteFile;

use crate::{JOURNAL_SIZE_LIMIT, MMAP_SIZE, SqliteConfig, SqliteStore};

async fn open(file: &TestSqliteFile) -> SqliteStore {
    let config =
        SqliteConfig { url: file.url().to_owned(), max_connections: 2, acquire_timeout: Duration::from_secs(2) };
    SqliteStore::open(&config, InstanceId::new("inst").expect("valid")).await.expect("the store opens")
}

#[tokio::test]
async fn every_connection_maps_the_file_and_bounds_its_log_as_documented() {
    let file = TestSqliteFile::new();
    let store = open(&file).await;
    for pool in [&store.writer, &store.readers] {
        let setting = |name: &'static str| async move {
            let value: i64 = sqlx::query_scalar(&format!("PRAGMA {name}")).fetch_one(pool).await.expect(name);
            value
        };
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.expect("journal_mode");
        assert_eq!(journal, "wal");
        assert_eq!(setting("mmap_size").await, i64::try_from(MMAP_SIZE).expect("fits"));
        // SQLite's default: a checkpoint every 10,000 pages halved nothing and made each
        // pause ten times as long (bench/REPORT.md).
        assert_eq!(setting("wal_autocheckpoint").await, 1000);
        assert_eq!(setting("journal_size_limit").await, i64::try_from(JOURNAL_SIZE_LIMIT).expect("fits"));
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_went_away_during_its_begin_leaves_the_writer_usable() {
    let file = TestSqliteFile::new();
    let config =
        SqliteConfig { url: file.url().to_owned(), max_connections: 2, acquire_timeout: Duration::from_secs(2) };
    let store = SqliteStore::open(&config, InstanceId::new("inst").expect("valid")).await.expect("the store opens");
    // The caller is dropped after a varying number of turns of the scheduler, so that some
    // attempts end while SQLite's worker has run the BEGIN and acknowledged it unread.
    for turns in (0..2000).map(|n| n % 40) {
        tokio::select! {
            biased;
            started = store.write() => drop(started.expect("a write starts")),
            () = async { for _ in 0..turns { tokio::task::yield_now().await } } => {}
        }
        let next = store.write().await;
        assert!(next.is_ok(), "after a caller went away at turn {turns}: {:?}", next.err());
    }
    store.close().await;
}
