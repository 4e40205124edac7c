//! POLICY: may this message do what routing says? Pure checks with stable
//! reason codes (used by `inspect`, quarantine entries, the portal and the
//! notices): automatic mail and loops, sender authenticity, attachments.

pub mod attachments;
pub mod auto;
pub mod sender;
