//! A PostgreSQL server of one test's own, on a free loopback port, from the local
//! installation's `initdb` and `pg_ctl` (`FACTORS_TEST_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`), so that the test can stop it and start it
//! again. As root, the server runs as the `postgres` user, as PostgreSQL insists.

use std::path::{Path, PathBuf};
use std::process::Output;

use tokio::process::Command;

/// A running server and its data folder; both go when it is dropped.
#[derive(Debug)]
pub struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FACTORS_TEST_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().filter(|bin| bin.join("pg_ctl").is_file()).unwrap_or_default()
}

impl OwnPostgres {
    /// Creates a cluster (trust authentication, user `postgres`) and starts it.
    ///
    /// # Panics
    /// When `initdb` or `pg_ctl` cannot be found or fail: the test never passes without
    /// its server. The message says what to install or set.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port());
        let dir = std::env::temp_dir().join(format!("factors-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let as_postgres = is_root().await;
        let server = Self { bin: pg_bin(), dir, port, as_postgres };
        if as_postgres {
            let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&server.dir).status().await;
            assert!(chown.is_ok_and(|s| s.success()), "giving {} to the postgres user", server.dir.display());
        }
        let data = server.data();
        server.run("initdb", &["-A", "trust", "-U", "postgres", "-D", path(&data)]).await;
        server.up().await;
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            path(&self.dir)
        );
        let data = self.data();
        let log = self.dir.join("server.log");
        self.run("pg_ctl", &["-D", path(&data), "-l", path(&log), "-o", &options, "-w", "start"]).await;
    }

    /// Stops the server at once, as a crash would: connections are cut mid-statement.
    pub async fn down(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", path(&data), "-m", "immediate", "-w", "stop"]).await;
    }

    async fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().await.unwrap_or_else(|e| {
            panic!(
                "running {} ({e}): install PostgreSQL's server package, or set FACTORS_TEST_PG_BIN to its bin folder",
                program.display()
            )
        });
        assert!(
            output.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

async fn is_root() -> bool {
    Command::new("id").arg("-u").output().await.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            std::process::Command::new(&program)
        };
        let _ = command.args(["-D", path(&data), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
