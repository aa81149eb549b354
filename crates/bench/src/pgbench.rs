//! The database's limit: pgbench replays the service's own statements, taken verbatim from
//! `factors_adapters_postgres::sql`, so the service is compared with exactly the work it
//! asks of PostgreSQL.
//!
//! pgbench (`-M prepared`) turns `:name` into a parameter, and `\set` only computes
//! numbers. Each client therefore counts its transactions in `n` (set to 0 by `-D n=0`;
//! pgbench keeps a client's variables across its transactions), derives the user number
//! `i` from its `client_id`, and the texts are built in SQL: `'u' || :i`. A client's users
//! are `first + client_id * stride + [0, stride)`, so no two clients, and no two runs,
//! touch the same user; a client past its share sleeps rather than spill over. Timestamps are written as `to_timestamp(<epoch>)`, since pgbench
//! would read the colons of a literal time as variables.

use std::path::Path;

use anyhow::{Context, ensure};
use factors_adapters_postgres::sql;
use factors_adapters_sql::OTP_SMS_REMOVED_NOTICE;
use factors_domain::PolicyEvent;
use tokio::process::Command;

use crate::database::{ACTOR, INSTANCE, ORG, ORIGIN_JSON, REMOVED_EVENT, SEEDED_AT_EPOCH, SEEDED_SEQUENCE};
use crate::ledger::UserRange;

/// What a pgbench run replays.
#[derive(Debug, Clone, Copy)]
pub enum Script {
    /// `REMOVE_OTP_SMS` alone, guarded by the seeded version: the leanest removal.
    OneStatement { range: UserRange },
    /// `LOAD_USER` (`\gset`), then `REMOVE_OTP_SMS` guarded by the version read: the
    /// service's cold removal, statement for statement.
    ReadThenWrite { range: UserRange },
    /// `LOAD_USER` on random users among the first `users`: GetUser's read.
    Read { users: u64 },
    /// `LOAD_USER` (`\gset`) of a random user among the first `users`, then
    /// `CREATE_SESSION` holding it at the version read: a sign-in's first step.
    SignIn { users: u64 },
}

impl Script {
    /// The users the script consumes, if it removes.
    pub fn range(self) -> Option<UserRange> {
        match self {
            Self::OneStatement { range } | Self::ReadThenWrite { range } => Some(range),
            Self::Read { .. } | Self::SignIn { .. } => None,
        }
    }

    /// The script's text for `clients` clients.
    ///
    /// # Errors
    /// When a statement keeps a placeholder the script does not fill (the statements
    /// changed shape: the harness must follow).
    pub fn text(self, clients: u64) -> anyhow::Result<String> {
        match self {
            Self::OneStatement { range } => {
                let guard = [SEEDED_SEQUENCE.to_string(), format!("to_timestamp({SEEDED_AT_EPOCH})")];
                let next = [(SEEDED_SEQUENCE + 1).to_string(), "now()".to_owned()];
                Ok(own_users(range, clients, &format!("{};\n", removal(&guard, &next)?)))
            }
            Self::ReadThenWrite { range } => {
                // `\gset` stores the row's columns as variables; each seeded user holds one
                // authenticator, so LOAD_USER answers exactly one row (else pgbench fails).
                // The next version is what the domain computes: sequence + 1, and changed
                // moved to now, at least a microsecond on.
                let guard = ["(:sequence)::bigint".to_owned(), "(:changed_at)::timestamptz".to_owned()];
                let next = [
                    "(:sequence)::bigint + 1".to_owned(),
                    "greatest(now(), (:changed_at)::timestamptz + interval '1 microsecond')".to_owned(),
                ];
                Ok(own_users(range, clients, &format!("{} \\gset\n{};\n", load_user()?, removal(&guard, &next)?)))
            }
            Self::Read { users } => Ok(format!("\\set i random(1, {users})\n{};\n", load_user()?)),
            Self::SignIn { users } => Ok(format!(
                "\\set i random(1, {users})\n\\set s random(1, 9000000000000000000)\n{} \\gset\n{};\n",
                load_user()?,
                create_session()?
            )),
        }
    }
}

/// Runs `body` on this client's next user `i`. A client that has used up its share
/// sleeps instead of removing: it must not spill into another client's users or another
/// run's (and every transaction that did not remove shows in the count afterwards).
fn own_users(range: UserRange, clients: u64, body: &str) -> String {
    let stride = range.count / clients.max(1);
    let before = range.first - 1;
    format!(
        "\\set n :n + 1\n\\if :n <= {stride}\n\\set i :client_id * {stride} + :n + {before}\n{body}\\else\n\\sleep 100 ms\n\\endif\n"
    )
}

