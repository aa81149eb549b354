//! A TCP proxy a test controls, to stand between the service and Redis or PostgreSQL: it can go down
//! (dropping every connection and refusing new ones), come back, and slow down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
struct Control {
    up: AtomicBool,
    delay_ms: AtomicU64,
    /// Changes whenever the proxy goes down, so live connections end.
    cut: watch::Sender<u64>,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port for the proxy");
        let addr = listener.local_addr().expect("bound");
        let (cut, _) = watch::channel(0);
        let control = Arc::new(Control { up: AtomicBool::new(true), delay_ms: AtomicU64::new(0), cut });
        let upstream = upstream.to_owned();
        let task = tokio::spawn({
            let control = control.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !control.up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(forward(client, upstream.clone(), control.clone()));
                }
            }
        });
        Self { addr, control, task }
    }

    /// `127.0.0.1:<port>`: where clients should connect.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:<port>`: where clients should connect.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Drops every connection and refuses new ones, as a killed server would.
    pub fn down(&self) {
        self.control.up.store(false, Ordering::SeqCst);
        self.control.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.control.up.store(true, Ordering::SeqCst);
    }

    /// Delays every chunk forwarded in either direction by `delay`.
    pub fn slow(&self, delay: Duration) {
        self.control.delay_ms.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.down();
        self.task.abort();
    }
}

async fn forward(client: TcpStream, upstream: String, control: Arc<Control>) {
    let Ok(server) = TcpStream::connect(&upstream).await else { return };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut cut = control.cut.subscribe();
    tokio::select! {
        () = pump(client_read, server_write, control.clone()) => {}
        () = pump(server_read, client_write, control.clone()) => {}
        _ = cut.changed() => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = control.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if !control.up.load(Ordering::SeqCst) || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
