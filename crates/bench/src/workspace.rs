//! The repository the harness runs in: where it is, where cargo puts its builds, which
//! commit it is at, and the release build of the service.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use tokio::process::Command;

/// The workspace root, fixed at build time: the harness is always built from its own
/// workspace, and the service it builds and the config it reads live there.
pub fn root() -> anyhow::Result<PathBuf> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    root.canonicalize().with_context(|| format!("finding the workspace root at {}", root.display()))
}

/// The cargo binary that runs us (`cargo run` sets `CARGO`), else the one on `PATH`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The target directory as cargo sees it: this honours `CARGO_TARGET_DIR` and cargo's own
/// configuration files alike.
pub async fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .await
        .context("running cargo metadata")?;
    ensure!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let target = metadata["target_directory"].as_str().context("cargo metadata names no target_directory")?;
    Ok(PathBuf::from(target))
}

/// Builds the service in release mode and returns its binary.
///
/// Line tables are switched on for this build so that perf can resolve the service's own
/// functions (the release profile carries no debug info). Cargo keeps these artifacts
/// apart from the ones without, so the two builds do not undo each other.
///
/// # Errors
/// When the build fails or the binary is not where cargo puts it.
pub async fn build_service(root: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    println!("building the service: cargo build --release -p factors (line tables on, for perf)");
    let mut command = Command::new(cargo());
    // `cargo run` gave us the variables of our own package; build scripts of the service's
    // dependencies (ring's) watch some of them, and would rebuild on every change of caller.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .args(["build", "--release", "-p", "factors"])
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .current_dir(root)
        .status()
        .await
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p factors failed ({status})");
    }
    let binary = target.join("release").join("factors");
    ensure!(binary.is_file(), "the build left no binary at {}", binary.display());
    Ok(binary)
}

/// The commit checked out, with `+dirty` when tracked files have changes (the report
/// itself aside: every run rewrites it).
pub async fn git_commit(root: &Path) -> String {
    let head = git(root, &["rev-parse", "--short=12", "HEAD"]).await;
    let dirty = git(root, &["status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/REPORT.md"]).await;
    match (head, dirty) {
        (Some(head), Some(dirty)) if !dirty.is_empty() => format!("{head}+dirty"),
        (Some(head), _) => head,
        (None, _) => "unknown (not a git checkout)".to_owned(),
    }
}

async fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(root).output().await.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
