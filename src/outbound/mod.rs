//! MAIL OUT: delivers what the outbox holds.
