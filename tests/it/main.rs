
mod common;
mod imap;
mod web;
mod browser;
mod attachments;
mod inspect;
mod outbound;
