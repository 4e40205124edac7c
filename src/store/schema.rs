//! Migrations in code, tracked with `PRAGMA user_version`. Each entry runs
//! once, in order, inside a transaction; never edit a released entry, add a
//! new one.

use rusqlite::Connection;

use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    r#"
    CREATE TABLE teams (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,          -- normalised: trimmed, lower case
        name          TEXT NOT NULL DEFAULT '',
        role          TEXT NOT NULL CHECK (role IN ('member', 'admin', 'staff')),
        team_id       INTEGER REFERENCES teams(id),
        password_hash TEXT,                          -- argon2id PHC string
        disabled      INTEGER NOT NULL DEFAULT 0,
        bouncing      TEXT,                          -- why mail to this address bounces
        created_at    INTEGER NOT NULL,
        CHECK (role = 'staff' OR team_id IS NOT NULL)
    );
    CREATE INDEX users_team ON users(team_id);
    CREATE TABLE tickets (
        id            INTEGER PRIMARY KEY,
        team_id       INTEGER NOT NULL REFERENCES teams(id),
        opener_id     INTEGER NOT NULL REFERENCES users(id),
        subject       TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('waiting_for_support', 'waiting_for_customer', 'closed')),
        source        TEXT NOT NULL DEFAULT '',      -- mailbox label, or 'web'
        internal_ref  TEXT NOT NULL DEFAULT '',
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX tickets_updated ON tickets(updated_at DESC, id DESC);
    CREATE INDEX tickets_team_updated ON tickets(team_id, updated_at DESC, id DESC);
    CREATE INDEX tickets_team_status_updated ON tickets(team_id, status, updated_at DESC, id DESC);
    CREATE INDEX tickets_status_updated ON tickets(status, updated_at DESC, id DESC);
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY,
        ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
        author_id   INTEGER REFERENCES users(id),
        author_role TEXT NOT NULL,
        via         TEXT NOT NULL CHECK (via IN ('mail', 'web')),
        event       TEXT NOT NULL,                   -- lifecycle::Event
        body        TEXT NOT NULL,
        message_id  TEXT,                            -- RFC 5322 Message-ID, no brackets
        raw         BLOB,                            -- the original message, for mail
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX messages_ticket ON messages(ticket_id, id);
    -- Not a partial index: with `message_id = ?` SQLite would re-prepare the
    -- statement on every binding to prove the parameter is not NULL.
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE INDEX messages_author ON messages(author_id);
    CREATE TABLE attachments (
        id          INTEGER PRIMARY KEY,
        ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
        message_id  INTEGER REFERENCES messages(id),
        filename    TEXT NOT NULL,
        size        INTEGER NOT NULL,
        detected    TEXT,
        sha256      TEXT,                            -- NULL when refused
        refused     TEXT,                            -- NULL when accepted, else the reason code
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX attachments_ticket ON attachments(ticket_id);
    -- Notes on a ticket that are not messages: refusals, delivery failures, bounces.
    CREATE TABLE ticket_events (
        id          INTEGER PRIMARY KEY,
        ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
        kind        TEXT NOT NULL,
        detail      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id);
    -- Idempotency: every inbound message is handled once.
    CREATE TABLE processed (
        key         TEXT PRIMARY KEY,                -- 'mid:<Message-ID>' or 'sha256:<hex>'
        outcome     TEXT NOT NULL,
        ticket_id   INTEGER,
        at          INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE quarantine (
        id          INTEGER PRIMARY KEY,
        reason      TEXT NOT NULL,                   -- stable code
        detail      TEXT NOT NULL,
        source      TEXT NOT NULL,
        message_id  TEXT,
        sender      TEXT,
        subject     TEXT,
        raw         BLOB NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        message_id      TEXT NOT NULL UNIQUE,        -- ours, fixed before the first attempt, no brackets
        ticket_id       INTEGER REFERENCES tickets(id),
        kind            TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        raw             BLOB NOT NULL,               -- the rendered message
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        sent_at         INTEGER
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_ticket ON outbox(ticket_id);
    -- Rate limit for notices to senders.
    CREATE TABLE notices (
        address     TEXT PRIMARY KEY,
        last_at     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,                -- SHA-256 of the cookie value
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE login_failures (
        key         TEXT NOT NULL,                   -- 'user:<email>' or 'addr:<ip>'
        at          INTEGER NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(key, at);
    CREATE TABLE imap_state (
        mailbox     TEXT NOT NULL,
        folder      TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid    INTEGER NOT NULL,
        PRIMARY KEY (mailbox, folder)
    ) WITHOUT ROWID;
    -- Full-text search: one row per message body, subject and internal
    -- reference, numbered ticket << 24 | n (see store::tickets::index_text).
    CREATE VIRTUAL TABLE search USING fts5(
        text, kind UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    "#,
    // 2: portal list orders (created, subject, status) read one page from an index.
    r#"
    CREATE INDEX tickets_created ON tickets(created_at DESC, id DESC);
    CREATE INDEX tickets_team_created ON tickets(team_id, created_at DESC, id DESC);
    CREATE INDEX tickets_subject ON tickets(subject COLLATE NOCASE, id);
    CREATE INDEX tickets_team_subject ON tickets(team_id, subject COLLATE NOCASE, id);
    CREATE INDEX tickets_status_sort ON tickets(status, updated_at, id);
    CREATE INDEX tickets_team_status_sort ON tickets(team_id, status, updated_at, id);
    "#,
    // 3: mail posted without evidence of its sender ("sender not verified").
    r#"
    ALTER TABLE messages ADD COLUMN unverified INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: a re-delivered quarantined message is found by its key and stays quarantined; a
    // message too large for the database is kept as a file.
    r#"
    ALTER TABLE quarantine ADD COLUMN dedup_key TEXT;   -- processed.key of the message
    ALTER TABLE quarantine ADD COLUMN raw_path TEXT;    -- the whole message, when raw holds only its header
    CREATE INDEX quarantine_key ON quarantine(dedup_key);
    "#,
    // 5: what the sender was told, and what a person did with the entry; alias addresses.
    r#"
    ALTER TABLE quarantine ADD COLUMN notice TEXT;      -- 'sent to ADDRESS' or 'not sent: why'
    ALTER TABLE quarantine ADD COLUMN resolution TEXT;  -- NULL while waiting; 'released ...' or 'deleted'
    ALTER TABLE quarantine ADD COLUMN resolved_by TEXT;
    ALTER TABLE quarantine ADD COLUMN resolved_at INTEGER;
    CREATE INDEX quarantine_created ON quarantine(created_at);
    CREATE TABLE aliases (
        address     TEXT PRIMARY KEY,                -- normalised like users.email
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX aliases_user ON aliases(user_id);
    "#,
    // 6: what reply trimming took from a mail (quoted history, signature), shown folded.
    r#"
    ALTER TABLE messages ADD COLUMN quoted TEXT NOT NULL DEFAULT '';
    "#,
    // 7: a reply or new ticket typed while the session ran out, kept across
    // the login for the new session and taken back once by the page it was for.
    r#"
    CREATE TABLE drafts (
        session     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,                   -- the page: /t/N or /new
        subject     TEXT NOT NULL DEFAULT '',
        body        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (session, path)
    ) WITHOUT ROWID;
    "#,
    // 8: notifications are rendered by the outbox worker, not inside the ticket change's
    // transaction: the row holds what the mail says (`notify::draft::Draft`, JSON) until then.
    r#"
    ALTER TABLE outbox ADD COLUMN draft TEXT;            -- NULL when raw holds the rendered message
    "#,
    // 9: the staff work queue and times in the viewer's zone: who closed or reopened a ticket
    // and where that falls in the thread, what each user last saw of each ticket (unread
    // markers), and each user's time zone ('' = web.time_zone).
    r#"
    ALTER TABLE ticket_events ADD COLUMN actor_id INTEGER REFERENCES users(id);
    ALTER TABLE ticket_events ADD COLUMN after_message_id INTEGER;  -- the newest message then
    ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
    CREATE TABLE ticket_seen (
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
        message_id  INTEGER NOT NULL,                -- the newest message shown then
        event_id    INTEGER NOT NULL,                -- the newest ticket_events row shown then
        seen_at     INTEGER NOT NULL,
        PRIMARY KEY (user_id, ticket_id)
    ) WITHOUT ROWID;
    "#,
    // 10: "did this user write on this ticket" (every reply with a `[#N]` tag asks) is one
    // entry of this index; with `messages_author` alone it read every message the user
    // ever wrote, which for a staff agent of a large store is most of `messages`.
    r#"
    CREATE INDEX messages_author_ticket ON messages(author_id, ticket_id);
    DROP INDEX messages_author;
    "#,
    // 11: substring search in any script. Attachment names become `search` rows
    // (kind 'attachment', numbered after the ticket's last row), and a trigram
    // index holds the same rows under the same rowids. It keeps its own copy of
    // the text: FTS5 cannot read its content from another virtual table.
    r#"
    CREATE TEMP TABLE attachment_text AS
    SELECT a.filename AS name,
           coalesce((SELECT rowid + 1 FROM search
                     WHERE rowid >= a.ticket_id << 24 AND rowid < (a.ticket_id + 1) << 24
                     ORDER BY rowid DESC LIMIT 1), a.ticket_id << 24)
           + row_number() OVER (PARTITION BY a.ticket_id ORDER BY a.id) - 1 AS row
    FROM attachments a WHERE trim(a.filename) != '';
    INSERT INTO search(rowid, text, kind) SELECT row, name, 'attachment' FROM attachment_text;
    DROP TABLE attachment_text;
    CREATE VIRTUAL TABLE search_trigram USING fts5(
        text, kind UNINDEXED,
        tokenize = 'trigram remove_diacritics 1'
    );
    INSERT INTO search_trigram(rowid, text, kind) SELECT rowid, text, kind FROM search;
    "#,
];

/// Brings the schema up to the newest version. Safe when several processes
/// open a new database at once (`serve` and an MTA's `ingest`): the version
/// is read again under the write lock before each step.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(StoreError::TooNew { found: version, known });
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else { return Ok(()) };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    #[test]
    fn migration_11_indexes_stored_texts_and_attachment_names_by_trigram() {
        let mut c = Connection::open_in_memory().unwrap();
        // A database of version 6, with rows as that version wrote them.
        let tx = c.transaction().unwrap();
        for sql in &super::MIGRATIONS[..6] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 6).unwrap();
        tx.execute_batch(
            "INSERT INTO teams(id, name, created_at) VALUES (1, 'Acme', 0);
             INSERT INTO users(id, email, role, team_id, created_at) VALUES (1, 'a@acme.test', 'member', 1, 0);
             INSERT INTO tickets(id, team_id, opener_id, subject, status, created_at, updated_at)
             VALUES (1, 1, 1, 'Drucker', 'closed', 0, 0), (2, 1, 1, '請求書について', 'closed', 0, 0),
                    (3, 1, 1, '', 'closed', 0, 0);
             INSERT INTO search(rowid, text, kind)
             VALUES (1 << 24, 'Drucker', 'subject'), ((1 << 24) + 1, 'Die Druckerpatrone ist leer', 'message'),
                    (2 << 24, '請求書について', 'subject');
             INSERT INTO attachments(ticket_id, filename, size, created_at)
             VALUES (1, 'patrone.jpg', 1, 0), (2, '見積書.pdf', 1, 0), (2, 'scan.png', 1, 0), (3, 'x.txt', 1, 0);",
        )
        .unwrap();
        tx.commit().unwrap();
        super::migrate(&mut c).unwrap();
        let rows = |table: &str, q: &str| -> Vec<(i64, String)> {
            let sql = format!("SELECT rowid, kind FROM {table} WHERE {table} MATCH ?1 ORDER BY rowid");
            let mut st = c.prepare(&sql).unwrap();
            st.query_map([q], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
        };
        let row = |ticket: i64, n: i64, kind: &str| ((ticket << 24) + n, kind.to_string());
        let trigram = |q: &str| rows("search_trigram", q);
        assert_eq!(trigram("\"patrone\""), [row(1, 1, "message"), row(1, 2, "attachment")]);
        assert_eq!(trigram("\"求書に\""), [row(2, 0, "subject")]);
        assert_eq!(trigram("\"見積書\""), [row(2, 1, "attachment")]);
        assert_eq!(trigram("\"scan.png\""), [row(2, 2, "attachment")]);
        assert_eq!(trigram("\"x.txt\""), [row(3, 0, "attachment")], "a ticket without texts starts at n = 0");
        assert_eq!(rows("search", "scan"), [row(2, 2, "attachment")], "attachment names are words too");
        c.execute_batch("INSERT INTO search_trigram(search_trigram) VALUES ('integrity-check')").unwrap();
    }

    #[test]
    fn concurrent_openers_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.sqlite");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || crate::store::Db::open(&path).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    }
}
