//! The Redis client: single node, cluster, or the master Sentinels name, connected in the
//! background (a Redis that is not there at start-up does not delay start-up), every call
//! bounded by a short timeout and gated by the circuit breaker.
//!
//! Behind Sentinel, a failed call makes the client ask the Sentinels which server is master
//! now; when another one is, the client connects to it and the next calls go there. A
//! master demoted by a failover refuses writes (`READONLY`), which fail as any call does and
//! so lead to the new master too.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use factors_application::ports::DependencyState;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

use crate::breaker::{Breaker, BreakerConfig};
use crate::metrics::RedisMetrics;

#[derive(Clone)]
pub struct RedisConfig {
    /// One URL for a single node; the seed nodes for a cluster; the Sentinels for a master
    /// they watch (whose password and database, if any, are also the master's).
    pub urls: Vec<String>,
    pub cluster: bool,
    /// The name of the master the Sentinels at `urls` watch; `None` without Sentinel.
    pub sentinel_master: Option<String>,
    /// Bound on every call, connection included.
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    pub breaker: BreakerConfig,
}

/// URLs may hold passwords: debug output shows how many, never what.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("nodes", &self.urls.len())
            .field("cluster", &self.cluster)
            .field("sentinel_master", &self.sentinel_master)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("breaker", &self.breaker)
            .finish()
    }
}

