//! The in-process tier of the snapshot cache: the snapshots this process read or wrote
//! last, in front of the shared tier in Redis (or alone, without Redis).
//!
//! A UI reads a user and then removes one of its authenticators; when both requests reach
//! the same process, the removal decides on what the read left here and sends only its
//! guarded write to the database. Staleness is handled exactly as for Redis: nothing is
//! answered from here, and a decision made on an old version is refused by the store.

use std::sync::Arc;

use async_trait::async_trait;
use factors_application::ports::SnapshotCache;
use factors_domain::{UserId, UserSnapshot};

use crate::RedisMetrics;
use crate::metrics::Lookup;

/// A kept snapshot, with the weight it was given when kept.
#[derive(Clone)]
struct Kept {
    snapshot: Arc<UserSnapshot>,
    weight: u64,
}

#[derive(Clone)]
struct ByWeight;

impl quick_cache::Weighter<UserId, Kept> for ByWeight {
    fn weight(&self, _: &UserId, kept: &Kept) -> u64 {
        kept.weight
    }
}

/// About how many bytes a snapshot holds: user data is free-form and may be large, so
/// the tier is bounded by size, not by count.
fn weight(snapshot: &UserSnapshot) -> u64 {
    fn json(value: &serde_json::Value) -> u64 {
        match value {
            serde_json::Value::String(s) => 24 + s.len() as u64,
            serde_json::Value::Array(items) => 24 + items.iter().map(json).sum::<u64>(),
            serde_json::Value::Object(map) => 48 + map.iter().map(|(k, v)| 32 + k.len() as u64 + json(v)).sum::<u64>(),
            _ => 16,
        }
    }
    let data = snapshot.user.data.as_map().iter().map(|(k, v)| 32 + k.len() as u64 + json(v)).sum::<u64>();
    512 + data + 160 * snapshot.otp_sms.len() as u64
}

/// Snapshots kept in this process, bounded by their total size, over an optional shared
/// tier: a miss here asks the shared tier and keeps what it answers. What a read saw goes
/// to both tiers, unless this process kept that version (or a newer one) already, which
/// means it was shared already too; what a write left stays here, for this process's next
/// decision, and reaches the shared tier with the next read. (A replica whose own tier
/// holds the user decides on that, not on the shared one, so sharing every write would
/// cost a Redis call per write for the few decisions that miss here.)
pub struct LocalSnapshots {
    kept: quick_cache::sync::Cache<UserId, Kept, ByWeight>,
    shared: Option<Arc<dyn SnapshotCache>>,
    metrics: RedisMetrics,
}

impl LocalSnapshots {
    /// Keeps snapshots up to about `bytes` in total, in front of `shared`.
    pub fn new(bytes: u64, shared: Option<Arc<dyn SnapshotCache>>, metrics: RedisMetrics) -> Self {
        let estimated_items = usize::try_from(bytes / 1_024).unwrap_or(usize::MAX).max(16);
        Self { kept: quick_cache::sync::Cache::with_weighter(estimated_items, bytes, ByWeight), shared, metrics }
    }

    /// Holds `snapshot` here unless a newer version is held; whether it was held.
    fn hold(&self, snapshot: &UserSnapshot) -> bool {
        let newer = self.kept.peek(&snapshot.user.id).is_none_or(|k| k.snapshot.user.sequence < snapshot.user.sequence);
        if newer {
            let weight = weight(snapshot);
            self.kept.insert(snapshot.user.id.clone(), Kept { snapshot: Arc::new(snapshot.clone()), weight });
        }
        newer
    }
}

#[async_trait]
impl SnapshotCache for LocalSnapshots {
    async fn get(&self, user: &UserId) -> Option<UserSnapshot> {
        if let Some(kept) = self.kept.get(user) {
            self.metrics.lookup(Lookup::Hit);
            return Some(kept.snapshot.as_ref().clone());
        }
        let Some(shared) = &self.shared else {
            self.metrics.lookup(Lookup::Miss);
            return None;
        };
        let found = shared.get(user).await?;
        self.hold(&found);
        Some(found)
    }

