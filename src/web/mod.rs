//! WEB: the portal.
