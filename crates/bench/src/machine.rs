//! The machine a run measured on, for the report: CPUs, memory, kernel and tool versions.

use tokio::process::Command;

#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: String,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub postgres: String,
    pub wrk: String,
    pub pgbench: String,
    pub perf: String,
}

impl Machine {
    /// Reads what the machine says about itself; anything unreadable reads "unknown", as
    /// it only describes the run.
    pub async fn describe(postgres: String, with_perf: bool) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: first_line(&["nproc"]).await,
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(unknown),
            memory: field(&meminfo, "MemTotal").map_or_else(unknown, |kb| gib(&kb)),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| unknown(), |k| k.trim().to_owned()),
            postgres,
            // "wrk 4.1.0 [epoll] Copyright (C) 2012 Will Glozer": the copyright is noise.
            wrk: first_line(&["wrk", "-v"]).await.split(" Copyright").next().unwrap_or_default().to_owned(),
            pgbench: first_line(&["pgbench", "--version"]).await,
            perf: if with_perf { first_line(&["perf", "--version"]).await } else { "not used".to_owned() },
        }
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// `name : value` from a /proc file.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_owned())
    })
}

/// "24563560 kB" as GiB.
fn gib(kb: &str) -> String {
    kb.split_whitespace()
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .map_or_else(|| kb.to_owned(), |n| format!("{:.1} GiB", n / 1024.0 / 1024.0))
}

/// The first non-empty line a command prints on stdout or stderr (`wrk -v` prints on
/// stdout and exits 1, so the status is not looked at).
async fn first_line(command: &[&str]) -> String {
    let Some((program, args)) = command.split_first() else { return unknown() };
    let Ok(output) = Command::new(program).args(args).output().await else { return unknown() };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    text.lines().map(str::trim).find(|l| !l.is_empty()).map_or_else(unknown, str::to_owned)
}
