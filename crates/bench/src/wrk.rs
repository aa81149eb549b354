//! HTTP load with wrk: the Lua script that walks fresh users, the command line, and the
//! parsing of wrk's summary (requests/s, latency distribution, errors) together with the
//! script's own per-thread report.

use std::path::Path;

use anyhow::{Context, ensure};
use tokio::process::Command;

use crate::ledger::UserRange;

/// wrk threads: one per core of the machine the figures are quoted for.
pub const THREADS: u64 = 2;

/// The script. Each wrk thread gets its own Lua state; `setup` numbers them, so that in
/// `remove` mode thread `id` walks only its own slice of the range, and no user is removed
/// twice. A thread that runs out of fresh users stops (answering its last request with a
/// harmless GET /healthz) instead of removing users again, and says so in `done`: the
/// harness then flags the run. Every answer other than 200 is counted, and the first one
/// kept, to show what the service said.
const SCRIPT: &str = r#"-- Written by factors-bench; arguments: mode first per_thread.
local threads = {}
local count = 0

function setup(thread)
   thread:set("id", count)
   count = count + 1
   table.insert(threads, thread)
end

function init(args)
   mode = args[1]
   local first, per = tonumber(args[2]), tonumber(args[3])
   if mode == "signin" then
      -- Added to the headers of the command line (the token): a table given to
      -- wrk.format would replace them.
      wrk.headers["content-type"] = "application/json"
   end
   if mode == "get" or mode == "signin" then
      low = first
      math.randomseed(os.time() + id * 7919)
   else
      low = first + id * per
   end
   high = low + per
   nextid = low
   exhausted = 0
end

function request()
   if mode == "get" then
      return wrk.format("GET", "/resources/v3alpha/users/u" .. math.random(low, high - 1))
   end
   if mode == "signin" then
      local body = '{"checks":{"user":{"userId":"u' .. math.random(low, high - 1) .. '"}}}'
      return wrk.format("POST", "/v2/sessions", nil, body)
   end
   if nextid >= high then
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   local i = nextid
   nextid = nextid + 1
   return wrk.format("DELETE", "/resources/v3alpha/users/u" .. i .. "/otp_sms/o" .. i)
end

-- No response() callback: with one, wrk hands every answer to Lua, which cost the load
-- generator (on the same cores as the service and the database) several times its CPU.
-- wrk's own summary counts the answers that were not 2xx.

function done(summary, latency, requests)
   for _, t in ipairs(threads) do
      io.write(string.format("factors-bench thread=%d used=%d exhausted=%d\n",
         t:get("id"), t:get("nextid") - t:get("low"), t:get("exhausted")))
   end
end
"#;

/// What a run sends.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// DELETE the authenticator of each user of the range, once.
    Remove(UserRange),
    /// GET random users of the range.
    Get(UserRange),
    /// Sign in random users of the range: CreateSession with a user check.
    SignIn(UserRange),
    /// GET /healthz: the server's constant endpoint.
    Health,
}

/// wrk's summary and the script's report.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers with status >= 400 (wrk's "Non-2xx or 3xx responses").
    pub non_2xx: u64,
    /// connect/read/write/timeout errors, when wrk reports any.
    pub socket_errors: Option<String>,
    /// Requests the script generated (removals: users consumed, answered or not).
    pub used: u64,
    /// Threads that ran out of fresh users.
    pub exhausted: u64,
}

impl Outcome {
    /// Answers with a 2xx status, as wrk counts them.
    pub fn ok_requests(&self) -> u64 {
        self.requests.saturating_sub(self.non_2xx)
    }
}

/// The body of the sign-in the script sends for `user` (its Lua builds the same text).
#[cfg(test)]
pub fn sign_in_body(user: &str) -> String {
    format!(r#"{{"checks":{{"user":{{"userId":"{user}"}}}}}}"#)
}

/// Writes the script to `path` (once per run; it never changes).
pub fn write_script(path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, SCRIPT).with_context(|| format!("writing {}", path.display()))
}

