//! `ticketgate inspect`.
