//! The external tools a run needs (wrk, pgbench, perf; HAProxy and PgBouncer for the
//! removal through them): finds them on `PATH`, installs the
//! missing ones through apt-get when that is possible, and otherwise stops with a message
//! that names the tool and its package.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::process::Command;

/// A tool and the Debian packages that provide it, in the order to try them.
struct Tool {
    name: &'static str,
    packages: &'static [&'static str],
}

const WRK: Tool = Tool { name: "wrk", packages: &["wrk"] };
// Debian ships pgbench in postgresql-client (bookworm) or postgresql-contrib (older).
const PGBENCH: Tool = Tool { name: "pgbench", packages: &["postgresql-client", "postgresql-contrib"] };
const PERF: Tool = Tool { name: "perf", packages: &["linux-perf"] };
const HAPROXY: Tool = Tool { name: "haproxy", packages: &["haproxy"] };
const PGBOUNCER: Tool = Tool { name: "pgbouncer", packages: &["pgbouncer"] };

/// Makes sure wrk and pgbench exist, HAProxy and PgBouncer when PostgreSQL is measured,
/// and perf when a profile is wanted.
///
/// # Errors
/// When a tool is missing and cannot be installed.
pub async fn ensure(postgres: bool, profile: bool) -> anyhow::Result<()> {
    let mut tools = vec![WRK, PGBENCH];
    if postgres {
        tools.extend([HAPROXY, PGBOUNCER]);
    }
    if profile {
        tools.push(PERF);
    }
    for tool in tools {
        ensure_one(&tool).await?;
    }
    Ok(())
}

async fn ensure_one(tool: &Tool) -> anyhow::Result<()> {
    if find(tool.name).is_some() {
        return Ok(());
    }
    let packages = tool.packages.join(" or ");
    if find("apt-get").is_none() || !is_root()? {
        bail!(
            "{} is missing; install it (Debian/Ubuntu package: {packages}) and run again \
             (the harness installs it itself only as root with apt-get)",
            tool.name
        );
    }
    println!("{} is missing: installing it with apt-get ({packages})", tool.name);
    for package in tool.packages {
        // A stale package index is the usual reason an install fails: refresh it once.
        let installed = apt_install(package).await? || (apt_update().await? && apt_install(package).await?);
        if installed && find(tool.name).is_some() {
            return Ok(());
        }
    }
    bail!("{} is still missing after apt-get install {packages}; install it by hand and run again", tool.name)
}

async fn apt_install(package: &str) -> anyhow::Result<bool> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .await
        .context("running apt-get install")?;
    Ok(status.success())
}

async fn apt_update() -> anyhow::Result<bool> {
    let status = Command::new("apt-get").arg("update").status().await.context("running apt-get update")?;
    Ok(status.success())
}

/// The executable `name` on `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether this process runs as root (effective uid 0), from `/proc/self/status`, which
/// needs no unsafe call into libc.
fn is_root() -> anyhow::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    Ok(effective == "0")
}
