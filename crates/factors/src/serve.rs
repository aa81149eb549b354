//! Serving connections with limits a slow or idle client cannot outlast: a deadline for
//! each request's headers, an idle timeout for connections with nothing in flight, and a
//! cap on open connections. axum's own `serve` has none of these (hyper's header timeout
//! needs a timer it does not give), so a silent socket, a half-sent header or an idle
//! keep-alive connection stayed open for as long as the client liked.
//!
//! HTTP/1 and HTTP/2 (gRPC) are served on the same port, as before.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// What a connection may cost the server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From the moment the server waits for a request until its headers are complete.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes either way for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// Connections beyond this many are closed as soon as they are accepted.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, asks
/// every connection to finish what it is doing, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: give the system a moment.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // At debug level: a flood of connections must not become a flood of log lines.
            tracing::debug!(%peer, max = limits.max_connections, "connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let (router, stopping) = (router.clone(), stopping.clone());
        tokio::spawn(async move {
            connection(stream, peer, router, limits, stopping).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let service = {
        let (activity, in_flight) = (activity.clone(), in_flight.clone());
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let working = Working::start(&in_flight, &activity);
            let router = router.clone();
            async move {
                let mut request = request.map(axum::body::Body::new);
                // The peer, for the client address the events record (`factors_api_http::origin`).
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let answered = router.oneshot(request).await;
                drop(working);
                answered
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut finishing = false;
    // hyper's header timeout starts once it knows the protocol, which takes a first byte:
    // a client that never sends one is bounded here. The branch's condition is checked
    // only when `select!` is entered, and the connection's future runs inside it for as
    // long as the connection lives, so the timer's end is checked again: a client that
    // did send (and is being served) is no longer bounded by it.
    let first_byte = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_byte);
    let mut awaiting_first_byte = true;
    loop {
        tokio::select! {
            () = &mut first_byte, if awaiting_first_byte => {
                awaiting_first_byte = false;
                if !activity.heard() {
                    tracing::debug!("closing a connection that sent nothing");
                    return;
                }
            }
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "a connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(activity.last() + limits.idle_timeout), if !finishing => {
                let quiet = activity.last() + limits.idle_timeout <= Instant::now();
                if quiet && in_flight.load(Ordering::SeqCst) == 0 {
                    tracing::debug!("closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    finishing = true;
                } else if quiet {
                    // A request is being worked on; its own deadline bounds it.
                    activity.touch();
                }
            }
            changed = stopping.changed(), if !finishing => {
                if changed.is_err() || *stopping.borrow() {
                    conn.as_mut().graceful_shutdown();
                    finishing = true;
                }
            }
        }
    }
}

/// When a connection last moved a byte or finished a request, and whether the client
/// ever sent one.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// Milliseconds since `origin`.
    last: AtomicU64,
    heard: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Self { origin: Instant::now(), last: AtomicU64::new(0), heard: AtomicBool::new(false) }
    }
}

impl Activity {
    fn heard(&self) -> bool {
        self.heard.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// A request being worked on: counted from the call until its answer (or cancellation).
struct Working {
    in_flight: Arc<AtomicUsize>,
    activity: Arc<Activity>,
}

impl Working {
    fn start(in_flight: &Arc<AtomicUsize>, activity: &Arc<Activity>) -> Self {
        in_flight.fetch_add(1, Ordering::SeqCst);
        activity.touch();
        Self { in_flight: in_flight.clone(), activity: activity.clone() }
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.activity.touch();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream that notes every byte moved on [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.heard.store(true, Ordering::Relaxed);
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
