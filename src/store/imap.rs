//! Where each IMAP mailbox left off: the folder's UIDVALIDITY and the highest UID whose
//! ticket change has been committed. Written only after the pipeline's commit, so it can lag
//! behind (a lagging checkpoint only means a message is read again and recognised as a
//! duplicate) but never run ahead of what is stored.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// The checkpoint of `folder` in the mailbox labelled `mailbox`, if one was ever saved.
pub fn load(c: &Connection, mailbox: &str, folder: &str) -> Result<Option<Checkpoint>> {
    Ok(c.prepare_cached("SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox = ?1 AND folder = ?2")?
        .query_row(params![mailbox, folder], |r| Ok(Checkpoint { uidvalidity: r.get(0)?, last_uid: r.get(1)? }))
        .optional()?)
}

/// Records `cp`. Within one UIDVALIDITY the UID only moves forward, so a late writer cannot
/// take the checkpoint back; a new UIDVALIDITY replaces the old one outright.
pub fn save(c: &Connection, mailbox: &str, folder: &str, cp: Checkpoint) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO imap_state(mailbox, folder, uidvalidity, last_uid) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(mailbox, folder) DO UPDATE SET
           last_uid = CASE WHEN uidvalidity = excluded.uidvalidity THEN max(last_uid, excluded.last_uid)
                           ELSE excluded.last_uid END,
           uidvalidity = excluded.uidvalidity",
    )?
    .execute(params![mailbox, folder, cp.uidvalidity, cp.last_uid])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn checkpoint_moves_forward_and_resets_on_new_uidvalidity() {
        let (db, _d) = testing::db();
        db.with(|c| {
            assert_eq!(load(c, "support", "INBOX")?, None);
            save(c, "support", "INBOX", Checkpoint { uidvalidity: 7, last_uid: 10 })?;
            save(c, "support", "INBOX", Checkpoint { uidvalidity: 7, last_uid: 4 })?;
            assert_eq!(load(c, "support", "INBOX")?, Some(Checkpoint { uidvalidity: 7, last_uid: 10 }));
            save(c, "support", "INBOX", Checkpoint { uidvalidity: 9, last_uid: 0 })?;
            assert_eq!(load(c, "support", "INBOX")?, Some(Checkpoint { uidvalidity: 9, last_uid: 0 }));
            assert_eq!(load(c, "billing", "INBOX")?, None, "mailboxes are separate");
            Ok(())
        })
        .unwrap();
    }
}
