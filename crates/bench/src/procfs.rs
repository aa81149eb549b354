//! CPU time and memory from `/proc`: the service's process, and all PostgreSQL processes
//! of this machine (when PostgreSQL runs elsewhere there are none, and the figures read
//! "n/a").

use anyhow::Context;

/// CPU time in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct Ticks(u64);

/// Fields of `/proc/<pid>/stat` after the command name, which may itself hold spaces and
/// parentheses: the text after its closing parenthesis, starting at field 3 (state).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// utime + stime (fields 14 and 15), and cutime + cstime (16 and 17: children reaped).
fn times(stat: &str) -> Option<(u64, u64)> {
    let fields = stat_fields(stat)?;
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some((field(14)? + field(15)?, field(16)? + field(17)?))
}

fn process_ticks(pid: u32) -> anyhow::Result<Ticks> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (own, _) = times(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?;
    Ok(Ticks(own))
}

/// The CPU time of every process named `postgres`, and how many there are. Backends come
/// and go (pgbench opens its own): the postmaster's reaped-children times hold those that
/// ended, so the sum keeps them. `None` when no such process is visible.
fn postgres_ticks() -> Option<(Ticks, usize)> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut total = 0;
    let mut processes = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else { continue };
        if comm.trim() != "postgres" {
            continue;
        }
        let Some((own, children)) = std::fs::read_to_string(path.join("stat")).ok().as_deref().and_then(times) else {
            continue;
        };
        total += own + children;
        processes += 1;
    }
    (processes > 0).then_some((Ticks(total), processes))
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux this runs on.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds spent during a run, by the service and by PostgreSQL.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    pub service_s: Option<f64>,
    pub postgres_s: Option<f64>,
}

impl CpuSpent {
    /// Milliseconds of CPU per operation: (service, postgres).
    pub fn per_operation_ms(self, operations: u64) -> (Option<f64>, Option<f64>) {
        if operations == 0 {
            return (None, None);
        }
        #[allow(clippy::cast_precision_loss)] // counts of requests, far below 2^52
        let per = |s: f64| s * 1000.0 / operations as f64;
        (self.service_s.map(per), self.postgres_s.map(per))
    }
}

/// Samples CPU times at the start of a run; [`CpuMeter::stop`] gives what was spent since.
#[derive(Debug)]
pub struct CpuMeter {
    service: Option<(u32, Ticks)>,
    postgres: Option<(Ticks, usize)>,
    per_second: f64,
}

/// How long [`CpuMeter::stop_when_settled`] waits for backends to end.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl CpuMeter {
    /// Starts measuring the service `pid` (if any) and PostgreSQL.
    pub fn start(service: Option<u32>) -> Self {
        Self {
            service: service.and_then(|pid| process_ticks(pid).ok().map(|t| (pid, t))),
            postgres: postgres_ticks(),
            per_second: ticks_per_second(),
        }
    }

    pub fn stop(&self) -> CpuSpent {
        #[allow(clippy::cast_precision_loss)] // tick counts, far below 2^52
        let seconds = |before: Ticks, after: Ticks| after.0.saturating_sub(before.0) as f64 / self.per_second;
        CpuSpent {
            service_s: self
                .service
                .and_then(|(pid, before)| process_ticks(pid).ok().map(|after| seconds(before, after))),
            postgres_s: self.postgres.zip(postgres_ticks()).map(|((before, _), (after, _))| seconds(before, after)),
        }
    }

    /// As [`CpuMeter::stop`], once the backends opened during the run have ended (up to
    /// a few seconds). Read while they exit, a backend can be reaped between the reading
    /// of the postmaster and its own: its time would be in neither.
    pub async fn stop_when_settled(&self) -> CpuSpent {
        if let Some((_, before)) = self.postgres {
            let started = std::time::Instant::now();
            while postgres_ticks().is_some_and(|(_, now)| now > before) && started.elapsed() < SETTLE_TIMEOUT {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        self.stop()
    }
}

/// Resident memory of a process, in kB: now (`VmRSS`) and at its peak (`VmHWM`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kb: u64,
    pub peak_kb: u64,
}

impl Memory {
    /// # Errors
    /// When the process is gone.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let kb = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self { rss_kb: kb("VmRSS:")?, peak_kb: kb("VmHWM:")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_past_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 8 0 100 1000 200";
        assert_eq!(times(stat), Some((300, 10)));
    }

    #[test]
    fn this_process_can_be_measured() {
        let memory = Memory::of(std::process::id()).expect("own status");
        assert!(memory.rss_kb > 0 && memory.peak_kb >= memory.rss_kb);
        assert!(process_ticks(std::process::id()).is_ok());
    }
}
