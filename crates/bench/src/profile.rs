//! Where the service's CPU goes: perf samples the process on the software clock (this VM
//! has no hardware counters) during one cold removal run; the report keeps the top
//! symbols by self time and sums all symbols by component. A flame graph is drawn too
//! when inferno's tools are on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, ensure};
use tokio::process::{Child, Command};

use crate::tools;

/// Symbols kept for the report.
const TOP: usize = 20;

/// A perf recording in progress.
#[derive(Debug)]
pub struct Recording {
    child: Child,
    file: PathBuf,
}

/// Starts `perf record` on process `pid` for `seconds`.
pub fn start(pid: u32, seconds: u64, file: &Path) -> anyhow::Result<Recording> {
    let child = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "997", "-g", "-p", &pid.to_string(), "-o"])
        .arg(file)
        .args(["--", "sleep", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting perf record")?;
    Ok(Recording { child, file: file.to_owned() })
}

impl Recording {
    /// Waits for the recording to end.
    pub async fn finish(self) -> anyhow::Result<PathBuf> {
        let output = self.child.wait_with_output().await.context("waiting for perf record")?;
        ensure!(
            output.status.success() && self.file.is_file(),
            "perf record failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(self.file)
    }
}

/// One line of the report: a symbol and its share of the samples (self time).
#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    pub percent: f64,
    /// `[k]` kernel, `[.]` user space.
    pub kernel: bool,
    pub name: String,
}

/// The profile as the report shows it.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub samples: Option<String>,
    pub top: Vec<Symbol>,
    /// Components and their summed share, largest first.
    pub components: Vec<(&'static str, f64)>,
    /// Share of samples perf could not name (a bare address): high means missing symbols.
    pub unresolved_percent: f64,
    pub flamegraph: Option<PathBuf>,
}

/// Reads the recording with `perf report` and, when inferno is there, draws the flame
/// graph to `flamegraph`.
pub async fn analyse(file: &Path, flamegraph: &Path) -> anyhow::Result<Profile> {
    let output = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "--sort", "symbol", "-i"])
        .arg(file)
        .output()
        .await
        .context("running perf report")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "perf report failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut profile = parse(&text);
    ensure!(!profile.top.is_empty(), "perf report shows no samples:\n{text}");
    profile.flamegraph = draw_flamegraph(file, flamegraph).await;
    Ok(profile)
}

/// Reads `perf report --stdio --no-children --sort symbol`: entries are
/// `  12.34%  [.] symbol`; the call-graph lines under them do not have that shape.
pub fn parse(text: &str) -> Profile {
    let mut symbols = Vec::new();
    let mut samples = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("# Samples:") {
            samples = Some(rest.trim().to_owned());
            continue;
        }
        let Some((percent, rest)) = trimmed.split_once('%') else { continue };
        let Ok(percent) = percent.parse::<f64>() else { continue };
        let rest = rest.trim_start();
        let kernel = match rest.get(..3) {
            Some("[k]") => true,
            Some("[.]") => false,
            _ => continue,
        };
        // The name ends where perf's padding starts (it pads to the widest name, then adds
        // empty IPC columns); names themselves hold single spaces only ("<T as Trait>").
        let name = rest[3..].trim_start();
        let name = name.split("  ").next().unwrap_or(name).trim_end();
        symbols.push(Symbol { percent, kernel, name: name.to_owned() });
    }
    // A fold from +0.0: an empty f64 sum is -0.0, which would print as "-0.0 %".
    let unresolved_percent = symbols.iter().filter(|s| s.name.starts_with("0x")).fold(0.0, |sum, s| sum + s.percent);
    let mut components: Vec<(&'static str, f64)> = Vec::new();
    for symbol in &symbols {
        let component = component(symbol);
        match components.iter_mut().find(|(name, _)| *name == component) {
            Some((_, total)) => *total += symbol.percent,
            None => components.push((component, symbol.percent)),
        }
    }
    components.sort_by(|a, b| b.1.total_cmp(&a.1));
    symbols.truncate(TOP);
    Profile { samples, top: symbols, components, unresolved_percent, flamegraph: None }
}

/// Crates that do the signature work of a token check: jsonwebtoken's RustCrypto backend
/// (RSA, ECDSA, Ed25519 and their arithmetic) and ring.
const JWT_CRYPTO_CRATES: &[&str] = &[
    "ring",
    "rsa",
    "num_bigint_dig",
    "ecdsa",
    "p256",
    "p384",
    "primeorder",
    "elliptic_curve",
    "crypto_bigint",
    "ed25519_dalek",
    "curve25519_dalek",
];

