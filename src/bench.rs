//! `ticketgate bench`.
