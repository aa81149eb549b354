//! The failover test of issue 22, Jepsen-style, against the topology of
//! `deploy/local-ha/ha.sh` (which must be up): clients stream removals, adds and GetUsers
//! through HAProxy while the PostgreSQL leader's postmaster is killed (`kill -9`), then
//! the leader is cut off from the network, then the Redis master is killed, each fault
//! in rounds of its own. Afterwards the final state is read from the new leader and the
//! history checked against it (`check`); `bench/FAILOVER.md` gets the seconds without a
//! successful write per fault, the answers by kind and the checks' results. Exits non-zero
//! when a check fails.
//!
//! `cargo run -p factors-chaos -- --rounds 3` (`just chaos`); `--rounds 1` is the short run.

// A command-line tool: it reports progress on stderr.
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use factors_adapters_jwt::{DevTokenMinter, MintRequest, RoleClaim};
use sqlx::Connection;

use crate::check::{Check, FinalState};
use crate::workload::{Entry, Op, Outcome, Shared};

mod check;
mod workload;

#[derive(Debug, Parser)]
#[command(about = "Failover test against deploy/local-ha: faults, a history, its checks, bench/FAILOVER.md")]
struct Args {
    /// factors through HAProxy.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    factors: String,
    /// PostgreSQL through HAProxy (the leader), to read the final state.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5000/factors")]
    database: String,
    /// The topology's script.
    #[arg(long, default_value = "deploy/local-ha/ha.sh")]
    ha: PathBuf,
    /// The replicas' `auth.hs256_secret`, to mint the clients' token.
    #[arg(long, default_value = "local-ha-hs256-secret-0123456789abcdef")]
    secret: String,
    /// Rounds of each fault: the leader killed, the leader cut off, the Redis master killed.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// How long a client waits for an answer before it counts the call as unanswered.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    timeout: Duration,
    /// Writes must succeed again within this of a fault, or the round ends without them.
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    give_up: Duration,
    #[arg(long, default_value = "bench/FAILOVER.md")]
    report: PathBuf,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    let seconds = text.trim_end_matches('s').parse::<f64>().map_err(|e| format!("{text}: {e}"))?;
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillLeader,
    PartitionLeader,
    KillRedisMaster,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::KillLeader => "PostgreSQL leader's postmaster killed (kill -9)",
            Self::PartitionLeader => "PostgreSQL leader cut off from the network",
            Self::KillRedisMaster => "Redis master killed (kill -9)",
        }
    }
}

/// One round as it happened; times in seconds since the run began.
#[derive(Debug)]
struct Round {
    fault: Fault,
    target: String,
    at: f64,
    /// When the network was restored or the killed Redis started again.
    healed: Option<f64>,
    ended: f64,
}