/// Why a call did not happen or did not answer. Callers fall back; they never fail a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// Not called: the circuit is open or no connection is established yet.
    #[error("redis was not called")]
    Bypassed,
    /// Called, and it failed or did not answer in time.
    #[error("redis failed or timed out")]
    Failed,
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A shared handle to Redis.
pub struct Redis {
    /// This client, for the tasks it starts.
    me: Weak<Self>,
    config: RedisConfig,
    connection: RwLock<Option<Connection>>,
    /// Behind Sentinel: the address of the master connected to.
    master: RwLock<Option<String>>,
    /// Behind Sentinel: whether the Sentinels are being asked for the master.
    following: AtomicBool,
    breaker: Breaker,
    metrics: RedisMetrics,
    /// Whether the last call (a command or the probe) failed: Redis is degraded from then
    /// until a call succeeds, not only once the breaker opens.
    last_failed: AtomicBool,
    /// Whether a call failed since the probe last looked: the next probe reports it even if
    /// Redis answers that probe, so no failure goes unreported between two probes.
    unreported_failure: AtomicBool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("cluster", &self.config.cluster)
            .field("nodes", &self.config.urls.len())
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Starts connecting in the background and returns at once.
    ///
    /// # Errors
    /// When no URL is given or a URL is malformed.
    pub fn start(config: RedisConfig, metrics: RedisMetrics) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(!config.urls.is_empty(), "redis.url names no server");
        anyhow::ensure!(
            !(config.cluster && config.sentinel_master.is_some()),
            "redis.cluster and redis.sentinel_master exclude each other: a cluster fails over by itself"
        );
        for url in &config.urls {
            redis::Client::open(url.as_str()).map_err(|e| anyhow::anyhow!("redis.url is not a Redis URL: {e}"))?;
        }
        let breaker = Breaker::new(config.breaker);
        // Until connected, Redis is not called at all: the gauge says open.
        metrics.circuit(crate::BreakerState::Open);
        let redis = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config,
            connection: RwLock::new(None),
            master: RwLock::new(None),
            following: AtomicBool::new(false),
            breaker,
            metrics,
            last_failed: AtomicBool::new(false),
            unreported_failure: AtomicBool::new(false),
        });
        tokio::spawn(Self::connect_until_connected(Arc::downgrade(&redis)));
        Ok(redis)
    }

    /// A connection, and behind Sentinel the master's address.
    async fn connect(config: &RedisConfig) -> RedisResult<(Connection, Option<String>)> {
        if let Some(master) = &config.sentinel_master {
            let (client, address) = Self::master_client(config, master).await?;
            return Ok((Self::managed(client, config).await?, Some(address)));
        }
        if config.cluster {
            let client = ClusterClientBuilder::new(config.urls.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(0)
                .build()?;
            Ok((Connection::Cluster(client.get_async_connection().await?), None))
        } else {
            let client = redis::Client::open(config.urls[0].as_str())?;
            Ok((Self::managed(client, config).await?, None))
        }
    }

    /// A connection to one server through a manager, which reconnects by itself.
    async fn managed(client: redis::Client, config: &RedisConfig) -> RedisResult<Connection> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(Connection::Single(ConnectionManager::new_with_config(client, manager_config).await?))
    }

    /// A client of the server the Sentinels at `config.urls` name master of `master` now,
    /// with the URLs' password and database, and its address; bounded by the connect
    /// timeout.
    async fn master_client(config: &RedisConfig, master: &str) -> RedisResult<(redis::Client, String)> {
        let settings = config.urls[0].as_str().into_connection_info()?.redis_settings().clone();
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
        let mut sentinels =
            SentinelClient::build(config.urls.clone(), master.to_owned(), Some(node), SentinelServerType::Master)?;
        let client =
            tokio::time::timeout(config.connect_timeout, sentinels.async_get_client()).await.map_err(|_| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no Sentinel named the master within the connect timeout",
                ))
            })??;
        let address = client.get_connection_info().addr().to_string();
        Ok((client, address))
    }

    /// Behind Sentinel: asks the Sentinels which server is master now and, when it is not
    /// the one connected to, connects to it. One such task at a time; a failed call starts it.
    fn follow_master(&self) {
        let (Some(master), Some(this)) = (self.config.sentinel_master.clone(), self.me.upgrade()) else { return };
        if self.following.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(async move {
            let moved = async {
                let (client, address) = Self::master_client(&this.config, &master).await?;
                let current = this.master.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                if current.as_deref() == Some(address.as_str()) {
                    return Ok::<_, redis::RedisError>(None);
                }
                let connection = Self::managed(client, &this.config).await?;
                *this.connection.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(connection);
                *this.master.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(address.clone());
                Ok(Some(address))
            }
            .await;
            match moved {
                Ok(Some(address)) => tracing::info!(master = %address, "the Redis master moved; following it"),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "the Sentinels did not name a master"),
            }
            this.following.store(false, Ordering::SeqCst);
        });
    }

    /// Retries with a growing pause until connected. Once connected, the connection
    /// (manager or cluster client) reconnects by itself.
    async fn connect_until_connected(redis: Weak<Self>) {
        let mut pause = Duration::from_millis(100);
        loop {
            let Some(this) = redis.upgrade() else { return };
            match Self::connect(&this.config).await {
                Ok((connection, master)) => {
                    *this.master.write().unwrap_or_else(std::sync::PoisonError::into_inner) = master;
                    *this.connection.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(connection);
                    this.metrics.circuit(this.breaker.state());
                    tracing::info!(cluster = this.config.cluster, "connected to Redis");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, retry_in = ?pause, "Redis is not reachable; serving without it"),
            }
            drop(this);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Waits up to `within` for the first connection; `false` when Redis did not answer in
    /// time (the service then starts without it and connects later).
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.current().is_none() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn current(&self) -> Option<Connection> {
        self.connection.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Runs `call` on a connection, bounded by the command timeout and gated by the breaker.
    ///
    /// # Errors
    /// [`RedisError::Bypassed`] when not called, [`RedisError::Failed`] when it failed.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(connection) = self.current() else { return Err(RedisError::Bypassed) };
        let allowed = self.breaker.allow(Instant::now());
        self.metrics.circuit(self.breaker.state());
        if !allowed {
            return Err(RedisError::Bypassed);
        }
        let outcome = tokio::time::timeout(self.config.command_timeout, call(connection)).await;
        match outcome {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                self.last_failed.store(false, Ordering::SeqCst);
                self.metrics.circuit(self.breaker.state());
                Ok(value)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "a Redis call failed");
                self.failed()
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.config.command_timeout, "a Redis call timed out");
                self.failed()
            }
        }
    }

    fn failed<T>(&self) -> Result<T, RedisError> {
        self.follow_master();
        self.last_failed.store(true, Ordering::SeqCst);
        self.unreported_failure.store(true, Ordering::SeqCst);
        self.breaker.record_failure(Instant::now());
        self.metrics.redis_error();
        self.metrics.circuit(self.breaker.state());
        Err(RedisError::Failed)
    }

    /// `HGET key field`.
    pub(crate) async fn hget(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, RedisError> {
        self.call(|mut c| async move { redis::cmd("HGET").arg(key).arg(field).query_async(&mut c).await }).await
    }

    /// Runs a Lua script on one key.
    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[String],
    ) -> Result<T, RedisError> {
        self.call(|mut c| async move {
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async(&mut c).await
        })
        .await
    }

    /// `ZREM key member`.
    pub(crate) async fn zrem(&self, key: &str, member: &str) -> Result<(), RedisError> {
        self.call(|mut c| async move { redis::cmd("ZREM").arg(key).arg(member).query_async(&mut c).await }).await
    }

    /// Asks Redis with a write of `key` (through the breaker and the timeout, as every
    /// call): up when it takes it and no call failed since the last probe, degraded
    /// otherwise. A write, not `PING`: a Redis that answers but refuses writes (a master
    /// demoted by a failover, a full memory) cannot serve the cache or the limits. A
    /// command that failed between two probes is reported by the second, even if Redis
    /// answers it. factors stays ready either way: Redis only makes it faster.
    pub async fn probe(&self, key: &str) -> DependencyState {
        let unreported = self.unreported_failure.swap(false, Ordering::SeqCst);
        let set = self
            .call(|mut c| async move {
                redis::cmd("SET").arg(key).arg("1").arg("PX").arg(60_000).query_async::<()>(&mut c).await
            })
            .await;
        if set.is_err() {
            // Reported by this very answer.
            self.unreported_failure.store(false, Ordering::SeqCst);
        }
        if set.is_ok() && !unreported { DependencyState::Up } else { DependencyState::Degraded }
    }

    /// Up when connected, with the circuit closed and the last call answered; degraded
    /// from any failed call until one succeeds (no call is made here).
    pub fn state(&self) -> DependencyState {
        match (self.current().is_some(), self.breaker.state(), self.last_failed.load(Ordering::SeqCst)) {
            (true, crate::BreakerState::Closed, false) => DependencyState::Up,
            _ => DependencyState::Degraded,
        }
    }

    pub fn metrics(&self) -> &RedisMetrics {
        &self.metrics
    }
}
