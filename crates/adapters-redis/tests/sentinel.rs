//! Redis behind Sentinel: the client connects to the master the Sentinels name, and when a
//! failover promotes the replica (the master killed as a crash would), the client's writes
//! land on the new master without a restart.

mod common;

use std::time::{Duration, Instant};

use common::config;
use factors_adapters_redis::{Keys, Redis, RedisConfig, RedisMetrics};
use factors_application::ports::DependencyState;
use factors_testing::{MASTER_NAME, RedisSentinels};

fn behind_sentinel(urls: &str) -> RedisConfig {
    RedisConfig {
        sentinel_master: Some(MASTER_NAME.to_owned()),
        command_timeout: Duration::from_millis(200),
        ..config(urls, false)
    }
}

/// Whether the server at `url` holds `key`.
async fn holds(url: &str, key: &str) -> bool {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connects");
    let held: i64 = redis::cmd("EXISTS").arg(key).query_async(&mut connection).await.expect("answers");
    held == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_the_client_follows_the_master_a_failover_promotes() {
    let mut sentinels = RedisSentinels::start().await;
    let redis = Redis::start(behind_sentinel(&sentinels.sentinel_urls()), RedisMetrics::default()).expect("valid");
    assert!(redis.wait_connected(Duration::from_secs(5)).await, "connects through the Sentinels");
    let key = Keys::new("sentinel:", "inst", b"a-test-secret").probe();
    assert_eq!(redis.probe(&key).await, DependencyState::Up);
    let first_master = sentinels.master_url().await;
    assert!(holds(&first_master, &key).await, "the write went to the master the Sentinels name");

    sentinels.kill_master().await;
    let killed = Instant::now();
    let mut degraded = false;
    loop {
        match redis.probe(&key).await {
            DependencyState::Up if degraded => break,
            DependencyState::Up => {}
            _ => degraded = true,
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "no write landed within 30 s of the master's death");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new_master = sentinels.master_url().await;
    assert_ne!(new_master, first_master, "the Sentinels promoted another server");
    assert_eq!(new_master, sentinels.replica_url(), "the replica");
    let fresh = Keys::new("sentinel-after:", "inst", b"a-test-secret").probe();
    assert_eq!(redis.probe(&fresh).await, DependencyState::Up);
    assert!(holds(&new_master, &fresh).await, "writes land on the new master");
}

#[test]
fn sentinel_and_cluster_exclude_each_other() {
    let both = RedisConfig { cluster: true, ..behind_sentinel("redis://127.0.0.1:26379") };
    let refused = Redis::start(both, RedisMetrics::default()).expect_err("refused");
    assert!(refused.to_string().contains("exclude each other"), "{refused}");
}
