//! The per-message pipeline: parse → automatic-mail check → sender checks →
//! route (thread) → post through [`crate::actions`], all in one transaction
//! per message (or per batch, each message in its own savepoint). Nothing is
//! settled at the source until that transaction has committed; a message
//! seen before (same Message-ID, or same content hash without one) changes
//! nothing. Whatever cannot be processed is quarantined with its reason.

use std::sync::Arc;

use crate::actions::Env;
use crate::config::Config;
use crate::signing::Keyring;
use crate::store::{Blobs, Db};

/// Everything a message needs on its way in; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    keys: Keyring,
    db: Db,
    blobs: Blobs,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, keys: Keyring, db: Db) -> Pipeline {
        let blobs = Blobs::new(config.store.blobs.clone());
        Pipeline { config, keys, db, blobs }
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