fn load_user() -> anyhow::Result<String> {
    bind(sql::LOAD_USER, &[format!("'{INSTANCE}'"), "'u' || :i".to_owned()])
}

/// `REMOVE_OTP_SMS` of user `i`'s authenticator `o<i>`, from version `guard` to `next`,
/// with the event the service appends (see `sql`'s table of parameters).
fn removal(guard: &[String; 2], next: &[String; 2]) -> anyhow::Result<String> {
    let [guard_sequence, guard_changed] = guard.clone();
    let [next_sequence, next_changed] = next.clone();
    let payload = format!(
        "jsonb_build_object('actor', '{ACTOR}', 'userId', 'u' || :i, 'at', now(), 'otpSmsId', 'o' || :i, \
         'phone', '+41******' || right(lpad((:i)::text, 7, '0'), 3), 'lastFactor', true, \
         'origin', '{ORIGIN_JSON}'::jsonb)"
    );
    bind(
        sql::REMOVE_OTP_SMS,
        &[
            format!("'{INSTANCE}'"),
            "'u' || :i".to_owned(),
            guard_sequence,
            guard_changed,
            next_sequence,
            next_changed,
            "'user'".to_owned(),
            format!("'{REMOVED_EVENT}'"),
            payload,
            format!("'{ACTOR}'"),
            format!("'{ORG}'"),
            "'o' || :i".to_owned(),
            // Guarded by the login policies (none stored: versions 0), no notice.
            "true".to_owned(),
            "0".to_owned(),
            "0".to_owned(),
            "NULL".to_owned(),
            "NULL".to_owned(),
            format!("'{}'", PolicyEvent::ORG_AGGREGATE),
            format!("'{}'", PolicyEvent::INSTANCE_AGGREGATE),
            format!("'{OTP_SMS_REMOVED_NOTICE}'"),
        ],
    )
}

/// `CREATE_SESSION` of session `pgbench-<s>` for user `i`, as read by `LOAD_USER`
/// (`org_id`, `sequence`, `changed_at`), with the three events the service appends (see
/// `sql`'s table of parameters). The token hash is the session id's SHA-256.
fn create_session() -> anyhow::Result<String> {
    let session = "'pgbench-' || :s";
    let event = |kind: &str, details: &str| {
        format!(
            "jsonb_build_object('type', '{kind}', 'payload', jsonb_build_object('actor', '{ACTOR}', \
             'sessionId', {session}, 'at', now(), 'origin', '{ORIGIN_JSON}'::jsonb{details}))"
        )
    };
    let events = [
        event("session.added", ""),
        event("session.user.checked", ", 'userId', 'u' || :i, 'orgId', (:org_id)::text"),
        event("session.token.set", ""),
    ]
    .join(", ");
    let null = || "NULL".to_owned();
    bind(
        sql::CREATE_SESSION,
        &[
            format!("'{INSTANCE}'"),
            session.to_owned(),
            null(),
            null(),
            "3".to_owned(),
            "now()".to_owned(),
            "'u' || :i".to_owned(),
            "(:org_id)::text".to_owned(),
            "now()".to_owned(),
            null(),
            null(),
            format!("sha256(({session})::bytea)"),
            "'{}'".to_owned(),
            null(),
            "now()".to_owned(),
            "'keep'".to_owned(),
            null(),
            null(),
            null(),
            null(),
            null(),
            "'u' || :i".to_owned(),
            "(:org_id)::text".to_owned(),
            "(:sequence)::bigint".to_owned(),
            "(:changed_at)::timestamptz".to_owned(),
            "'session'".to_owned(),
            format!("jsonb_build_array({events})"),
            format!("'{ACTOR}'"),
        ],
    )
}

/// Replaces `$1..$N` by the expressions given, each parenthesised so the statement's own
/// casts (`$2::text`) apply to the whole expression. The highest numbers go first, so
/// `$1` never eats the start of `$10`.
fn bind(statement: &str, values: &[String]) -> anyhow::Result<String> {
    let mut text = statement.to_owned();
    for (index, value) in values.iter().enumerate().rev() {
        let placeholder = format!("${}", index + 1);
        ensure!(text.contains(&placeholder), "the statement has no {placeholder}: {statement}");
        text = text.replace(&placeholder, &format!("({value})"));
    }
    let leftover = text.as_bytes().windows(2).any(|w| w[0] == b'$' && w[1].is_ascii_digit());
    ensure!(!leftover, "the statement has more parameters than the {} given: {statement}", values.len());
    Ok(text)
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Length {
    Seconds(u64),
    /// Transactions per client (a bounded run: the calibration).
    Transactions(u64),
}

/// What pgbench reported.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub processed: u64,
    pub failed: u64,
    /// Why the run cannot be trusted: pgbench's own errors.
    pub problems: Vec<String>,
}

