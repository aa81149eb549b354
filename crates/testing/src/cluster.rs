//! A Redis Cluster of three masters on loopback ports, started by the test itself from the
//! `redis-server` binary (`FACTORS_TEST_REDIS_SERVER`, else the one on `PATH`).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

const SLOTS: u16 = 16_384;

/// A running cluster; its processes and files go when it is dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<(u16, Option<Child>)>,
    dir: std::path::PathBuf,
    binary: String,
}

fn free_port() -> u16 {
    // The cluster bus listens on port + 10000, so keep ports low enough for that.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port());
        if port != 0 && port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

async fn connect(port: u16) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    Ok(client.get_multiplexed_async_connection().await?)
}

impl RedisCluster {
    /// Starts three masters, splits the slots between them and waits for `cluster_state:ok`.
    ///
    /// # Panics
    /// When `redis-server` cannot be found or the cluster does not form: a cluster test
    /// never passes without its cluster.
    pub async fn start() -> Self {
        // A free port found here can be taken by another test's server before this one's
        // binds it (tests run in parallel): a cluster that does not form is tried again on
        // fresh ports.
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            let cluster = Self::spawn_nodes();
            match cluster.form().await {
                Ok(()) => return cluster,
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!("factors-testing: the Redis cluster did not form ({e:#}); trying again on other ports");
                }
                Err(e) => panic!("forming the Redis cluster: {e:#}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn_nodes() -> Self {
        let binary = std::env::var("FACTORS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let dir = std::env::temp_dir().join(format!("factors-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = Self { nodes: Vec::new(), dir, binary };
        for _ in 0..3 {
            let port = free_port();
            let child = cluster.spawn(port);
            cluster.nodes.push((port, Some(child)));
        }
        cluster
    }

    fn spawn(&self, port: u16) -> Child {
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("a node directory");
        Command::new(&self.binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} for the cluster test ({e}); install Redis or set FACTORS_TEST_REDIS_SERVER",
                    self.binary
                )
            })
    }

    async fn form(&self) -> anyhow::Result<()> {
        for (port, _) in &self.nodes {
            let mut ready = false;
            for _ in 0..100 {
                if crate::redis::answers(&format!("redis://127.0.0.1:{port}")).await {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::ensure!(ready, "node {port} did not start");
        }
        let per_node = SLOTS / 3 + 1;
        for (i, (port, _)) in self.nodes.iter().enumerate() {
            let first = u16::try_from(i).unwrap_or(0) * per_node;
            let last = (first + per_node - 1).min(SLOTS - 1);
            let mut connection = connect(*port).await?;
            let mut addslots = redis::cmd("CLUSTER");
            addslots.arg("ADDSLOTS");
            for slot in first..=last {
                addslots.arg(slot);
            }
            let _: String = addslots.query_async(&mut connection).await?;
        }
        let mut first = connect(self.nodes[0].0).await?;
        for (port, _) in &self.nodes[1..] {
            let _: String =
                redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(*port).query_async(&mut first).await?;
        }
        for _ in 0..200 {
            let mut ok = 0;
            for (port, _) in &self.nodes {
                let mut connection = connect(*port).await?;
                let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut connection).await?;
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    ok += 1;
                }
            }
            if ok == self.nodes.len() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the cluster did not reach cluster_state:ok")
    }

    /// The seed URLs, comma-separated, as `redis.url` takes them.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|(port, _)| format!("redis://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
    }

    /// Kills one master: the slots it serves become unavailable.
    pub async fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].1.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(child) = child.as_mut() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
