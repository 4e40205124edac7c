//! MAIL IN: sources of raw messages. Each source hands messages to the
//! [`App`](crate::app::App) and settles them (files them as
//! processed or quarantined) only after the pipeline's transaction has
//! committed; a crash in between re-delivers the message, which the
//! pipeline then recognises as a duplicate.

pub mod imap;
pub mod maildir;

use crate::pipeline::Outcome;

/// Raw bytes a source reads into memory for one batch, at most: memory is
/// bounded by bytes, not by a message count. A single message up to
/// `limits.max_message_bytes` that is larger still makes a batch of its own;
/// larger ones are never read whole (see
/// [`App::quarantine_oversized`](crate::app::App::quarantine_oversized)).
pub const BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Where a source files a message once the pipeline is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Processed,
    Quarantined,
    /// Nothing was recorded ([`Outcome::Failed`]): the message stays where it is.
    Leave,
}

impl Settle {
    pub fn of(outcome: &Outcome) -> Settle {
        match outcome {
            Outcome::Failed { .. } => Settle::Leave,
            o if o.quarantine_reason().is_some() => Settle::Quarantined,
            _ => Settle::Processed,
        }
    }
}