/// Runs `script` with `clients` clients on 2 threads against `url`, writing the script to
/// `script_path` first.
pub async fn run(
    url: &str,
    script: Script,
    script_path: &Path,
    clients: u64,
    length: Length,
) -> anyhow::Result<Outcome> {
    std::fs::write(script_path, script.text(clients)?).with_context(|| format!("writing {}", script_path.display()))?;
    let mut command = Command::new("pgbench");
    // The sessions the service's statements run in have these settings: so do pgbench's.
    let settings: Vec<String> = sql::SESSION_SETTINGS.iter().map(|(k, v)| format!("-c {k}={v}")).collect();
    command.env("PGOPTIONS", settings.join(" "));
    command.args(["-M", "prepared", "-n", "-j", "2", "-D", "n=0", "-c", &clients.to_string()]);
    match length {
        Length::Seconds(seconds) => command.args(["-T", &seconds.to_string()]),
        Length::Transactions(count) => command.args(["-t", &count.to_string()]),
    };
    let output = command.arg("-f").arg(script_path).arg(url).output().await.context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut outcome = parse(&stdout).with_context(|| format!("reading pgbench's output:\n{stdout}\n{stderr}"))?;
    if !output.status.success() {
        outcome.problems.push(format!("pgbench exited with {}", output.status));
    }
    // pgbench reports client errors on stderr, one line each; keep the first few.
    outcome.problems.extend(stderr.lines().filter(|l| !l.trim().is_empty()).take(5).map(str::to_owned));
    if outcome.failed > 0 {
        outcome.problems.push(format!("{} failed transactions", outcome.failed));
    }
    Ok(outcome)
}

/// Reads pgbench's summary.
pub fn parse(stdout: &str) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut seen_tps = false;
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            // "12345" with -T, "1920/1920" with -t.
            let done = rest.trim().split('/').next().unwrap_or_default();
            outcome.processed = done.parse().with_context(|| format!("transactions in {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            let failed = rest.split_whitespace().next().unwrap_or_default();
            outcome.failed = failed.parse().with_context(|| format!("failures in {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("latency average =") {
            let ms = rest.trim().trim_end_matches("ms").trim();
            outcome.latency_avg_ms = ms.parse().with_context(|| format!("latency in {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("tps =") {
            let tps = rest.split_whitespace().next().unwrap_or_default();
            outcome.tps = tps.parse().with_context(|| format!("tps in {line:?}"))?;
            seen_tps = true;
        }
    }
    ensure!(seen_tps, "no tps line");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/x.sql
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 12345
number of failed transactions: 0 (0.000%)
latency average = 1.944 ms
initial connection time = 9.870 ms
tps = 4115.213802 (without initial connection time)
";

    #[test]
    fn the_summary_reads_back() {
        let outcome = parse(OUTPUT).expect("parses");
        assert_eq!((outcome.processed, outcome.failed), (12345, 0));
        assert!((outcome.tps - 4_115.213_802).abs() < 1e-6 && (outcome.latency_avg_ms - 1.944).abs() < 1e-9);
    }

    #[test]
    fn every_placeholder_is_filled_and_clients_get_disjoint_users() {
        let range = UserRange { first: 1001, count: 800 };
        for script in [
            Script::OneStatement { range },
            Script::ReadThenWrite { range },
            Script::Read { users: 10 },
            Script::SignIn { users: 10 },
        ] {
            let text = script.text(8).expect("builds");
            assert!(!text.contains("$1"), "{text}");
        }
        let text = Script::OneStatement { range }.text(8).expect("builds");
        assert!(text.starts_with("\\set n :n + 1\n\\if :n <= 100\n\\set i :client_id * 100 + :n + 1000\n"), "{text}");
        assert!(text.ends_with(";\n\\else\n\\sleep 100 ms\n\\endif\n"), "{text}");
    }

    #[test]
    fn binding_refuses_a_statement_of_another_shape() {
        assert!(bind("SELECT $1, $2", &["1".to_owned()]).is_err());
        assert!(bind("SELECT $1", &["1".to_owned(), "2".to_owned()]).is_err());
        let values: Vec<String> = (1..=11).map(|n| format!("v{n}")).collect();
        assert_eq!(
            bind("$1::text $10 $11 $2 $3 $4 $5 $6 $7 $8 $9", &values).ok().as_deref(),
            Some("(v1)::text (v10) (v11) (v2) (v3) (v4) (v5) (v6) (v7) (v8) (v9)")
        );
    }
}
