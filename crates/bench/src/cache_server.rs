//! Redis from the harness's side: whether it answers (the Redis variants run only then),
//! and deleting the keys the service wrote under this run's own prefix.

use std::time::Duration;

use anyhow::Context;

/// Where the Redis variants expect Redis.
pub const URL: &str = "redis://127.0.0.1:6379";

/// Whether Redis answers PING within a second.
pub async fn answers() -> bool {
    tokio::task::spawn_blocking(|| ping().is_ok()).await.unwrap_or(false)
}

fn connection() -> anyhow::Result<redis::Connection> {
    let client = redis::Client::open(URL).context("parsing the Redis URL")?;
    client.get_connection_with_timeout(Duration::from_secs(1)).with_context(|| format!("connecting to {URL}"))
}

fn ping() -> anyhow::Result<()> {
    let mut connection = connection()?;
    let _: String = redis::cmd("PING").query(&mut connection).context("PING")?;
    Ok(())
}

/// A key prefix no other run uses: keys are `{<prefix><instance>:…}…`.
pub fn unique_prefix() -> String {
    format!("factors-bench-{}-{}:", std::process::id(), chrono::Utc::now().timestamp())
}

/// Deletes every key of `prefix`; returns how many there were.
pub async fn delete_prefix(prefix: String) -> anyhow::Result<u64> {
    tokio::task::spawn_blocking(move || {
        let mut connection = connection()?;
        // Every key starts with its hash tag, "{" then the prefix.
        let pattern = format!("{{{prefix}*");
        let keys: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut connection)
            .context("scanning the run's keys")?
            .collect::<Result<_, _>>()
            .context("reading the run's keys")?;
        let mut deleted = 0;
        for chunk in keys.chunks(1000) {
            let n: u64 = redis::cmd("DEL").arg(chunk).query(&mut connection).context("deleting the run's keys")?;
            deleted += n;
        }
        Ok(deleted)
    })
    .await
    .context("the Redis clean-up task panicked")?
}
