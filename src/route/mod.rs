//! ROUTE: which ticket a message belongs to.

pub mod token;
