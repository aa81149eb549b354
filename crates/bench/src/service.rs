//! The service under test, as a child process with production-like settings (JSON logs
//! at info, to a file): started and timed until `/readyz` answers 200, asked for a token,
//! warmed, watched (its warnings, its cache counters) and stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::process::{Child, Command};

use crate::database::ORG;
use crate::ledger::UserRange;

/// How long a start may take before the harness gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the service's own shutdown_timeout (30s), so it always gets to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// How to start the service.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub config_dir: PathBuf,
    pub database_url: String,
    /// Redis URL and key prefix, for the Redis variants.
    pub redis: Option<(String, String)>,
    /// The pool size: the highest concurrency of the runs, so the pool is not the limit.
    pub max_connections: u64,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Behind a transaction pooler: `database.pooler = "transaction"`, and migrations on
    /// this direct URL.
    pub pooled: Option<String>,
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    child: Child,
    pid: u32,
    base: String,
    log: PathBuf,
    client: reqwest::Client,
}

/// The service's environment: development (for the generated HS256 development secret
/// and token minting), with the configuration of the workspace, and nothing inherited from the
/// caller's `FACTORS*` variables, which would change what is measured.
fn command(binary: &Path, config_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FACTORS") {
            command.env_remove(&name);
        }
    }
    command.env_remove("RUST_LOG").env("FACTORS_ENV", "development").env("FACTORS_CONFIG_DIR", config_dir);
    // The development secrets the service and `token mint` share, generated on first use;
    // kept out of the workspace.
    command.env("FACTORS__DATA_DIR", std::env::temp_dir().join("factors-bench"));
    command
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Service {
    /// Starts the service and waits until `/readyz` answers 200; returns it with the time
    /// from launch to that first 200.
    pub async fn start(launch: &Launch) -> anyhow::Result<(Self, Duration)> {
        let port = free_port()?;
        let log = std::fs::File::create(&launch.log).with_context(|| format!("creating {}", launch.log.display()))?;
        let mut command = command(&launch.binary, &launch.config_dir);
        command
            .arg("serve")
            .env("FACTORS__DATABASE__URL", &launch.database_url)
            .env("FACTORS__DATABASE__MAX_CONNECTIONS", launch.max_connections.to_string())
            .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
            .env("FACTORS__LOG__FORMAT", "json")
            .env("FACTORS__LOG__FILTER", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing the log file")?)
            .stderr(log)
            // Should the harness fail half-way, the service does not outlive it.
            .kill_on_drop(true);
        if let Some(direct) = &launch.pooled {
            command.env("FACTORS__DATABASE__POOLER", "transaction").env("FACTORS__DATABASE__MIGRATION_URL", direct);
        }
        if let Some((url, prefix)) = &launch.redis {
            command.env("FACTORS__REDIS__URL", url).env("FACTORS__REDIS__KEY_PREFIX", prefix);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        let started = Instant::now();
        let child = command.spawn().with_context(|| format!("starting {}", launch.binary.display()))?;
        let pid = child.id().context("the service has no pid")?;
        let mut service =
            Self { child, pid, base: format!("http://127.0.0.1:{port}"), log: launch.log.clone(), client };
        service.wait_ready(started).await?;
        Ok((service, started.elapsed()))
    }

    /// Polls `/readyz` every 2 ms: the figure is in milliseconds, and refused connections
    /// cost nothing.
    async fn wait_ready(&mut self, started: Instant) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.base);
        loop {
            if let Ok(response) = self.client.get(&url).timeout(Duration::from_secs(3)).send().await
                && response.status().as_u16() == 200
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().context("watching the service")? {
                bail!("the service exited ({status}) before it was ready; its log:\n{}", self.log_tail(20));
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("the service was not ready after {READY_TIMEOUT:?}; its log:\n{}", self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Stops the service as an orchestrator would: SIGTERM, then waits for it to finish
    /// the requests in flight; SIGKILL only if it does not.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let signalled = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        if signalled.is_ok_and(|s| s.success())
            && let Ok(waited) = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await
        {
            waited.context("waiting for the service to stop")?;
            return Ok(());
        }
        self.child.kill().await.context("killing the service")?;
        bail!("the service did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed")
    }

    /// One request with the token; the status and body.
    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> anyhow::Result<(u16, String)> {
        let response = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Reads every user of `range` once (GetUser), `concurrency` at a time, so their
    /// snapshots are in the cache before the warm removals. Every answer must be 200.
    pub async fn warm(&self, token: &str, range: UserRange, concurrency: u64) -> anyhow::Result<()> {
        let next = Arc::new(AtomicU64::new(range.first));
        let end = range.first + range.count;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (next, client, base, token) =
                (next.clone(), self.client.clone(), self.base.clone(), format!("Bearer {token}"));
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let url = format!("{base}/resources/v3alpha/users/u{i}");
                    let response = client
                        .get(&url)
                        .header("authorization", &token)
                        .send()
                        .await
                        .with_context(|| format!("GET {url}"))?;
                    let status = response.status();
                    ensure!(
                        status.as_u16() == 200,
                        "GET {url} answered {status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                }
            });
        }
        while let Some(worker) = workers.join_next().await {
            worker.context("a warming task panicked")??;
        }
        Ok(())
    }

    /// The service's cache lookups so far, from `/metrics`.
    pub async fn cache_lookups(&self) -> anyhow::Result<CacheLookups> {
        let (status, text) = self.call(reqwest::Method::GET, "/metrics", "").await?;
        ensure!(status == 200, "/metrics answered {status}");
        Ok(CacheLookups::parse(&text))
    }

    /// The log's length now; [`Service::warnings_since`] reads what came after.
    pub fn log_position(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// WARN and ERROR lines logged since `position` (the first `limit`).
    pub fn warnings_since(&self, position: u64, limit: usize) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(position).unwrap_or(usize::MAX).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .take(limit)
            .map(str::to_owned)
            .collect()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// `factors_cache_lookups_total` by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheLookups {
    pub hit: u64,
    pub miss: u64,
    pub other: u64,
}

impl CacheLookups {
    fn parse(metrics: &str) -> Self {
        let mut lookups = Self::default();
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix("factors_cache_lookups_total{") else { continue };
            let Some((labels, value)) = rest.split_once("} ") else { continue };
            let count = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // Counters of one run, far below 2^52.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = count as u64;
            if labels.contains("result=\"hit\"") {
                lookups.hit += count;
            } else if labels.contains("result=\"miss\"") {
                lookups.miss += count;
            } else {
                lookups.other += count;
            }
        }
        lookups
    }

    /// The lookups between `self` (before) and `after`.
    pub fn until(self, after: Self) -> Self {
        Self {
            hit: after.hit.saturating_sub(self.hit),
            miss: after.miss.saturating_sub(self.miss),
            other: after.other.saturating_sub(self.other),
        }
    }
}

/// Mints a token the load runs carry, of the seed's actor in org-bench with `role`, for
/// 2 hours.
pub async fn mint_token(binary: &Path, config_dir: &Path, role: &str) -> anyhow::Result<String> {
    let output = command(binary, config_dir)
        .args(["token", "mint", "--sub", crate::database::ACTOR, "--org", ORG, "--role", role])
        .args(["--ttl", "2h"])
        .output()
        .await
        .context("running factors token mint")?;
    ensure!(
        output.status.success(),
        "factors token mint failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).context("the token is not text")?.trim().to_owned();
    ensure!(token.split('.').count() == 3, "factors token mint printed no JWT: {token:?}");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lookups_read_from_openmetrics() {
        let text = "# TYPE factors_cache_lookups counter\n\
                    factors_cache_lookups_total{result=\"hit\"} 12\n\
                    factors_cache_lookups_total{result=\"miss\"} 3\n\
                    factors_cache_lookups_total{result=\"bypass\"} 1\n";
        assert_eq!(CacheLookups::parse(text), CacheLookups { hit: 12, miss: 3, other: 1 });
    }
}
