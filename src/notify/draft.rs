//! DRAFT: what a queued mail says, frozen when the ticket change happened,
//! and how the outbox worker turns it into the message it sends. Rendering
//! (askama) and MIME building (lettre) were most of the cost of a ticket
//! change's write transaction; now the transaction stores the draft and the
//! worker does that work outside it.
//!
//! A draft renders to the same bytes every time (its Date is the event's
//! time, its MIME boundary follows from its Message-ID), so a mail sent
//! again after a crash is the same mail, and what tools show of a queued
//! mail is what goes out.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::compose::{self, Outgoing};
use super::lang::{self, Lang};
use super::templates::{self, Kind, Mail};
use crate::store::Result;
use crate::store::outbox::{self, Stored};

/// Everything one mail needs, as it was at the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draft {
    pub kind: Kind,
    /// The language of a notice ([`Lang::tag`]); ticket mails are English.
    pub lang: String,
    pub mail: Mail,
    pub from_name: String,
    pub from: String,
    pub to_name: String,
    pub to: String,
    pub reply_to: String,
    pub subject: String,
    /// Our Message-ID, without brackets; the outbox row has the same.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub thread_topic: Option<String>,
    pub auto_submitted: String,
    /// When the event happened (Unix seconds): the mail's Date.
    pub date: i64,
}

impl Draft {
    /// The message as it is sent, or why it cannot be made (said as the
    /// ticket's `notify_failed` note says it).
    pub fn render(mut self) -> Result<Vec<u8>, String> {
        self.mail.said = lang::said(self.kind, Lang::of(Some(&self.lang)), &self.mail);
        let built = templates::render(self.kind, &self.mail).map_err(|e| e.to_string()).and_then(|(text, html)| {
            compose::build(&Outgoing {
                from_name: &self.from_name,
                from: &self.from,
                to_name: &self.to_name,
                to: &self.to,
                reply_to: &self.reply_to,
                subject: &self.subject,
                message_id: &self.message_id,
                in_reply_to: self.in_reply_to.as_deref(),
                references: &self.references,
                thread_topic: self.thread_topic.as_deref(),
                auto_submitted: &self.auto_submitted,
                date: self.date,
                text,
                html,
            })
            .map_err(|e| e.to_string())
        });
        built.map_err(|why| format!("No {} mail could be made for {}: {why}", self.kind.as_str(), self.to))
    }
}

/// The mail of outbox row `id` as it is sent: rendered from its draft
/// (`Err` with the reason when it cannot be), or as stored.
pub fn outgoing(c: &Connection, id: i64) -> Result<Result<Vec<u8>, String>> {
    Ok(match outbox::stored(c, id)? {
        Stored::Raw(raw) => Ok(raw),
        Stored::Draft(json) => match serde_json::from_str::<Draft>(&json) {
            Ok(draft) => draft.render(),
            Err(e) => Err(format!("the queued mail cannot be read: {e}")),
        },
    })
}
