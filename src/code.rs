//! Stable codes: the words the database, the logs, `inspect`, the metrics
//! and the portal use for reasons and states. Each is an enum whose spelling
//! is pinned here once ([`stable_code!`]), read from and written to SQLite
//! as that text, so the stored values are the ones written before the enums
//! existed and no migration is needed.

/// A word read back (from the database or a flag) that names no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}")]
pub struct UnknownCode {
    pub kind: &'static str,
    pub word: String,
}

/// Declares an enum of stable codes with one pinned spelling per variant:
/// `as_str`, `Display`, `FromStr`, serde and rusqlite all use that text.
#[macro_export]
macro_rules! stable_code {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::code::UnknownCode;

            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::code::UnknownCode { kind: stringify!($name), word: word.to_string() }),
                }
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

stable_code! {
    /// Why a message was kept aside for a person (`quarantine.reason`).
    pub enum QuarantineReason {
        EmptyMessage = "empty_message",
        NoHeaders = "no_headers",
        Unparseable = "unparseable",
        ParserPanic = "parser_panic",
        MessageTooLarge = "message_too_large",
        NoSender = "no_sender",
        AmbiguousSender = "ambiguous_sender",
        DmarcFail = "dmarc_fail",
        UnknownSender = "unknown_sender",
        TokenSenderMismatch = "token_sender_mismatch",
        StaffUnverified = "staff_unverified",
        StaffWithoutTicket = "staff_without_ticket",
        InternalError = "internal_error",
    }
}

stable_code! {
    /// Where an outbox row is in its delivery (`outbox.state`).
    pub enum OutboxState {
        /// Waiting for its next attempt.
        Pending = "pending",
        Sent = "sent",
        /// Gave up after a permanent failure or the last retry.
        Failed = "failed",
    }
}

stable_code! {
    /// Why [`check`](crate::policy::attachments::check) refused an attachment
    /// (`attachments.refused`); [`Refusal::ALL`] is every one.
    pub enum Refusal {
        ExtensionNotAllowed = "extension_not_allowed",
        EmptyFile = "empty_file",
        TooLarge = "too_large",
        MacroEnabled = "macro_enabled",
        ContentMismatch = "content_mismatch",
        NotText = "not_text",
        HtmlDisguisedAsText = "html_disguised_as_text",
        ScriptDisguisedAsText = "script_disguised_as_text",
        TooManyAttachments = "too_many_attachments",
    }
}

stable_code! {
    /// A note on a ticket that is not a post (`ticket_events.kind`), shown to
    /// staff and the team in the thread.
    pub enum EventKind {
        Automatic = "automatic",
        Bounce = "bounce",
        TokenSenderMismatch = "token_sender_mismatch",
        Released = "released",
        NotifyFailed = "notify_failed",
        DeliveryFailed = "delivery_failed",
        /// Someone closed the ticket (`ticket_events.actor_id`).
        Closed = "closed",
        /// Someone's post took the ticket out of Closed.
        Reopened = "reopened",
    }
}

impl EventKind {
    /// A change of status by a person, shown in the thread as "Closed by …";
    /// the others are notes about mail.
    pub fn is_status_change(self) -> bool {
        matches!(self, EventKind::Closed | EventKind::Reopened)
    }
}

stable_code! {
    /// What became of an inbound message, recorded under its idempotency key
    /// (`processed.outcome`) so a re-delivery changes nothing.
    pub enum Settled {
        Opened = "opened",
        Replied = "replied",
        Automatic = "automatic",
        Bounce = "bounce",
        Quarantined = "quarantined",
    }
}

stable_code! {
    /// What an outbox mail is (`outbox.kind`): one of the ticket's thread
    /// mails, or a notice answering one message of one sender, which stays
    /// out of the thread.
    pub enum OutboxKind {
        Ack = "ack",
        NewTicket = "new_ticket",
        Response = "response",
        CustomerUpdate = "customer_update",
        Closed = "closed",
        Reopened = "reopened",
        Updated = "updated",
        Notice = "notice",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|c| as_str(*c)).collect()
    }

    /// The spellings are stored in databases and read by operators: they never change.
    #[test]
    fn spellings_are_pinned() {
        assert_eq!(
            spellings(QuarantineReason::ALL, QuarantineReason::as_str),
            [
                "empty_message",
                "no_headers",
                "unparseable",
                "parser_panic",
                "message_too_large",
                "no_sender",
                "ambiguous_sender",
                "dmarc_fail",
                "unknown_sender",
                "token_sender_mismatch",
                "staff_unverified",
                "staff_without_ticket",
                "internal_error",
            ]
        );
        assert_eq!(spellings(OutboxState::ALL, OutboxState::as_str), ["pending", "sent", "failed"]);
        assert_eq!(
            spellings(EventKind::ALL, EventKind::as_str),
            [
                "automatic",
                "bounce",
                "token_sender_mismatch",
                "released",
                "notify_failed",
                "delivery_failed",
                "closed",
                "reopened"
            ]
        );
        assert_eq!(
            spellings(OutboxKind::ALL, OutboxKind::as_str),
            ["ack", "new_ticket", "response", "customer_update", "closed", "reopened", "updated", "notice"]
        );
        assert_eq!(
            spellings(Settled::ALL, Settled::as_str),
            ["opened", "replied", "automatic", "bounce", "quarantined"]
        );
    }

    /// The schema's CHECK on `outbox.state` admits exactly the pinned states.
    #[test]
    fn outbox_states_match_the_schema() {
        let (db, _dir) = crate::store::testing::db();
        let insert = |state: &str| {
            db.write(|c| {
                c.execute(
                    "INSERT INTO outbox(message_id, kind, recipient, raw, state, next_attempt_at, created_at)
                     VALUES (?1 || '@x', 'notice', 'a@x', x'00', ?1, 0, 0)",
                    [state],
                )?;
                Ok::<_, crate::store::StoreError>(())
            })
        };
        for &s in OutboxState::ALL {
            assert!(insert(s.as_str()).is_ok(), "{s}");
        }
        assert!(insert("queued").is_err());
    }

    #[test]
    fn text_serde_and_sqlite_agree() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for &r in QuarantineReason::ALL {
            assert_eq!(r.as_str().parse::<QuarantineReason>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
            let (text, back): (String, QuarantineReason) =
                db.query_row("SELECT ?1, ?1", [r], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
            assert_eq!((text.as_str(), back), (r.as_str(), r));
        }
        assert!("pending ".parse::<OutboxState>().is_err());
        let stored: rusqlite::Result<OutboxState> = db.query_row("SELECT 'queued'", [], |row| row.get(0));
        assert!(stored.is_err(), "an unknown stored word is an error, not a default");
    }
}
