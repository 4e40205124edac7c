//! SMTP delivery: lettre speaks the protocol, this module owns the
//! connections. lettre's own transport cannot switch Nagle's algorithm off,
//! and it writes a message's body and its final `CRLF.CRLF` separately: the
//! small last write then waits for the server's delayed ACK, about 40 ms per
//! mail (measured: 45 ms per mail against the capture server, 2 ms with
//! `TCP_NODELAY`). So the TCP (and, for implicit TLS, the TLS) stream is
//! made here, with `TCP_NODELAY`, and handed to lettre.
//!
//! Connections are kept for reuse (at most `max_idle`, each for at most
//! [`IDLE_FOR`]). A reused connection that breaks (the server dropped it
//! while idle) gets the mail tried once more on a fresh connection; should
//! the server have taken the mail just before breaking, the repeat carries
//! the same Message-ID. Every step has a time limit.
//!
//! Errors while setting up a connection (refused, TLS, greeting, EHLO,
//! STARTTLS, AUTH, even 5xx there) are temporary: they are about our server
//! or our configuration, not about one mail, and a fixed password must
//! deliver everything that waited. Replies to MAIL/RCPT/DATA decide per mail:
//! 4xx temporary, 5xx permanent.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Failure;
use crate::config::{SmtpConfig, TlsMode};

/// How long an unused connection is kept (servers drop idle clients after a minute or more).
const IDLE_FOR: Duration = Duration::from_secs(30);

pub struct Smtp {
    host: String,
    port: u16,
    /// STARTTLS parameters (lettre upgrades the stream itself).
    starttls: Option<TlsParameters>,
    /// Implicit TLS: the handshake is done here, before lettre reads the greeting.
    implicit: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    max_idle: usize,
}

impl Smtp {
    pub fn new(s: &SmtpConfig, max_idle: usize) -> anyhow::Result<Smtp> {
        let extra_roots = match &s.ca_file {
            Some(path) => crate::tls::read_ca_file(path, "outbound.smtp.ca_file")?,
            None => Vec::new(),
        };
        let (starttls, implicit) = match s.tls {
            TlsMode::Starttls => {
                let mut b = TlsParameters::builder(s.host.clone());
                for der in &extra_roots {
                    b = b.add_root_certificate(Certificate::from_der(der.to_vec()).context("outbound.smtp.ca_file")?);
                }
                (Some(b.build().context("outbound.smtp TLS settings")?), None)
            }
            TlsMode::Implicit => (None, Some(implicit_tls(&s.host, extra_roots)?)),
            TlsMode::PlainInsecure => (None, None),
        };
        let credentials =
            (!s.username.is_empty()).then(|| Credentials::new(s.username.clone(), s.password.expose().to_string()));
        Ok(Smtp {
            host: s.host.clone(),
            port: s.port,
            starttls,
            implicit,
            credentials,
            timeout: Duration::from_secs(s.timeout_seconds.max(1)),
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        })
    }

    /// Sends one mail; Ok once the server accepted it.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), Failure> {
        if let Some(mut conn) = self.take_idle() {
            match self.transact(&mut conn, envelope, raw).await {
                Err(Attempt::Stale) => {}
                result => return self.settle(conn, result),
            }
        }
        let mut conn = self.connect().await?;
        let result = self.transact(&mut conn, envelope, raw).await;
        self.settle(conn, result)
    }

    /// Politely closes the idle connections.
    pub async fn shutdown(&self) {
        let idle: Vec<_> = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for (mut conn, _) in idle {
            let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, since)| since.elapsed() < IDLE_FOR);
        idle.pop().map(|(conn, _)| conn)
    }

    fn settle(&self, conn: AsyncSmtpConnection, result: Result<(), Attempt>) -> Result<(), Failure> {
        if !conn.has_broken() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.max_idle {
                idle.push((conn, Instant::now()));
            }
        }
        result.map_err(|a| match a {
            Attempt::Failed(f) => f,
            Attempt::Stale => Failure::Temporary("the connection was closed by the server".into()),
        })
    }

    async fn transact(&self, conn: &mut AsyncSmtpConnection, envelope: &Envelope, raw: &[u8]) -> Result<(), Attempt> {
        // Room for a large message on a slow link on top of the per-command limit.
        let limit = self.timeout * 3;
        match tokio::time::timeout(limit, conn.send(envelope, raw)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if is_connection_error(&e) && !e.is_timeout() => Err(Attempt::Stale),
            Ok(Err(e)) => Err(Attempt::Failed(classify(e))),
            Err(_) => {
                conn.abort().await;
                Err(Attempt::Failed(Failure::Temporary(format!("no answer within {} s", limit.as_secs()))))
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let setup = async {
            let target = format!("{}:{}", self.host, self.port);
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("connecting to {target}: {e}"))?;
            tcp.set_nodelay(true).map_err(|e| format!("{target}: {e}"))?;
            let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
                Some((connector, name)) => Box::new(TlsTcp(
                    connector.connect(name.clone(), tcp).await.map_err(|e| format!("TLS with {target}: {e}"))?,
                )),
                None => Box::new(tcp),
            };
            let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
                .await
                .map_err(|e| format!("greeting from {target}: {e}"))?;
            if let Some(params) = &self.starttls {
                conn.starttls(params.clone(), &self.hello).await.map_err(|e| format!("STARTTLS with {target}: {e}"))?;
            }
            if let Some(credentials) = &self.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await
                    .map_err(|e| format!("AUTH at {target}: {e}"))?;
            }
            Ok::<_, String>(conn)
        };
        match tokio::time::timeout(self.timeout, setup).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Failure::Temporary(e)),
            Err(_) => Err(Failure::Temporary(format!(
                "no connection to {}:{} within {} s",
                self.host,
                self.port,
                self.timeout.as_secs()
            ))),
        }
    }
}

/// Why one transaction did not go through.
enum Attempt {
    /// The (reused) connection was dead before the server answered anything.
    Stale,
    Failed(Failure),
}

/// Neither a reply from the server nor a refusal by lettre itself: the
/// connection broke.
fn is_connection_error(e: &SmtpError) -> bool {
    !(e.is_transient() || e.is_permanent() || e.is_client() || e.is_response())
}

fn classify(e: SmtpError) -> Failure {
    let text = e.to_string();
    // lettre refuses some mail before talking (a non-ASCII address to a
    // server without SMTPUTF8): trying again cannot help.
    if e.is_permanent() || e.is_client() { Failure::Permanent(text) } else { Failure::Temporary(text) }
}

/// The system's trusted roots plus `ca_file`, for implicit TLS.
fn implicit_tls(
    host: &str,
    extra: Vec<CertificateDer<'static>>,
) -> anyhow::Result<(tokio_rustls::TlsConnector, ServerName<'static>)> {
    let connector = crate::tls::connector(&extra, "outbound.smtp.ca_file")?;
    let name = ServerName::try_from(host.to_string()).with_context(|| format!("{host:?} is no valid TLS name"))?;
    Ok((connector, name))
}

/// A TLS stream lettre can drive as if it were plain TCP.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
