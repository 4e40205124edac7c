//! MAIL IN: sources of raw messages.
