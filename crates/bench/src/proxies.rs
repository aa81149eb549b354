//! What stands between the service and PostgreSQL in production, started in front of the
//! bench's server: HAProxy in TCP mode (as in front of a Patroni cluster, one hop more)
//! and PgBouncer in transaction mode (`database.pooler = "transaction"`: each statement
//! unnamed, in a transaction of its own). The removal runs through each beside the direct
//! connection give their cost as ratios of the same run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};
use url::Url;

use crate::service::free_port;

/// The way from the service to PostgreSQL a removal run took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct,
    HaProxy,
    PgBouncer,
}

impl Route {
    pub const ALL: [Self; 3] = [Self::Direct, Self::HaProxy, Self::PgBouncer];

    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::HaProxy => "HAProxy (TCP)",
            Self::PgBouncer => "PgBouncer (transaction mode)",
        }
    }
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    port: u16,
    _child: Child,
}

impl Proxy {
    /// `url` with this proxy's host and port.
    pub fn url(&self, url: &str) -> anyhow::Result<String> {
        let mut url = Url::parse(url)?;
        url.set_host(Some("127.0.0.1"))?;
        url.set_port(Some(self.port)).map_err(|()| anyhow::anyhow!("no port in {url}"))?;
        Ok(url.to_string())
    }

    /// HAProxy in TCP mode to `upstream` (the server's URL).
    pub async fn haproxy(upstream: &Url, scratch: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = scratch.join("haproxy.cfg");
        let text = format!(
            "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30m\n    \
             timeout server 30m\n\nlisten postgres\n    bind 127.0.0.1:{port}\n    server pg {}:{} maxconn 500\n",
            upstream.host_str().unwrap_or("127.0.0.1"),
            upstream.port().unwrap_or(5432)
        );
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting haproxy")?;
        let proxy = Self { port, _child: child };
        proxy.wait().await.context("HAProxy")?;
        Ok(proxy)
    }

    /// PgBouncer in transaction mode to `upstream`, with a pool as large as the
    /// service's; it runs as `nobody` when the bench runs as root (it refuses root).
    pub async fn pgbouncer(upstream: &Url, pool: u64, scratch: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = scratch.join("pgbouncer");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("pgbouncer.ini");
        let log = dir.join("pgbouncer.log");
        let _ = std::fs::remove_file(&log);
        let mut target = format!(
            "host={} port={} user={}",
            upstream.host_str().unwrap_or("127.0.0.1"),
            upstream.port().unwrap_or(5432),
            upstream.username()
        );
        if let Some(password) = upstream.password() {
            target.push_str(&format!(" password={password}"));
        }
        let text = format!(
            "[databases]\n* = {target}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = any\npool_mode = transaction\nmax_client_conn = 2000\n\
             default_pool_size = {pool}\nlogfile = {}\n",
            log.display()
        );
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new("pgbouncer");
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            for path in [&dir, &config] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
            }
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting pgbouncer")?;
        let proxy = Self { port, _child: child };
        proxy.wait().await.with_context(|| format!("PgBouncer (its log: {})", log.display()))?;
        Ok(proxy)
    }

    async fn wait(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "nothing listens on port {} after 10 s", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}
