//! The application context: configuration, signing keys, database and
//! attachment files, opened once per process ([`App::open`]) and shared,
//! cheaply cloned, by the commands, `serve`, the mail pipeline (whose
//! methods are in [`crate::pipeline`]) and the web portal.

use std::sync::Arc;

use anyhow::Context;

use crate::actions::Env;
use crate::config::Config;
use crate::signing::Keyring;
use crate::store::{Blobs, Db};

#[derive(Clone)]
pub struct App {
    pub(crate) config: Arc<Config>,
    pub(crate) keys: Keyring,
    pub(crate) db: Db,
    pub(crate) blobs: Blobs,
}

impl App {
    /// Opens the database (migrating its schema) and loads the server
    /// secret (creating it on first use). Blocking.
    pub fn open(config: Arc<Config>) -> anyhow::Result<App> {
        let timeout = std::time::Duration::from_millis(config.store.busy_timeout_millis);
        let db = Db::open_with_timeout(&config.store.path, timeout)
            .with_context(|| format!("opening the database {}", config.store.path.display()))?;
        let keys = Keyring::load_or_create(&config.security.secret_file, &config.security.previous_secrets)?;
        Ok(App::new(config, keys, db))
    }

    /// An App from parts already open (tests, benchmarks).
    pub fn new(config: Arc<Config>, keys: Keyring, db: Db) -> App {
        let blobs = Blobs::new(config.store.blobs.clone());
        App { config, keys, db, blobs }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn shared_config(&self) -> Arc<Config> {
        self.config.clone()
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The context for [`crate::actions`] at time `now`.
    pub fn env(&self, now: i64) -> Env<'_> {
        Env { config: &self.config, keys: &self.keys, blobs: &self.blobs, now }
    }
}
