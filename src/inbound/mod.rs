//! MAIL IN: sources of raw messages. Each source hands messages to the
//! [`Pipeline`](crate::pipeline::Pipeline) and settles them (files them as
//! processed or quarantined) only after the pipeline's transaction has
//! committed; a crash in between re-delivers the message, which the
//! pipeline then recognises as a duplicate.

pub mod imap;
pub mod maildir;

/// Where a source files a message once the pipeline is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Processed,
    Quarantined,
}

impl Settle {
    pub fn of(outcome: &crate::pipeline::Outcome) -> Settle {
        if outcome.quarantine_reason().is_some() { Settle::Quarantined } else { Settle::Processed }
    }
}
