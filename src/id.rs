//! Row ids that cross modules, each its own type so a ticket id cannot be
//! passed where a user id is meant. Stored and shown as the plain integer.

/// Declares an id newtype over the row id: `Display`, serde and rusqlite
/// read and write the bare integer.
macro_rules! row_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.0))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                value.as_i64().map($name)
            }
        }
    };
}

row_id!(
    /// `tickets.id`: the number in `[#N]`.
    TicketId
);
row_id!(
    /// `users.id`.
    UserId
);
row_id!(
    /// `messages.id` (the row, not the Message-ID header).
    MessageId
);
row_id!(
    /// `teams.id`.
    TeamId
);
row_id!(
    /// `quarantine.id`: the entry number of `quarantine list` and the portal.
    QuarantineId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_bare_integer_everywhere() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let (raw, back): (i64, TicketId) =
            db.query_row("SELECT ?1, ?1", [TicketId(42)], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((raw, back), (42, TicketId(42)));
        assert_eq!(TicketId(42).to_string(), "42");
        assert_eq!("42".parse(), Ok(UserId(42)));
        assert_eq!(serde_json::to_string(&MessageId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<TeamId>("3").unwrap(), TeamId(3));
    }
}