    async fn put(&self, snapshot: &UserSnapshot) {
        if self.hold(snapshot)
            && let Some(shared) = &self.shared
        {
            shared.put(snapshot).await;
        }
    }

    async fn keep(&self, snapshot: &UserSnapshot) {
        self.hold(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use factors_domain::{Contact, OrgId, SchemaId, User, UserData, UserState};

    fn snapshot(id: &str, sequence: u64, data: serde_json::Value) -> UserSnapshot {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().expect("valid");
        UserSnapshot {
            user: User {
                id: UserId::new(id).expect("valid"),
                org: OrgId::new("org-a").expect("valid"),
                state: UserState::Active,
                schema_id: SchemaId::new("human").expect("valid"),
                data: UserData::new(data).expect("object"),
                contact: Contact::default(),
                created: at,
                changed: at,
                sequence,
            },
            otp_sms: vec![],
        }
    }

    /// A shared tier that records what reaches it.
    #[derive(Default)]
    struct Shared(std::sync::Mutex<Vec<u64>>);

    #[async_trait]
    impl SnapshotCache for Shared {
        async fn get(&self, user: &UserId) -> Option<UserSnapshot> {
            (user.as_str() == "bob").then(|| snapshot("bob", 9, serde_json::json!({})))
        }

        async fn put(&self, snapshot: &UserSnapshot) {
            self.0.lock().expect("lock").push(snapshot.user.sequence);
        }
    }

    #[tokio::test]
    async fn a_kept_version_is_served_an_older_one_never_replaces_it_and_each_version_is_shared_once() {
        let shared = Arc::new(Shared::default());
        let local = LocalSnapshots::new(1 << 20, Some(shared.clone()), RedisMetrics::default());

        local.put(&snapshot("alice", 3, serde_json::json!({}))).await;
        local.put(&snapshot("alice", 3, serde_json::json!({}))).await;
        local.put(&snapshot("alice", 2, serde_json::json!({}))).await;

        let alice = UserId::new("alice").expect("valid");
        assert_eq!(local.get(&alice).await.map(|s| s.user.sequence), Some(3));
        assert_eq!(*shared.0.lock().expect("lock"), [3], "shared once, and never the older one");
    }

    #[tokio::test]
    async fn what_a_write_left_stays_in_this_process_until_a_read_shares_it() {
        let shared = Arc::new(Shared::default());
        let local = LocalSnapshots::new(1 << 20, Some(shared.clone()), RedisMetrics::default());
        let alice = UserId::new("alice").expect("valid");

        local.keep(&snapshot("alice", 4, serde_json::json!({}))).await;
        let decided_on = local.get(&alice).await.map(|s| s.user.sequence);
        local.put(&snapshot("alice", 5, serde_json::json!({}))).await;

        assert_eq!(decided_on, Some(4), "this process decides on what its write left");
        assert_eq!(*shared.0.lock().expect("lock"), [5], "only the read reached the shared tier");
    }

    #[tokio::test]
    async fn a_miss_asks_the_shared_tier_and_keeps_its_answer() {
        let local = LocalSnapshots::new(1 << 20, Some(Arc::new(Shared::default())), RedisMetrics::default());
        let bob = UserId::new("bob").expect("valid");

        assert_eq!(local.get(&bob).await.map(|s| s.user.sequence), Some(9));
        assert_eq!(local.kept.peek(&bob).map(|k| k.snapshot.user.sequence), Some(9));
        assert_eq!(local.get(&UserId::new("carol").expect("valid")).await, None);
    }

    #[tokio::test]
    async fn the_tier_is_bounded_by_size_so_large_user_data_cannot_fill_memory() {
        let local = LocalSnapshots::new(64 * 1_024, None, RedisMetrics::default());
        let big = serde_json::json!({"blob": "x".repeat(8 * 1_024)});

        for n in 0..100 {
            local.put(&snapshot(&format!("u{n}"), 1, big.clone())).await;
        }

        assert!(local.kept.weight() <= 64 * 1_024, "{} bytes kept", local.kept.weight());
        assert!(local.kept.len() < 10, "{} snapshots kept", local.kept.len());
    }
}
