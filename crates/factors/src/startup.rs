//! Wiring: settings in, a listening server out. [`Application::build`] connects and
//! migrates the database, builds the adapters and use cases, and binds the listener, so
//! tests can ask for port 0 and read the port back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use factors_adapters_redis::{CachedSnapshots, Keys, LocalSnapshots, Redis, RedisMetrics, SmsLimiter};
use factors_adapters_sms::SmsMetrics;
use factors_api_grpc::{GrpcOptions, GrpcState, HealthTask};
use factors_api_http::metrics::{HttpMetrics, MetricsRegistry};
use factors_api_http::origin::ClientAddresses;
use factors_api_http::{AppState, HttpOptions};
use factors_application::InstanceContext;
use factors_application::notices::NoticeWorker;
use factors_application::ports::{
    Clock, DependencyState, Readiness, ReadinessProbe, SecurityMetrics, SmsSender, SnapshotCache, TokenVerifier,
};
use factors_application::use_cases::{Ports, Rules, UseCases};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::metrics::{DependencyGauges, SecurityCounters};
use crate::serve::ConnectionLimits;
use crate::settings::Settings;
use crate::store::Store;
use crate::system::{FlakeIds, OsRngCodes, OsRngTokens, SystemClock};

/// A built service, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    shutdown_timeout: Duration,
    /// After the signal, how long the service keeps serving while not ready.
    drain_delay: Duration,
    /// Set at the signal: `/readyz` and gRPC health then answer not ready.
    draining: Arc<AtomicBool>,
    limits: ConnectionLimits,
    /// The admin port (`server.admin_addr`) and what it serves, when configured.
    admin: Option<(TcpListener, axum::Router)>,
    /// Keeps gRPC health in step with readiness while the application lives.
    _health: HealthTask,
    /// Sends the outbox's notices while the application lives.
    _notices: NoticeTask,
}

/// Aborts the notice worker on drop. A send cut off this way is sent again once its
/// claim runs out (`notices.lease`), under the same idempotency key.
struct NoticeTask(tokio::task::JoinHandle<()>);

impl Drop for NoticeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds an [`Application`]; adapters can be swapped before building (tests use this to
/// capture SMS).
pub struct ApplicationBuilder<'a> {
    settings: &'a Settings,
    sms: Option<Arc<dyn SmsSender>>,
}

impl ApplicationBuilder<'_> {
    /// Sends SMS with `sms` instead of the provider `sms.provider` names (which is still
    /// checked). `sms` is used as given: `sms.timeout` bounds only the configured senders.
    #[must_use]
    pub fn sms_sender(mut self, sms: Arc<dyn SmsSender>) -> Self {
        self.sms = Some(sms);
        self
    }

    /// # Errors
    /// When the settings are invalid, the database cannot be reached or migrated, or the
    /// address cannot be bound.
    pub async fn build(self) -> anyhow::Result<Application> {
        let settings = self.settings;
        let tokens = Arc::new(settings.token_verifier()?);
        let mut rules = rules(settings)?;
        let mut registry = Registry::default();
        // Checked before anything connects, so a bad SMS setting fails start-up at once.
        let configured_sms = settings.sms_sender(&SmsMetrics::register(&mut registry))?;
        let notice_options = settings.notice_options()?;
        let clients = settings.client_addresses()?;

        // On a thread of its own, so start-up does not wait for it and requests rarely do.
        tokio::task::spawn_blocking(factors_domain::PhoneNumber::load_metadata);
        let opened = crate::store::open(settings, rules.context.id.clone(), settings.database.migrate_on_start).await?;
        let store = opened.store;
        rules.replica = replica(opened.id_node);
        let http_metrics = HttpMetrics::register(&mut registry);
        let security_metrics: Arc<dyn SecurityMetrics> = Arc::new(SecurityCounters::register(&mut registry));
        let near = NearTier::start(settings, &rules.context, opened.name, &mut registry).await?;

        let draining = Arc::new(AtomicBool::new(false));
        let readiness: Arc<dyn ReadinessProbe> = Arc::new(Dependencies {
            store: store.clone(),
            store_name: opened.name,
            redis: near.redis.map(|redis| (redis, near.probe_key)),
            draining: draining.clone(),
            gauges: DependencyGauges::register(&mut registry),
        });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // The provider's HTTP client bounds each send by `sms.timeout`; there is no second
        // timeout around it.
        let sms: Arc<dyn SmsSender> = self.sms.unwrap_or(configured_sms);
        let notices_ready = Arc::new(tokio::sync::Notify::new());
        let notice_worker = NoticeWorker {
            instance: rules.context.id.clone(),
            outbox: store.clone(),
            sms: sms.clone(),
            limits: near.rate_limiter.clone(),
            clock: clock.clone(),
            options: notice_options,
            ready: notices_ready.clone(),
            metrics: security_metrics.clone(),
        };
        let ports = Ports {
            users: store.clone(),
            writer: store.clone(),
            policies: store.clone(),
            sessions: store.clone(),
            audit: store,
            cache: near.cache,
            sms,
            rate_limiter: near.rate_limiter,
            ids: Arc::new(FlakeIds::new(opened.id_node)),
            codes: Arc::new(OsRngCodes),
            tokens: Arc::new(OsRngTokens),
            clock,
            metrics: security_metrics,
            notices: notices_ready,
        };
        let use_cases = UseCases::new(&ports, &rules);
        let served = Served::build(settings, tokens, readiness, use_cases, http_metrics, registry, clients).await?;
        Ok(Application {
            listener: served.listener,
            addr: served.addr,
            router: served.router,
            admin: served.admin,
            shutdown_timeout: settings.server.shutdown_timeout,
            drain_delay: settings.server.drain_delay,
            draining,
            limits: ConnectionLimits {
                header_read_timeout: settings.server.header_read_timeout,
                idle_timeout: settings.server.idle_timeout,
                max_connections: settings.server.max_connections,
            },
            _health: served.health,
            _notices: NoticeTask(tokio::spawn(notice_worker.run())),
        })
    }
}

