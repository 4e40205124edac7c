//! `ticketgate serve`.
