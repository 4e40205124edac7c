//! A throwaway certificate authority and one server certificate signed by it (openssl).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{OPENSSL, chmod, require, run};

/// The server name clients must verify against.
pub const SERVER_NAME: &str = "localhost";

/// `ca.pem` (trust this), `server.pem` (leaf + CA chain) and `server.key`, valid 30 days, EC
/// P-256. The leaf is `CA:FALSE` with SAN `localhost`, `mail.example.test`, `127.0.0.1`.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        require(&[OPENSSL]);
        let dir = tempfile::Builder::new().prefix("tg-ca").tempdir().expect("temp dir");
        let d = dir.path();
        chmod(d, 0o755);
        let p = |name: &str| d.join(name).to_string_lossy().into_owned();
        let genkey = |out: &str| {
            run(Command::new("openssl").args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                out,
            ]))
        };
        genkey(&p("ca.key"));
        run(Command::new("openssl").args([
            "req",
            "-x509",
            "-new",
            "-key",
            &p("ca.key"),
            "-days",
            "30",
            "-sha256",
            "-subj",
            "/O=ticketgate test/CN=ticketgate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-out",
            &p("ca.pem"),
        ]));
        genkey(&p("server.key"));
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,DNS:mail.example.test,IP:127.0.0.1\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n",
        )
        .expect("write server.ext");
        run(Command::new("openssl").args([
            "req",
            "-new",
            "-key",
            &p("server.key"),
            "-subj",
            "/O=ticketgate test/CN=localhost",
            "-out",
            &p("server.csr"),
        ]));
        run(Command::new("openssl").args([
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &p("server.ext"),
            "-out",
            &p("server.crt"),
        ]));
        let chain =
            [std::fs::read(d.join("server.crt")).expect("leaf"), std::fs::read(d.join("ca.pem")).expect("ca")].concat();
        std::fs::write(d.join("server.pem"), chain).expect("write server.pem");
        for f in ["ca.pem", "server.pem"] {
            chmod(&d.join(f), 0o644);
        }
        TestCa { dir }
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The leaf followed by the CA (what servers present).
    pub fn server_pem(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
