//! What the benches share: a deterministic generator, a store filled as if in
//! use for years ([`prefill`]) and a minimal HTTP/1.1 client for the portal on
//! loopback. Included with `#[path]` by the benches that need it.

// Each bench includes this module and uses only part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

pub mod prefill;

/// xorshift64*: repeatable data without a seeded-RNG dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A whole HTTP/1.1 request to the loopback server.
pub fn request(request_line: &str, cookie: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One keep-alive connection.
pub struct Http {
    conn: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(port: u16) -> std::io::Result<Http> {
        let conn = TcpStream::connect(("127.0.0.1", port))?;
        conn.set_nodelay(true)?;
        Ok(Http { conn, buf: Vec::with_capacity(64 * 1024) })
    }

    /// Sends `request` and reads its response (which must have a
    /// Content-Length); returns the status code.
    pub fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.conn.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(&mut chunk)?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
        let length: Option<usize> =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok());
        let (Some(status), Some(length)) = (status, length) else {
            return Err(std::io::Error::other(format!("no status or content-length: {head:.80}")));
        };
        while self.buf.len() < head_end + length {
            self.fill(&mut chunk)?;
        }
        Ok(status)
    }

    fn fill(&mut self, chunk: &mut [u8]) -> std::io::Result<()> {
        let n = self.conn.read(chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}
