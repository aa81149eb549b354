//! The HTTP floor: the service's statements behind the leanest HTTP server the harness
//! can make, to show how much of the distance between the service and its limit any HTTP
//! front end pays on this machine, before any product logic.
//!
//! It is this same binary, started as a process of its own (`--floor-server`), so that
//! its CPU is measured apart, as the service's is. It is hyper's HTTP/1 server over the
//! store the database URL names, and it does only what the database work needs: no
//! token, no log line, no metrics, no access rules, no JSON library.
//!
//! - On PostgreSQL ([`postgres`]): one sqlx connection per HTTP connection (no pool),
//!   with the settings the service's sessions have, sending
//!   `factors_adapters_postgres::sql`.
//! - On SQLite ([`sqlite`]): the file opened as the service opens it, readers beside one
//!   writer connection, sending `factors_adapters_sqlite::sql` in the same transactions.
//!
//! It answers:
//!
//! - `DELETE /resources/v3alpha/users/{user}/otp_sms/{otp}`: in [`Removal::ReadThenWrite`]
//!   mode `LOAD_USER`, then the removal guarded by the version read (a cold removal's
//!   statements); in [`Removal::OneStatement`] mode (PostgreSQL) `REMOVE_OTP_SMS` alone,
//!   guarded by the seeded version (what a warm removal sends). 200 when the user moved,
//!   409 when not, 404 when the read finds no such authenticator.
//! - `GET /resources/v3alpha/users/{user}`: `LOAD_USER`; 200, or 404 without rows.
//! - `POST /v2/sessions` with `{"checks":{"user":{"userId":"…"}}}`: a sign-in's first
//!   step, `LOAD_USER`, then the new session with its three events, held to the user's
//!   version read; 201, or 404 when the user does not exist.
//! - `GET /healthz`: 200.

mod postgres;
mod sqlite;

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio::process::{Child, Command};

use crate::database::{ACTOR, OtpRemoval, SEEDED_AT_EPOCH, SEEDED_SEQUENCE, Version};

/// What a DELETE sends to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Removal {
    /// The read and the guarded write of a cold removal.
    ReadThenWrite,
    /// The guarded write alone, on the seeded version: a warm removal's statement.
    OneStatement,
}

const USERS: &str = "/resources/v3alpha/users/";
const SESSIONS: &str = "/v2/sessions";

/// An answer: the status and the body.
type Answer = (StatusCode, String);

/// Serves on `addr` until killed, on the store `database_url` names.
///
/// # Errors
/// When the address cannot be bound or the database cannot be opened.
pub async fn serve(addr: &str, database_url: &str, removal: Removal) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    if database_url.starts_with("sqlite:") {
        let store = Arc::new(sqlite::Store::open(database_url).await?);
        loop {
            let (stream, _) = listener.accept().await.context("accepting")?;
            let store = store.clone();
            tokio::spawn(serve_connection(stream, move |request| {
                let store = store.clone();
                async move { answer(&mut &*store, removal, request).await }
            }));
        }
    }
    let options = postgres::options(database_url)?;
    loop {
        let (stream, _) = listener.accept().await.context("accepting")?;
        let options = options.clone();
        tokio::spawn(async move {
            let Ok(connection) = postgres::Connection::open(&options).await else { return };
            let connection = Arc::new(tokio::sync::Mutex::new(connection));
            serve_connection(stream, move |request| {
                let connection = connection.clone();
                async move { answer(&mut *connection.lock().await, removal, request).await }
            })
            .await;
        });
    }
}

/// A user as `LOAD_USER` reads it.
pub struct UserRead {
    pub org: String,
    pub version: Version,
    /// Its authenticators: id and number.
    pub authenticators: Vec<(String, String)>,
    /// The rows the statement answered (one for a user without authenticators).
    pub rows: usize,
}

impl UserRead {
    /// The user of `LOAD_USER`'s rows, on either store.
    fn from_rows<R: Row>(rows: &[R]) -> anyhow::Result<Option<Self>>
    where
        for<'c> &'c str: ColumnIndex<R>,
        for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    {
        let Some(first) = rows.first() else { return Ok(None) };
        let mut authenticators = Vec::new();
        for row in rows {
            if let Some(id) = row.try_get::<Option<String>, _>("otp_id")? {
                authenticators.push((id, row.try_get("otp_phone")?));
            }
        }
        let version = (first.try_get("sequence")?, first.try_get("changed_at")?);
        Ok(Some(Self { org: first.try_get("org_id")?, version, authenticators, rows: rows.len() }))
    }
}

/// The statements of one store, sent as the service's store sends them.
pub trait Statements {
    /// `LOAD_USER`; `None` when there is no such user.
    async fn load_user(&mut self, user: &str) -> anyhow::Result<Option<UserRead>>;

