//! The cache and the limits on a Redis Cluster of three masters that the test starts on
//! loopback ports: the invariant under stress, and a master going away.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, lookups, stack, stress, until_up};
use factors_adapters_redis::{Keys, RateLimitConfig, RedisMetrics, SmsBudgets, SmsLimiter};
use factors_application::ports::SmsRateLimiter;
use factors_domain::{PhoneNumber, UserId};
use factors_testing::RedisCluster;

/// Users whose keys land on different masters (slots spread by their hash tags).
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_four_readers_and_a_writer_per_user_see_no_stale_read() {
    let cluster = RedisCluster::start().await;
    let stack = Arc::new(stack(config(&cluster.urls(), true), "factors:").await);
    until_up(&stack, "nobody-yet").await;

    let report = stress(stack.clone(), &USERS, 4, 2_000).await;

    assert_eq!(report.stale_reads, 0, "{report:?}");
    assert_eq!(report.removals, 2_000);
    assert!(lookups(&stack.metrics).0 > 0, "the cluster served decisions: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_master_dies_reads_removals_and_limits_still_answer() {
    let mut cluster = RedisCluster::start().await;
    let stack = stack(config(&cluster.urls(), true), "factors:").await;
    until_up(&stack, "nobody-yet").await;
    for (i, user) in USERS.iter().enumerate() {
        stack.create_user(user).await;
        stack.add(user, &format!("{user}-1"), &format!("+4179123450{i}")).await;
        assert_eq!(stack.lookup(user).await, [format!("{user}-1")]);
    }
    let limiter = SmsLimiter::new(
        Some(stack.redis.clone()),
        Keys::new("factors:", common::INSTANCE, b"a-test-secret"),
        RateLimitConfig { per_user: 5, per_phone: 5, window: Duration::from_secs(600), budgets: SmsBudgets::OFF },
        RedisMetrics::default(),
    );

    cluster.kill(1).await;

    for (i, user) in USERS.iter().enumerate() {
        stack.remove(user, &format!("{user}-1")).await;
        assert!(stack.lookup(user).await.is_empty(), "{user}: removed, and never shown again");
        let to = PhoneNumber::parse(&format!("+4179123451{i}")).expect("valid");
        assert!(limiter.try_acquire(&UserId::new(*user).expect("valid"), &to).await.is_ok(), "{user}: limits answer");
    }
}
