//! The store a deployment runs on, opened from the settings: PostgreSQL or the embedded
//! SQLite file, both behind the same ports.

use std::sync::Arc;

use async_trait::async_trait;
use factors_adapters_postgres::PgStore;
use factors_adapters_sqlite::SqliteStore;
use factors_application::ports::{AuditLog, Outbox, PolicyStore, SessionStore, Unexpected, UserReader, UserWriter};
use factors_domain::InstanceId;

use crate::settings::{Settings, StoreChoice};

/// Every port a store serves, and the probe of `/readyz`.
#[async_trait]
pub trait Store: UserReader + UserWriter + SessionStore + AuditLog + PolicyStore + Outbox {
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), Unexpected>;
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), Unexpected> {
        PgStore::ping(self).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), Unexpected> {
        SqliteStore::ping(self).await
    }
}

/// An opened store, and the node number this process mints ids with.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// `postgres` or `sqlite`, as `/readyz` names it.
    pub name: &'static str,
    pub id_node: u16,
}

/// Opens the store `database.url` names, migrating it when `migrate` (SQLite files are
/// always brought up to date: nothing else could migrate them).
///
/// # Errors
/// When the database cannot be reached, created, opened or migrated; the message says
/// where and which setting to change.
pub async fn open(settings: &Settings, instance: InstanceId, migrate: bool) -> anyhow::Result<Opened> {
    let choice = settings.store()?;
    let name = choice.name();
    let (store, id_node): (Arc<dyn Store>, u16) = match choice {
        StoreChoice::Postgres { config, connect_wait } => {
            let elsewhere = if migrate { config.for_migrations()? } else { None };
            if let Some(direct) = &elsewhere {
                let pool = factors_adapters_postgres::connect(direct, connect_wait).await?;
                factors_adapters_postgres::migrate(&pool).await?;
                pool.close().await;
            }
            let pool = factors_adapters_postgres::connect(&config, connect_wait).await?;
            if migrate && elsewhere.is_none() {
                factors_adapters_postgres::migrate(&pool).await?;
            }
            let node = match settings.ids.node {
                Some(node) => node,
                None => factors_adapters_postgres::allocate_id_node(&pool).await?,
            };
            (Arc::new(PgStore::behind(&pool, instance, config.pooler)), node)
        }
        StoreChoice::Sqlite(config) => {
            let store = SqliteStore::open(&config, instance).await?;
            let node = match settings.ids.node {
                Some(node) => node,
                None => store.allocate_id_node().await?,
            };
            (Arc::new(store), node)
        }
    };
    Ok(Opened { store, name, id_node })
}