    /// A removal's guarded write, moving the user from `guard` to `next`; whether it moved.
    async fn remove(&mut self, removal: &OtpRemoval<'_>) -> anyhow::Result<bool>;

    /// `session`, created for its user as `read`, held to that version; whether it was
    /// written.
    async fn create_session(&mut self, read: &UserRead, session: &NewSession<'_>) -> anyhow::Result<bool>;
}

/// Answers a request with the statements of `store`.
async fn answer<S: Statements>(store: &mut S, removal: Removal, asked: Asked) -> anyhow::Result<Answer> {
    let not_found = || Ok((StatusCode::NOT_FOUND, String::new()));
    let conflict = || Ok((StatusCode::CONFLICT, String::new()));
    match asked.route() {
        Route::Health => Ok((StatusCode::OK, "{}".to_owned())),
        Route::GetUser(user) => {
            let Some(read) = store.load_user(user).await? else { return not_found() };
            let body = format!(r#"{{"user":{{"id":"{user}","sequence":{},"rows":{}}}}}"#, read.version.0, read.rows);
            Ok((StatusCode::OK, body))
        }
        Route::Remove { user, otp } => {
            let ((guard, next), phone) = match removal {
                Removal::ReadThenWrite => {
                    // The authenticator's number, if the user holds it: otherwise nothing to
                    // remove.
                    let Some(read) = store.load_user(user).await? else { return not_found() };
                    let Some((_, phone)) = read.authenticators.into_iter().find(|(id, _)| id == otp) else {
                        return not_found();
                    };
                    (next_version(read.version.0, read.version.1), phone)
                }
                Removal::OneStatement => {
                    // The seed's number holds the user's digits; the write only masks it.
                    let digits: String = user.chars().filter(char::is_ascii_digit).collect();
                    (seeded_version()?, format!("+4179{digits:0>7}"))
                }
            };
            let removal = OtpRemoval { user, otp, guard, next, phone: &phone };
            if store.remove(&removal).await? { Ok(removed(otp, next.1)) } else { conflict() }
        }
        Route::SignIn(user) => {
            let Some(read) = store.load_user(user).await? else { return not_found() };
            let session = NewSession::new(user, &read.org, Utc::now());
            if store.create_session(&read, &session).await? { Ok(session.created()) } else { conflict() }
        }
        Route::Unknown => not_found(),
    }
}

/// Serves one HTTP/1 connection with `answer`; an error answers 500 with its chain.
async fn serve_connection<F, Fut>(stream: tokio::net::TcpStream, answer: F)
where
    F: Fn(Asked) -> Fut + Clone,
    Fut: Future<Output = anyhow::Result<Answer>>,
{
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let answer = answer.clone();
        async move {
            let (status, body) = match Asked::read(request).await {
                Ok(asked) => answer(asked).await,
                Err(e) => Err(e),
            }
            .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")));
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
}

/// A request as the floor needs it: the method, the path, and the body of a POST.
pub struct Asked {
    method: Method,
    path: String,
    body: Bytes,
}

impl Asked {
    async fn read(request: Request<Incoming>) -> anyhow::Result<Self> {
        let (parts, body) = request.into_parts();
        let body = if parts.method == Method::POST {
            body.collect().await.context("reading the body")?.to_bytes()
        } else {
            Bytes::new()
        };
        Ok(Self { method: parts.method, path: parts.uri.path().to_owned(), body })
    }

    pub fn route(&self) -> Route<'_> {
        route(&self.method, &self.path, &self.body)
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    GetUser(&'a str),
    Remove { user: &'a str, otp: &'a str },
    SignIn(&'a str),
    Unknown,
}

fn route<'a>(method: &Method, path: &'a str, body: &'a [u8]) -> Route<'a> {
    if path == "/healthz" {
        return Route::Health;
    }
    if method == Method::POST && path == SESSIONS {
        return checked_user(body).map_or(Route::Unknown, Route::SignIn);
    }
    let Some(rest) = path.strip_prefix(USERS) else { return Route::Unknown };
    match (method, rest.split_once("/otp_sms/")) {
        (&Method::GET, None) if !rest.is_empty() && !rest.contains('/') => Route::GetUser(rest),
        (&Method::DELETE, Some((user, otp))) if !user.contains('/') && !otp.is_empty() && !otp.contains('/') => {
            Route::Remove { user, otp }
        }
        _ => Route::Unknown,
    }
}

/// The user id of `{"checks":{"user":{"userId":"u7"}}}`, the only body the load sends.
fn checked_user(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let (_, rest) = text.split_once("\"userId\":\"")?;
    let (user, _) = rest.split_once('"')?;
    (!user.is_empty()).then_some(user)
}

/// The versions a cold removal moves the user between, as the domain computes them: the
/// one read, and the next (sequence + 1, changed moved to now, at least a microsecond on).
fn next_version(sequence: i64, changed: DateTime<Utc>) -> (Version, Version) {
    ((sequence, changed), (sequence + 1, Utc::now().max(changed + TimeDelta::microseconds(1))))
}

/// The versions a warm removal sends: the seeded one, and the next.
fn seeded_version() -> anyhow::Result<(Version, Version)> {
    let seeded = DateTime::from_timestamp(SEEDED_AT_EPOCH, 0).context("the seed's time")?;
    Ok(((SEEDED_SEQUENCE, seeded), (SEEDED_SEQUENCE + 1, Utc::now())))
}

fn removed(otp: &str, at: DateTime<Utc>) -> Answer {
    (StatusCode::OK, format!(r#"{{"details":{{"id":"{otp}","changed":"{}"}}}}"#, at.to_rfc3339()))
}

/// A new session: its user, when it is created, its id (unique in this process and across
/// its runs), the token hash stored for it, and its three events (added, user checked,
/// token set).
pub struct NewSession<'a> {
    user: &'a str,
    at: DateTime<Utc>,
    id: String,
    token_hash: [u8; 32],
    events: [(&'static str, serde_json::Value); 3],
}

impl<'a> NewSession<'a> {
    fn new(user: &'a str, org: &str, at: DateTime<Utc>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("floor-{}-{}-{n}", std::process::id(), at.timestamp_micros());
        let mut token_hash = [0_u8; 32];
        token_hash[..8].copy_from_slice(&n.to_le_bytes());
        let base = |more: serde_json::Value| {
            let mut payload =
                serde_json::json!({"actor": ACTOR, "sessionId": id, "at": at, "origin": crate::database::origin()});
            if let (Some(payload), serde_json::Value::Object(more)) = (payload.as_object_mut(), more) {
                payload.extend(more);
            }
            payload
        };
        let events = [
            ("session.added", base(serde_json::json!({}))),
            ("session.user.checked", base(serde_json::json!({"userId": user, "orgId": org}))),
            ("session.token.set", base(serde_json::json!({}))),
        ];
        Self { user, at, id, token_hash, events }
    }

    fn created(&self) -> Answer {
        (
            StatusCode::CREATED,
            format!(r#"{{"sessionId":"{}","details":{{"changeDate":"{}"}}}}"#, self.id, self.at.to_rfc3339()),
        )
    }
}

/// A running floor server.
#[derive(Debug)]
pub struct Floor {
    child: Child,
    pid: u32,
    base: String,
}

impl Floor {
    /// Starts this binary as a floor server on a free port and waits until it answers.
    pub async fn start(database_url: &str, removal: Removal, log: &Path) -> anyhow::Result<Self> {
        let port = crate::service::free_port()?;
        let binary = std::env::current_exe().context("finding the harness's own binary")?;
        let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let removal = clap::ValueEnum::to_possible_value(&removal).context("the removal's name")?;
        let mut child = Command::new(binary)
            .args(["--floor-server", &format!("127.0.0.1:{port}"), "--floor-removal", removal.get_name()])
            .args(["--database-url", database_url])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing the log file")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the floor server")?;
        let pid = child.id().context("the floor server has no pid")?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(Self { child, pid, base });
            }
            if let Some(status) = child.try_wait().context("watching the floor server")? {
                bail!("the floor server exited ({status}) before it listened");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the floor server did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("stopping the floor server")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_route_as_the_service_names_them() {
        assert_eq!(route(&Method::GET, "/healthz", b""), Route::Health);
        assert_eq!(route(&Method::GET, "/resources/v3alpha/users/u7", b""), Route::GetUser("u7"));
        assert_eq!(
            route(&Method::DELETE, "/resources/v3alpha/users/u7/otp_sms/o7", b""),
            Route::Remove { user: "u7", otp: "o7" }
        );
        for (method, path) in [
            (Method::DELETE, "/resources/v3alpha/users/u7"),
            (Method::GET, "/resources/v3alpha/users/u7/otp_sms/o7"),
            (Method::GET, "/resources/v3alpha/users/"),
            (Method::DELETE, "/resources/v3alpha/users/u7/otp_sms/"),
            (Method::DELETE, "/resources/v3alpha/users/u7/otp_sms/o7/x"),
            (Method::GET, "/metrics"),
        ] {
            assert_eq!(route(&method, path, b""), Route::Unknown, "{method} {path}");
        }
    }

    #[test]
    fn a_sign_in_names_its_user_in_the_body_the_load_sends() {
        let body = crate::wrk::sign_in_body("u42");
        assert_eq!(route(&Method::POST, "/v2/sessions", body.as_bytes()), Route::SignIn("u42"));
        for body in [&b""[..], b"{}", br#"{"checks":{"user":{"userId":""}}}"#] {
            assert_eq!(route(&Method::POST, "/v2/sessions", body), Route::Unknown, "{body:?}");
        }
        assert_eq!(route(&Method::GET, "/v2/sessions", body.as_bytes()), Route::Unknown);
    }
}
