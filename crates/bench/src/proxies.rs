//! What stands between the service and PostgreSQL in production, started in front of the
//! bench's server: HAProxy in TCP mode (as in front of a Patroni cluster, one hop more)
//! here, and PgBouncer in transaction mode (`database.pooler = "transaction"`: each
//! statement unnamed, in a transaction of its own) as `factors_testing::TestPooler`. The
//! removal runs through each beside the direct connection give their cost as ratios of the
//! same run.

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

    async fn wait(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "nothing listens on port {} after 10 s", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}
