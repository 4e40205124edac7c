//! The per-message pipeline.