/// What the settings decide for the use cases, each checked before anything connects.
fn rules(settings: &Settings) -> anyhow::Result<Rules> {
    Ok(Rules {
        context: Arc::new(settings.instance.context()?),
        code_key: settings.code_key()?,
        code_policy: settings.code_policy()?,
        check_budget: settings.check_budget()?,
        self_service: settings.policy.self_service,
        removal: settings.removal_policy(),
        revoke_sessions_on_removal: settings.policy.revoke_sessions_on_removal,
        sms_countries: settings.sms_countries()?,
        sms_budgets: settings.rate_limits.config()?.budgets,
        sms_breaker: settings.sms_breaker()?,
        // Named once the store has given the process its id node.
        replica: String::new(),
    })
}

/// This process among the replicas: its host name (`HOSTNAME`, a Kubernetes pod's name)
/// and its id node, which no other running replica holds (`web-1#3`).
fn replica(id_node: u16) -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "factors".into());
    format!("{host}#{id_node}")
}

/// What sits near the service, in this process and in Redis: the snapshot cache tiers and
/// the SMS limiter, with the Redis client they share (when configured).
struct NearTier {
    redis: Option<Arc<Redis>>,
    /// The key `/readyz` probes Redis with.
    probe_key: String,
    cache: Option<Arc<dyn SnapshotCache>>,
    rate_limiter: Arc<SmsLimiter>,
}

impl NearTier {
    async fn start(
        settings: &Settings,
        context: &InstanceContext,
        store_name: &str,
        registry: &mut Registry,
    ) -> anyhow::Result<Self> {
        let redis_metrics = RedisMetrics::register(registry);
        let keys = Keys::new(&settings.redis.key_prefix, context.id.as_str(), &settings.phone_hash_key()?);
        let redis =
            settings.redis.client_config().map(|config| Redis::start(config, redis_metrics.clone())).transpose()?;
        if let Some(redis) = &redis {
            // Give Redis a moment so the cache works from the first request; never more.
            if !redis.wait_connected(settings.redis.connect_timeout).await {
                tracing::warn!("starting without Redis; it will be used once it answers");
            }
        }
        // Decisions may start from a cached snapshot (their writes are guarded); answers
        // and code checks always read the store. This process's own snapshots first,
        // then the ones all replicas share in Redis.
        let shared: Option<Arc<dyn SnapshotCache>> = redis.as_ref().map(|redis| {
            Arc::new(CachedSnapshots::new(redis.clone(), keys.clone(), settings.redis.cache_ttl))
                as Arc<dyn SnapshotCache>
        });
        // The embedded default (SQLite, no Redis) keeps no cache: its reads never leave the
        // process, so a snapshot would save nothing a decision needs.
        let embedded = store_name == "sqlite" && redis.is_none();
        let cache: Option<Arc<dyn SnapshotCache>> = match settings.cache.local_bytes {
            _ if embedded => None,
            0 => shared,
            bytes => Some(Arc::new(LocalSnapshots::new(bytes, shared, redis_metrics.clone()))),
        };
        let probe_key = keys.probe();
        let rate_limiter =
            Arc::new(SmsLimiter::new(redis.clone(), keys, settings.rate_limits.config()?, redis_metrics));
        Ok(Self { redis, probe_key, cache, rate_limiter })
    }
}