/// The coarse component a symbol belongs to. The first match wins, so a generic like
/// `tokio::…::poll<hyper::…>` goes to the more specific crates listed first.
fn component(symbol: &Symbol) -> &'static str {
    if symbol.kernel {
        return "kernel";
    }
    let name = symbol.name.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| name.contains(n));
    if has(&["malloc", "free", "realloc", "calloc", "_int_", "tcache", "memalign", "arena", "unlink_chunk"]) {
        "malloc/free"
    } else if has(&["memcpy", "memmove", "memset", "memcmp", "strlen"]) {
        "libc mem*"
    } else if has(&["__send", "__libc_", "pthread", "__vdso", "epoll", "syscall"]) {
        "libc (syscall wrappers, clock)"
    } else if has(&["rustls", "aes_hw", "_aes", "gcm", "ghash", "chacha", "poly1305"]) {
        "rustls (TLS to PostgreSQL)"
    } else if has(&["sqlx"]) {
        "sqlx (PostgreSQL driver)"
    } else if has(&["tracing", "sharded_slab"]) {
        "tracing (logs, spans)"
    } else if has(&["jsonwebtoken", "ring_core", "hmac", "sha2::", "sha256", "base64"])
        || JWT_CRYPTO_CRATES.iter().any(|krate| has_crate(&name, krate))
    {
        "JWT and crypto (jsonwebtoken, RustCrypto, ring)"
    } else if has(&["serde"]) {
        "serde (JSON)"
    } else if has(&["redis"]) {
        "redis client"
    } else if has(&["hyper", "h2::", "axum", "tower", "http::", "httparse", "tonic", "matchit"]) {
        "HTTP stack (hyper, h2, axum, tower)"
    } else if has(&["tokio", "mio::", "futures_util", "futures_core"]) {
        "tokio runtime, futures"
    } else if has(&["factors"]) {
        "factors' own code"
    } else if has(&["core::", "alloc::", "std::", "hashbrown"]) {
        "Rust std/core/alloc"
    } else if symbol.name.starts_with("0x") {
        "unresolved addresses"
    } else {
        "other"
    }
}

/// Whether a path of crate `krate` appears in `name`: `krate::` not preceded by a part of
/// an identifier ("ring::" is in "string::" too).
fn has_crate(name: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    name.match_indices(&needle)
        .any(|(at, _)| name[..at].chars().next_back().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_')))
}

/// `perf script | inferno-collapse-perf | inferno-flamegraph`, only when both inferno
/// tools are on `PATH`; the profile stands without it.
async fn draw_flamegraph(file: &Path, svg: &Path) -> Option<PathBuf> {
    tools::find("inferno-collapse-perf")?;
    tools::find("inferno-flamegraph")?;
    let script = Command::new("perf").args(["script", "-i"]).arg(file).output().await.ok()?;
    let folded = pipe("inferno-collapse-perf", &[], &script.stdout).await?;
    let drawn = pipe("inferno-flamegraph", &["--title", "factors: cold removal"], &folded).await?;
    std::fs::write(svg, drawn).ok()?;
    Some(svg.to_owned())
}

/// Runs `program` with `input` on stdin and returns its stdout.
async fn pipe(program: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_vec();
    // Write while reading: a large input would otherwise fill both pipes and block.
    let writer = tokio::spawn(async move { stdin.write_all(&input).await });
    let output = child.wait_with_output().await.ok()?;
    writer.await.ok()?.ok()?;
    output.status.success().then_some(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "# Samples: 2K of event 'cpu-clock'
#
# Overhead  Symbol
# ........  ..................
#
    20.00%  [k] finish_task_switch.isra.0
            |
            ---__libc_start_main
               |--10.00%--main
    10.00%  [.] sqlx_postgres::connection::stream::PgStream::recv
     5.00%  [.] _int_malloc
     3.00%  [.] alloc::string::String::push_str
     1.00%  [.] 0x00007f1234                                    -      -
     0.50%  [.] <T as tower::util::boxed_clone_sync::CloneService<R>>::clone_box                -      -
";

    #[test]
    fn entries_are_read_and_call_graph_lines_skipped() {
        let profile = parse(REPORT);
        assert_eq!(profile.top.len(), 6);
        assert_eq!(profile.top[5].name, "<T as tower::util::boxed_clone_sync::CloneService<R>>::clone_box");
        assert_eq!(profile.samples.as_deref(), Some("2K of event 'cpu-clock'"));
        assert!(profile.top[0].kernel && profile.top[0].name == "finish_task_switch.isra.0");
        assert!((profile.unresolved_percent - 1.0).abs() < 1e-9);
        let share = |name: &str| profile.components.iter().find(|(c, _)| *c == name).map(|(_, p)| *p);
        assert_eq!(share("kernel"), Some(20.0));
        assert_eq!(share("malloc/free"), Some(5.0));
        // "string" holds "ring", which must not count as crypto.
        assert_eq!(share("Rust std/core/alloc"), Some(3.0));
        assert!(has_crate("<ring::hmac::Key>::sign", "ring") && !has_crate("alloc::string::String", "ring"));
        let rsa = Symbol { percent: 1.0, kernel: false, name: "<rsa::key::RsaPublicKey>::verify".into() };
        assert_eq!(component(&rsa), "JWT and crypto (jsonwebtoken, RustCrypto, ring)");
    }
}
