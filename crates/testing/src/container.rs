//! Starting a server in a reused container, the same way for every kind of server.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use testcontainers::core::ReuseDirective;
use testcontainers::runners::AsyncRunner;
use testcontainers::{Image, ImageExt};

use crate::docker;

/// The server `start` gives, when a Docker engine answers and the container starts; else
/// `Err` with what the final failure message adds: why the container did not start, or
/// nothing when no engine answered.
///
/// A Docker engine that cannot start the container (no registry, say) is not the end: the
/// local server may still answer, so the failure is said on stderr and left to the caller.
pub(crate) async fn try_start<T>(what: &str, start: impl Future<Output = anyhow::Result<T>>) -> Result<T, String> {
    if !docker::engine_answers().await {
        return Err(String::new());
    }
    start.await.map_err(|e| {
        eprintln!(
            "factors-testing: Docker answers, but the {what} container did not start ({e:#}); trying the local server"
        );
        format!("\n  (Docker answered, but the container did not start: {e:#})")
    })
}

/// A container that runs, and where its port is mapped.
pub(crate) struct Started {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Starts (or finds running) the container of `kind` for the image named in `$image_env`
/// (default `default_image`), with `args` as its command when given.
///
/// The container is kept (testcontainers' reuse) under a name derived from the image and
/// arguments, so an override never reuses another's container, and later test processes
/// start in milliseconds.
pub(crate) async fn start_reused<I: Image>(
    kind: &str,
    image_env: &str,
    default_image: &str,
    module: impl Fn() -> I,
    args: &[&str],
    port: u16,
) -> anyhow::Result<Started> {
    let image = std::env::var(image_env).unwrap_or_else(|_| default_image.to_owned());
    let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
    let container_name = format!("factors-test-{kind}-{}", suffix(&format!("{image} {}", args.join(" "))));
    let request = || {
        let request = module().with_name(name).with_tag(tag);
        let request = if args.is_empty() { request } else { request.with_cmd(args.iter().copied()) };
        request
            .with_container_name(&container_name)
            .with_reuse(ReuseDirective::Always)
            .with_startup_timeout(Duration::from_secs(120))
    };
    // Two test processes may race to create the named container; the loser finds it running.
    let container = match request().start().await {
        Ok(container) => container,
        Err(_) => request().start().await.with_context(|| format!("starting {image} through testcontainers"))?,
    };
    let host = container.get_host().await?.to_string();
    let port = container.get_host_port_ipv4(port).await?;
    Ok(Started { name: container_name, host, port })
}

/// Fails unless the server `what` in `started` answers (`answers`, asked as by [`until_answers`]).
pub(crate) async fn ensure_answers<F, Fut>(started: &Started, what: &str, answers: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    anyhow::ensure!(
        until_answers(answers).await,
        "container {} started but {what} does not answer at {}:{}",
        started.name,
        started.host,
        started.port
    );
    Ok(())
}

/// Asks `answers` up to 50 times, 200 ms apart, until it says yes.
async fn until_answers<F, Fut>(mut answers: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..50 {
        if answers().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A short, stable suffix per image and arguments.
fn suffix(spec: &str) -> String {
    let hash = spec.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", hash & 0xffff_ffff)
}