/// The routers over the use cases, bound to their ports: the public one (REST, and gRPC,
/// gRPC-web and Connect on the services' own paths) and the admin one when configured.
struct Served {
    listener: TcpListener,
    addr: SocketAddr,
    router: axum::Router,
    admin: Option<(TcpListener, axum::Router)>,
    health: HealthTask,
}

impl Served {
    async fn build(
        settings: &Settings,
        tokens: Arc<dyn TokenVerifier>,
        readiness: Arc<dyn ReadinessProbe>,
        use_cases: UseCases,
        http_metrics: HttpMetrics,
        registry: Registry,
        clients: ClientAddresses,
    ) -> anyhow::Result<Self> {
        let grpc = factors_api_grpc::router(
            GrpcState { tokens: tokens.clone(), use_cases: use_cases.clone() },
            readiness.clone(),
            &GrpcOptions {
                cors_origins: settings.grpc.cors_origins.clone(),
                request_timeout: settings.server.request_timeout,
            },
        )?;
        let state =
            AppState::new(tokens, readiness, use_cases, http_metrics.clone(), MetricsRegistry(Arc::new(registry)));
        let admin = match settings.server.admin_addr {
            Some(admin_addr) => {
                let listener = TcpListener::bind(admin_addr)
                    .await
                    .with_context(|| format!("binding server.admin_addr {admin_addr}"))?;
                Some((listener, factors_api_http::admin_router(state.clone())))
            }
            None => None,
        };
        let options = HttpOptions {
            request_timeout: settings.server.request_timeout,
            metrics: settings.server.admin_addr.is_none(),
            clients: clients.clone(),
        };
        // One port: REST, and gRPC / gRPC-web / Connect on the service's own paths.
        let router = factors_api_http::router(state, options).merge(factors_api_http::observe(
            grpc.router,
            http_metrics,
            clients,
        ));
        let listener = TcpListener::bind(settings.server.addr)
            .await
            .with_context(|| format!("binding {}", settings.server.addr))?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr, router, admin, health: grpc.health })
    }
}

impl Application {
    pub fn builder(settings: &Settings) -> ApplicationBuilder<'_> {
        ApplicationBuilder { settings, sms: None }
    }

    /// # Errors
    /// See [`ApplicationBuilder::build`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::builder(settings).build().await
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound admin address, when `server.admin_addr` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes: stops accepting, then waits for in-flight
    /// requests up to `server.shutdown_timeout`.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // The health task ends with this call, when `_health` is dropped.
        let Self {
            listener,
            router,
            admin,
            limits,
            shutdown_timeout: grace,
            drain_delay,
            draining,
            _health,
            _notices,
            ..
        } = self;
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let (stop_admin, mut admin_stopping) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            // Not ready first, so load balancers stop sending; serve on meanwhile.
            draining.store(true, Ordering::SeqCst);
            if !drain_delay.is_zero() {
                tracing::info!(?drain_delay, "shutting down: not ready, still serving while traffic drains");
                tokio::time::sleep(drain_delay).await;
            }
            tracing::info!("shutting down: no new connections, finishing requests in flight");
            let _ = signalled_tx.send(());
            let _ = stop_admin.send(true);
        };
        let admin = async move {
            if let Some((listener, router)) = admin {
                let stopped = async move {
                    let _ = admin_stopping.wait_for(|stop| *stop).await;
                };
                crate::serve::serve(listener, router, limits, stopped).await;
            }
        };
        let serve = async move {
            tokio::join!(crate::serve::serve(listener, router, limits, shutdown), admin);
        };
        let deadline = async move {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serve => Ok(()),
            () = deadline => {
                tracing::warn!(?grace, "requests still in flight after the shutdown timeout; stopping anyway");
                Ok(())
            }
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Ready when the store answers within two seconds; Redis, when configured, is reported
/// up or degraded and never makes the service unready.
struct Dependencies {
    store: Arc<dyn Store>,
    store_name: &'static str,
    /// Redis, with the key its probe writes.
    redis: Option<(Arc<Redis>, String)>,
    draining: Arc<AtomicBool>,
    gauges: DependencyGauges,
}

#[async_trait]
impl ReadinessProbe for Dependencies {
    async fn readiness(&self) -> Readiness {
        let ping = tokio::time::timeout(Duration::from_secs(2), self.store.ping()).await;
        let store = if matches!(ping, Ok(Ok(()))) { DependencyState::Up } else { DependencyState::Down };
        let mut dependencies = vec![(self.store_name, store)];
        if let Some((redis, key)) = &self.redis {
            dependencies.push(("redis", redis.probe(key).await));
        }
        for (name, state) in &dependencies {
            self.gauges.set(name, *state == DependencyState::Up);
        }
        Readiness { dependencies, draining: self.draining.load(Ordering::SeqCst) }
    }
}