/// Runs wrk against `base` (http://host:port) with `connections` keep-alive connections.
pub async fn run(
    base: &str,
    token: &str,
    script: &Path,
    load: Load,
    connections: u64,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let mut command = Command::new("wrk");
    command.args(["--latency", "-t", &THREADS.to_string(), "-c", &connections.to_string()]);
    command.args(["-d", &format!("{seconds}s")]);
    match load {
        Load::Remove(range) => {
            ensure!(range.count % THREADS == 0, "a removal range must split evenly over {THREADS} threads");
            with_script(&mut command, token, script, base, "remove", range.first, range.count / THREADS);
        }
        Load::Get(range) => with_script(&mut command, token, script, base, "get", range.first, range.count),
        Load::SignIn(range) => with_script(&mut command, token, script, base, "signin", range.first, range.count),
        Load::Health => {
            command.arg(format!("{base}/healthz"));
        }
    }
    let output = command.output().await.context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&stdout).with_context(|| format!("reading wrk's output:\n{stdout}"))
}

/// Adds the token, the script, the URL and the script's arguments.
fn with_script(command: &mut Command, token: &str, script: &Path, base: &str, mode: &str, first: u64, per_thread: u64) {
    command.args(["-H", &format!("authorization: Bearer {token}"), "-s"]).arg(script).arg(format!("{base}/"));
    command.args(["--", mode, &first.to_string(), &per_thread.to_string()]);
}

/// Reads wrk's summary and the script's `factors-bench thread=…` lines.
pub fn parse(stdout: &str) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let (mut seen_rps, mut seen_p50, mut seen_p99) = (false, false, false);
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            outcome.rps = rest.trim().parse().with_context(|| format!("requests/s in {line:?}"))?;
            seen_rps = true;
        } else if let Some(rest) = line.strip_prefix("50%") {
            outcome.p50_ms = duration_ms(rest.trim())?;
            seen_p50 = true;
        } else if let Some(rest) = line.strip_prefix("99%") {
            outcome.p99_ms = duration_ms(rest.trim())?;
            seen_p99 = true;
        } else if line.contains(" requests in ") {
            let count = line.split_whitespace().next().unwrap_or_default();
            outcome.requests = count.parse().with_context(|| format!("requests in {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            outcome.non_2xx = rest.trim().parse().with_context(|| format!("errors in {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            outcome.socket_errors = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("factors-bench ") {
            thread_report(&mut outcome, rest)?;
        }
    }
    ensure!(seen_rps && seen_p50 && seen_p99, "no requests/s or latency distribution (was --latency given?)");
    Ok(outcome)
}

/// `thread=0 used=123 exhausted=0`
fn thread_report(outcome: &mut Outcome, line: &str) -> anyhow::Result<()> {
    let value = |name: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .with_context(|| format!("no {name} in {line:?}"))?
            .parse()
            .with_context(|| format!("{name} in {line:?}"))
    };
    outcome.used += value("used")?;
    outcome.exhausted += value("exhausted")?;
    Ok(())
}

/// "812.00us", "1.10ms", "2.01s" in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().with_context(|| format!("number in {text:?}"))?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        other => anyhow::bail!("unknown unit {other:?} in {text:?}"),
    };
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 3s test @ http://127.0.0.1:41234/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.12ms  812.00us  14.20ms   80.00%
    Req/Sec     1.90k   120.00     2.10k    70.00%
  Latency Distribution
     50%    1.98ms
     75%    2.40ms
     90%    2.90ms
     99%    5.10ms
  11400 requests in 3.00s, 3.10MB read
  Non-2xx or 3xx responses: 2
Requests/sec:   3800.12
Transfer/sec:      1.03MB
factors-bench thread=0 used=5702 exhausted=0
factors-bench thread=1 used=5701 exhausted=0
";

    #[test]
    fn the_summary_and_the_thread_reports_read_back() {
        let outcome = parse(OUTPUT).expect("parses");
        assert_eq!((outcome.requests, outcome.non_2xx, outcome.used, outcome.exhausted), (11400, 2, 11403, 0));
        assert!((outcome.rps - 3800.12).abs() < 1e-9);
        assert!((outcome.p50_ms - 1.98).abs() < 1e-9 && (outcome.p99_ms - 5.1).abs() < 1e-9);
    }

    #[test]
    fn the_script_signs_in_with_the_body_the_floor_reads() {
        assert!(SCRIPT.contains(&sign_in_body("u' .. math.random(low, high - 1) .. '")), "{SCRIPT}");
    }

    #[test]
    fn latencies_convert_from_every_unit() {
        assert!((duration_ms("812.00us").expect("us") - 0.812).abs() < 1e-9);
        assert!((duration_ms("2.01s").expect("s") - 2010.0).abs() < 1e-9);
    }
}
