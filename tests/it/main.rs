//! The single integration-test binary (one link on a 2-core machine), one
//! module per area. `common` is the harness: real Dovecot, Postfix and an
//! SMTP capture server on 127.0.0.1, and the real `ticketgate` binary.

mod common;

mod accounts;
mod attachments;
mod browser;
mod full_loop;
mod imap;
mod inspect;
mod login;
mod maildir;
mod ops;
mod outbound;
mod pages;
mod pipeline;
mod quarantine;
mod trim;
mod web;
