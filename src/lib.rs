//! ticketgate: an email-driven ticketing gateway.
//!
//! Data flows one way. Reading order, in the order a message travels:
//!
//! ```text
//! mail in (inbound: IMAP, Maildir, file) → parse → route (thread) → policy (sender,
//! loops, attachments) → pipeline (one transaction) → store → notify (outbox rows)
//! → outbound (SMTP or .eml folder)
//!
//! web → auth → store (and the same pipeline actions as mail)
//! ```
//!
//! Leaf modules (`config`, `clock`, `code`, `digest`, `durable`, `format`, `header`, `id`,
//! `proxy`, `signing`, `address`, `lifecycle`, `parse`, `route`, `policy`) do
//! no I/O beyond what their doc says; only `pipeline`, `serve` and `web`
//! orchestrate. [`app::App`] is what they share: configuration, keys,
//! database and attachment files, opened once per process.

pub mod address;
pub mod clock;
pub mod code;
pub mod config;
pub mod digest;
pub mod durable;
pub mod format;
pub mod header;
pub mod id;
pub mod lifecycle;
pub mod password;
pub mod proxy;
pub mod signing;
pub mod tls;

pub mod parse;
pub mod policy;
pub mod route;

pub mod store;

pub mod actions;
pub mod app;
pub mod deeplink;
pub mod notify;
pub mod pipeline;
pub mod quarantine;

pub mod inbound;
pub mod outbound;

pub mod cli;
pub mod inspect;
pub mod metrics;
pub mod serve;
pub mod web;

#[cfg(test)]
mod hostile;