async fn ha(script: &PathBuf, command: &str) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .arg(command)
        .output()
        .await
        .with_context(|| format!("running {} {command}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} {command} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The end of the first successful write that began at or after `at`.
fn recovered(history: &[Entry], at: f64) -> Option<f64> {
    history
        .iter()
        .filter(|e| e.op.is_write() && e.start >= at && matches!(e.outcome, Outcome::Ok(_)))
        .map(|e| e.end)
        .min_by(f64::total_cmp)
}

/// The end of the last successful write before `at`.
fn last_write_before(history: &[Entry], at: f64) -> Option<f64> {
    history
        .iter()
        .filter(|e| e.op.is_write() && e.end <= at && matches!(e.outcome, Outcome::Ok(_)))
        .map(|e| e.end)
        .max_by(f64::total_cmp)
}

async fn run_round(args: &Args, shared: &Arc<Shared>, index: usize, fault: Fault) -> anyhow::Result<Round> {
    ha(&args.ha, "wait-healthy").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..args.clients)
        .map(|c| tokio::spawn(workload::client(shared.clone(), (index * 1000 + c) as u64, index, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let target = match fault {
        Fault::KillLeader => ha(&args.ha, "kill-leader").await?,
        Fault::PartitionLeader => ha(&args.ha, "partition-leader").await?,
        Fault::KillRedisMaster => ha(&args.ha, "kill-redis-master").await?,
    };
    // From when the fault is certainly in place: a write begun later cannot have slipped
    // in before it.
    let at = shared.now();
    eprintln!("round {index}: {} ({target}) at {at:.3}s", fault.name());
    let mut healed = None;
    if fault == Fault::KillRedisMaster {
        let promoted = ha(&args.ha, "redis-failed-over").await?;
        eprintln!("round {index}: the Sentinels promoted {promoted} at {:.3}s", shared.now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        ha(&args.ha, "restore-redis").await?;
        healed = Some(shared.now());
    } else {
        let deadline = at + args.give_up.as_secs_f64();
        while recovered(&shared.entries(), at).is_none() && shared.now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if fault == Fault::PartitionLeader {
            ha(&args.ha, "heal").await?;
            healed = Some(shared.now());
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    Ok(Round { fault, target, at, healed, ended: shared.now() })
}

async fn final_state(database: &str, prefix: &str) -> anyhow::Result<FinalState> {
    let mut connection = sqlx::PgConnection::connect(database).await.context("connecting to the leader")?;
    let pattern = format!("{prefix}%");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, id FROM otp_sms_authenticators WHERE instance_id = 'factors' AND user_id LIKE $1",
    )
    .bind(&pattern)
    .fetch_all(&mut connection)
    .await?;
    let mut state = FinalState::default();
    for (user, otp) in rows {
        state.authenticators.entry(user).or_default().insert(otp);
    }
    let events: Vec<(String, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, event_type, payload->>'otpSmsId' FROM events \
         WHERE instance_id = 'factors' AND aggregate_type = 'user' AND aggregate_id LIKE $1 \
         ORDER BY aggregate_id, sequence",
    )
    .bind(&pattern)
    .fetch_all(&mut connection)
    .await?;
    for (user, sequence, kind, otp) in events {
        state.events.entry(user).or_default().push((sequence, kind, otp));
    }
    Ok(state)
}

fn token(secret: &str) -> anyhow::Result<String> {
    DevTokenMinter::new("http://localhost:8080", "factors", secret.as_bytes()).mint(&MintRequest {
        sub: "chaos-admin".into(),
        org: Some("org-a".into()),
        roles: vec![RoleClaim { role: "IAM_OWNER".into(), org: None }],
        ttl: Duration::from_secs(4 * 3600),
        now: chrono::Utc::now().timestamp(),
        amr: vec![],
        auth_time: None,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let prefix = format!("chaos{}-", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let users: Vec<String> = (0..args.users).map(|i| format!("{prefix}{i:03}")).collect();
    let shared = Arc::new(Shared::new(args.factors.clone(), token(&args.secret)?, users.clone(), args.timeout)?);
    ha(&args.ha, "wait-healthy").await.context("is deploy/local-ha up? (deploy/local-ha/ha.sh up)")?;
    for user in &users {
        shared.create_user(user, "org-a").await?;
    }
    let plan = [Fault::KillLeader, Fault::PartitionLeader, Fault::KillRedisMaster];
    let mut rounds = Vec::new();
    for fault in plan {
        for _ in 0..args.rounds {
            let round = run_round(&args, &shared, rounds.len(), fault).await?;
            rounds.push(round);
        }
    }
    ha(&args.ha, "wait-healthy").await?;
    let state = final_state(&args.database, &prefix).await?;
    let history = shared.entries();
    let redis_rounds: HashSet<usize> =
        rounds.iter().enumerate().filter(|(_, r)| r.fault == Fault::KillRedisMaster).map(|(i, _)| i).collect();
    let checks = check::all(&history, &state, &redis_rounds);
    let report = report(&args, &rounds, &history, &checks);
    std::fs::write(&args.report, &report).with_context(|| format!("writing {}", args.report.display()))?;
    eprintln!("{report}");
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed()).map(|c| c.name).collect();
    anyhow::ensure!(failed.is_empty(), "checks failed: {failed:?}");
    let late: Vec<_> = rounds
        .iter()
        .filter(|r| r.fault != Fault::KillRedisMaster)
        .filter(|r| recovered(&history, r.at).is_none_or(|t| t - r.at > 30.0))
        .map(|r| format!("{} at {:.1}s", r.fault.name(), r.at))
        .collect();
    anyhow::ensure!(late.is_empty(), "writes did not succeed again within 30 s of: {late:?}");
    Ok(())
}

fn report(args: &Args, rounds: &[Round], history: &[Entry], checks: &[Check]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "# Failover: what a client sees, and what the history shows\n");
    let _ = writeln!(
        out,
        "Written by `cargo run -p factors-chaos -- --rounds {}` (`just chaos`) on {} against \
         `deploy/local-ha` (Patroni 3.0 with three PostgreSQL 15 nodes in synchronous mode, \
         ttl 10 s, loop_wait 2 s; etcd; HAProxy; Redis with a replica and three Sentinels; \
         two factors replicas). {} clients, {} users; a call unanswered after {} s counts as \
         \"no answer\". Times are seconds since the run began.\n",
        args.rounds,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.clients,
        args.users,
        args.timeout.as_secs()
    );
    let _ = writeln!(out, "## Faults\n");
    let _ = writeln!(
        out,
        "| # | fault | node | at | last write before | writes again after | without writes | healed | GetUsers meanwhile | answers in the round |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (index, round) in rounds.iter().enumerate() {
        let in_round: Vec<&Entry> = history.iter().filter(|e| e.round == index).collect();
        let back = recovered(history, round.at);
        let before = last_write_before(history, round.at);
        let outage_end = back.unwrap_or(round.ended);
        let gets = kinds(
            in_round
                .iter()
                .copied()
                .filter(|e| matches!(e.op, Op::Get { .. }) && e.start >= round.at && e.start < outage_end),
        );
        let fmt = |t: Option<f64>| t.map_or("—".to_owned(), |t| format!("{t:.1}"));
        let gap = match (back, before) {
            (Some(back), Some(before)) => {
                format!("**{:.1} s** ({:.1} s after the fault)", back - before, back - round.at)
            }
            (Some(back), None) => format!("{:.1} s after the fault", back - round.at),
            (None, _) => "**not within the round**".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {index} | {} | {} | {:.1} | {} | {} | {gap} | {} | {} | {} |",
            round.fault.name(),
            round.target,
            round.at,
            fmt(before),
            fmt(back),
            fmt(round.healed),
            if gets.is_empty() { "none".to_owned() } else { gets },
            kinds(in_round.iter().copied()),
        );
    }
    let _ = writeln!(out, "\n## Answers over the whole run\n");
    for (op, name) in [("add", "AddOTPSMSAuthenticator"), ("remove", "RemoveOTPSMSAuthenticator"), ("get", "GetUser")] {
        let of_kind = history.iter().filter(|e| {
            matches!((&e.op, op), (Op::Add { .. }, "add") | (Op::Remove { .. }, "remove") | (Op::Get { .. }, "get"))
        });
        let _ = writeln!(out, "- {name}: {}", kinds(of_kind));
    }
    let _ = writeln!(out, "\n## Checks\n");
    let _ = writeln!(out, "| check | examined | result |");
    let _ = writeln!(out, "|---|---|---|");
    for check in checks {
        let result = if check.passed() {
            "pass".to_owned()
        } else {
            format!(
                "**FAIL** ({}): {}",
                check.violations.len(),
                check.violations.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        };
        let _ = writeln!(out, "| {} | {} | {result} |", check.name, check.examined);
    }
    out
}

/// "200: 812, 503: 40, …", most frequent first.
fn kinds<'a>(entries: impl Iterator<Item = &'a Entry>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in entries {
        *counts.entry(entry.outcome.kind()).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts.iter().map(|(kind, n)| format!("{kind}: {n}")).collect::<Vec<_>>().join(", ")
}
