//! The HTTP floor: the service's statements behind the leanest HTTP server the harness
//! can make, to show how much of the distance between the service and pgbench any HTTP
//! front end pays on this machine, before any product logic.
//!
//! It is this same binary, started as a process of its own (`--floor-server`), so that
//! its CPU is measured apart, as the service's is. It is hyper's HTTP/1 server with one
//! sqlx connection per HTTP connection (no pool), with the settings the service's
//! sessions have, and it does only what the database work needs: no token, no log line,
//! no metrics, no access rules, no JSON library. It answers:
//!
//! - `DELETE /resources/v3alpha/users/{user}/otp_sms/{otp}`: in [`Removal::ReadThenWrite`]
//!   mode `LOAD_USER`, then `REMOVE_OTP_SMS` guarded by the version read (a cold removal's
//!   statements); in [`Removal::OneStatement`] mode `REMOVE_OTP_SMS` alone, guarded by the
//!   seeded version (what a warm removal sends). 200 when the user moved, 409 when not,
//!   404 when the read finds no such authenticator.
//! - `GET /resources/v3alpha/users/{user}`: `LOAD_USER`; 200, or 404 without rows.
//! - `GET /healthz`: 200.

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use factors_adapters_postgres::sql;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sqlx::postgres::PgConnectOptions;
use sqlx::types::Json;
use sqlx::{ConnectOptions, PgConnection, Row};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::database::{ACTOR, INSTANCE, ORG, REMOVED_EVENT, SEEDED_AT_EPOCH, SEEDED_SEQUENCE};

/// What a DELETE sends to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Removal {
    /// The read and the guarded write of a cold removal.
    ReadThenWrite,
    /// The guarded write alone, on the seeded version: a warm removal's statement.
    OneStatement,
}

const USERS: &str = "/resources/v3alpha/users/";

/// Serves on `addr` until killed.
///
/// # Errors
/// When the address cannot be bound or the database URL does not parse.
pub async fn serve(addr: &str, database_url: &str, removal: Removal) -> anyhow::Result<()> {
    let options: PgConnectOptions = database_url.parse().context("--database-url")?;
    let options = options.options(sql::SESSION_SETTINGS.iter().copied());
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    loop {
        let (stream, _) = listener.accept().await.context("accepting")?;
        let options = options.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(connection) = options.connect().await else { return };
            let connection = Arc::new(Mutex::new(connection));
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let connection = connection.clone();
                async move {
                    let mut connection = connection.lock().await;
                    let (status, body) = answer(&mut connection, removal, request.method(), request.uri().path())
                        .await
                        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")));
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Health,
    GetUser(&'a str),
    Remove { user: &'a str, otp: &'a str },
    Unknown,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if path == "/healthz" {
        return Route::Health;
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

async fn answer(
    connection: &mut PgConnection,
    removal: Removal,
    method: &Method,
    path: &str,
) -> anyhow::Result<(StatusCode, String)> {
    match route(method, path) {
        Route::Health => Ok((StatusCode::OK, "{}".to_owned())),
        Route::GetUser(user) => {
            let rows = sqlx::query(sql::LOAD_USER).bind(INSTANCE).bind(user).fetch_all(&mut *connection).await?;
            let Some(row) = rows.first() else { return Ok((StatusCode::NOT_FOUND, String::new())) };
            let sequence: i64 = row.try_get("sequence")?;
            Ok((StatusCode::OK, format!(r#"{{"user":{{"id":"{user}","sequence":{sequence},"rows":{}}}}}"#, rows.len())))
        }
        Route::Remove { user, otp } => remove(connection, removal, user, otp).await,
        Route::Unknown => Ok((StatusCode::NOT_FOUND, String::new())),
    }
}

async fn remove(
    connection: &mut PgConnection,
    removal: Removal,
    user: &str,
    otp: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let now = Utc::now();
    let (guard, next, phone) = match removal {
        Removal::ReadThenWrite => {
            let rows = sqlx::query(sql::LOAD_USER).bind(INSTANCE).bind(user).fetch_all(&mut *connection).await?;
            // The authenticator's row, if the user holds it: otherwise nothing to remove.
            let Some(row) = rows.iter().find(|r| r.try_get::<Option<&str>, _>("otp_id").ok().flatten() == Some(otp))
            else {
                return Ok((StatusCode::NOT_FOUND, String::new()));
            };
            let sequence: i64 = row.try_get("sequence")?;
            let changed: DateTime<Utc> = row.try_get("changed_at")?;
            let phone: String = row.try_get("otp_phone")?;
            let next = (sequence + 1, now.max(changed + TimeDelta::microseconds(1)));
            ((sequence, changed), next, phone)
        }
        Removal::OneStatement => {
            let seeded = DateTime::from_timestamp(SEEDED_AT_EPOCH, 0).context("the seed's time")?;
            // The seed's number holds the user's digits; the write only masks it.
            let digits: String = user.chars().filter(char::is_ascii_digit).collect();
            ((SEEDED_SEQUENCE, seeded), (SEEDED_SEQUENCE + 1, now), format!("+4179{digits:0>7}"))
        }
    };
    let masked = format!("{}******{}", &phone[..phone.len().min(3)], &phone[phone.len().saturating_sub(3)..]);
    let payload = serde_json::json!({
        "actor": ACTOR, "userId": user, "at": next.1, "otpSmsId": otp, "phone": masked, "lastFactor": true,
    });
    let moved: i64 = sqlx::query_scalar(sql::REMOVE_OTP_SMS)
        .bind(INSTANCE)
        .bind(user)
        .bind(guard.0)
        .bind(guard.1)
        .bind(next.0)
        .bind(next.1)
        .bind("user")
        .bind(REMOVED_EVENT)
        .bind(Json(payload))
        .bind(ACTOR)
        .bind(ORG)
        .bind(otp)
        // Guarded by the login policies (none stored: versions 0), no notice.
        .bind(true)
        .bind(0_i64)
        .bind(0_i64)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .fetch_one(&mut *connection)
        .await?;
    if moved == 1 {
        Ok((StatusCode::OK, format!(r#"{{"details":{{"id":"{otp}","changed":"{}"}}}}"#, next.1.to_rfc3339())))
    } else {
        Ok((StatusCode::CONFLICT, String::new()))
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
        assert_eq!(route(&Method::GET, "/healthz"), Route::Health);
        assert_eq!(route(&Method::GET, "/resources/v3alpha/users/u7"), Route::GetUser("u7"));
        assert_eq!(
            route(&Method::DELETE, "/resources/v3alpha/users/u7/otp_sms/o7"),
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
            assert_eq!(route(&method, path), Route::Unknown, "{method} {path}");
        }
    }
}
