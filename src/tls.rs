//! TLS client settings shared by the IMAP source and SMTP delivery: rustls
//! with the ring provider, trusting the system's roots plus the PEM
//! certificates of an optional `ca_file` (for private CAs). Certificates are
//! always verified; there is no switch to turn that off.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The certificates in `path`, a PEM file named by config key `key`.
pub fn read_ca_file(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{key}: reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{key}: parsing {}", path.display()))?;
    if certs.is_empty() {
        bail!("{key}: {} holds no certificate", path.display());
    }
    Ok(certs)
}

/// A connector trusting the system's roots and `extra`.
pub fn connector(extra: &[CertificateDer<'static>], key: &str) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for cert in extra {
        roots.add(cert.clone()).with_context(|| format!("{key}: unusable certificate"))?;
    }
    if roots.is_empty() {
        bail!("no trusted CA certificates: the system has none and {key} is not set");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
