//! `ticketgate inspect`, through the real binary: the golden files of every
//! fixture category (each message in LF and in CRLF form must give the same,
//! expected JSON), the JSON contract's keys and types, and the command's
//! behaviour (exit status, one line per file, `-`, directories).
//!
//! Golden files: `tests/fixtures/eml/<category>/<name>.eml` is expected to
//! give `<name>.json` (the report without `file`). On a mismatch the test
//! writes `<name>.actual.json` next to it (gitignored) and names it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

/// The keys SPEC.md promises on every line.
const CONTRACT_KEYS: &[&str] =
    &["file", "message_id", "from", "subject", "auto", "body", "attachments", "sender", "error"];
/// The keys promised on every attachment.
const ATTACHMENT_KEYS: &[&str] = &["filename", "size", "detected", "accepted", "reason"];
/// Categories that must exist and hold at least one fixture.
const CATEGORIES: &[&str] = &["clients", "html", "charsets", "structure", "auto"];
/// Every `auto` code the binary may print.
const AUTO_CODES: &[&str] = &["auto-replied", "auto-generated", "bounce", "list", "bulk", "read-receipt"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eml")
}

/// `ticketgate inspect ARGS`, with the built-in configuration (no
/// `TICKETGATE_*` overrides from the environment running the tests).
fn inspect(args: &[&Path], stdin: Option<&[u8]>) -> (i32, Vec<Value>) {
    inspect_with(args, stdin, &[])
}

/// [`inspect`] with configuration overrides from the environment.
fn inspect_with(args: &[&Path], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> (i32, Vec<Value>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketgate"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TICKETGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.arg("inspect").args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("ticketgate runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).expect("stdin accepts the message");
    }
    let out = child.wait_with_output().expect("ticketgate finishes");
    let stdout = String::from_utf8(out.stdout).expect("output is UTF-8");
    let lines =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    (out.status.code().expect("exit status"), lines)
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("readable dir").map(|e| e.expect("dir entry").path()).collect();
    v.sort();
    v
}

fn emls(dir: &Path) -> Vec<PathBuf> {
    sorted_entries(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")).collect()
}

fn lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, &b) in raw.iter().enumerate() {
        if !(b == b'\r' && raw.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for &b in &lf(raw) {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn golden_fixtures_in_lf_and_crlf() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let categories: Vec<PathBuf> = sorted_entries(&fixtures()).into_iter().filter(|p| p.is_dir()).collect();
    for category in &categories {
        let name = category.file_name().expect("named").to_string_lossy().into_owned();
        let files = emls(category);
        // Each variant is a directory holding only this category's messages,
        // so one run per variant also exercises the directory argument.
        let mut outputs = Vec::new();
        for (variant, convert) in [("lf", lf as fn(&[u8]) -> Vec<u8>), ("crlf", crlf)] {
            let dir = tmp.path().join(variant).join(&name);
            std::fs::create_dir_all(&dir).expect("variant dir");
            for f in &files {
                let raw = std::fs::read(f).expect("fixture readable");
                std::fs::write(dir.join(f.file_name().expect("named")), convert(&raw)).expect("variant written");
            }
            let (status, lines) = inspect(&[&dir], None);
            assert_eq!(status, 0, "{variant} {name}: every file was readable");
            assert_eq!(lines.len(), files.len(), "{variant} {name}: one line per file");
            let by_name: BTreeMap<String, Value> = lines
                .into_iter()
                .map(|mut v| {
                    let file = v["file"].as_str().expect("file is a string").to_string();
                    v.as_object_mut().expect("an object").remove("file");
                    let base = Path::new(&file).file_name().expect("named").to_string_lossy().into_owned();
                    (base, v)
                })
                .collect();
            outputs.push((variant, by_name));
        }
        for f in &files {
            let base = f.file_name().expect("named").to_string_lossy().into_owned();
            let expected_path = f.with_extension("json");
            let actual_path = f.with_extension("actual.json");
            let expected: Option<Value> = std::fs::read_to_string(&expected_path)
                .ok()
                .map(|s| serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())));
            let mismatch = outputs.iter().find_map(|(variant, by_name)| {
                let actual = by_name.get(&base).unwrap_or_else(|| panic!("{variant}: no line for {base}"));
                (expected.as_ref() != Some(actual)).then_some((variant, actual))
            });
            match mismatch {
                Some((variant, actual)) => {
                    let pretty = serde_json::to_string_pretty(actual).expect("serialisable") + "\n";
                    std::fs::write(&actual_path, pretty).expect("actual written");
                    failures.push(format!(
                        "{} ({variant}): output differs from {}; see {}",
                        f.display(),
                        expected_path.file_name().expect("named").to_string_lossy(),
                        actual_path.display()
                    ));
                }
                None => {
                    let _ = std::fs::remove_file(&actual_path);
                }
            }
            *ran.entry(name.clone()).or_default() += 1;
        }
    }
    assert!(failures.is_empty(), "{} golden mismatches:\n{}", failures.len(), failures.join("\n"));
    for category in &categories {
        let name = category.file_name().expect("named").to_string_lossy().into_owned();
        assert!(ran.get(&name).is_some_and(|n| *n > 0), "category {name} ran no fixture");
    }
    for name in CATEGORIES {
        assert!(ran.contains_key(*name), "category {name} is missing");
    }
}

/// A line with exactly the contract's types (extra keys are allowed).
#[derive(Debug, Deserialize)]
struct Line {
    file: String,
    message_id: Option<String>,
    from: Option<String>,
    subject: Option<String>,
    auto: Option<String>,
    body: Option<String>,
    attachments: Vec<Attachment>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    filename: String,
    size: u64,
    detected: Option<String>,
    accepted: bool,
    reason: Option<String>,
}

#[test]
fn every_line_keeps_the_contract() {
    let files: Vec<PathBuf> =
        sorted_entries(&fixtures()).into_iter().filter(|p| p.is_dir()).flat_map(|d| emls(&d)).collect();
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (status, lines) = inspect(&args, None);
    assert_eq!(status, 0);
    assert_eq!(lines.len(), files.len());
    let mut errors = 0;
    for (value, file) in lines.iter().zip(&files) {
        let obj = value.as_object().expect("each line is an object");
        for key in CONTRACT_KEYS {
            assert!(obj.contains_key(*key), "{}: key {key} missing", file.display());
        }
        for a in value["attachments"].as_array().expect("attachments is an array") {
            for key in ATTACHMENT_KEYS {
                assert!(a.get(*key).is_some(), "{}: attachment key {key} missing", file.display());
            }
        }
        let line: Line = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(Path::new(&line.file), file.as_path(), "file names the argument");
        if line.error.is_some() {
            errors += 1;
            assert!(line.message_id.is_none() && line.from.is_none() && line.subject.is_none());
            assert!(line.auto.is_none() && line.body.is_none() && line.attachments.is_empty());
        } else {
            assert!(line.subject.is_some() && line.body.is_some(), "{}", file.display());
        }
        if let Some(from) = &line.from {
            assert_eq!(from, &from.trim().to_lowercase(), "from is normalised");
        }
        if let Some(auto) = &line.auto {
            assert!(AUTO_CODES.contains(&auto.as_str()), "{}: unknown auto code {auto}", file.display());
        }
        for a in &line.attachments {
            let at = format!("{}: {}", file.display(), a.filename);
            assert_eq!(a.accepted, a.reason.is_none(), "{at}: a reason exactly when refused");
            assert!(!a.filename.is_empty() && !a.filename.contains(['/', '\\']), "{at}: sanitised name");
            assert!(a.detected.as_deref().is_none_or(|d| d.contains('/')), "{at}: detected is a MIME type");
            assert!(!a.accepted || a.size <= 15 * 1024 * 1024, "{at}: accepted within the default size cap");
        }
    }
    assert!(errors > 0, "the fixtures include messages that cannot be parsed");
}

const MAIL: &[u8] = b"From: Jane <Jane@Example.com>\r\nTo: support@example.com\r\nSubject: Hello\r\nMessage-ID: <m1@example.com>\r\n\r\nThe printer is broken.\r\n";

#[test]
fn reads_standard_input() {
    let (status, lines) = inspect(&[Path::new("-")], Some(MAIL));
    assert_eq!(status, 0);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["file"], "-");
    assert_eq!(lines[0]["from"], "jane@example.com");
    assert_eq!(lines[0]["message_id"], "m1@example.com");
    assert_eq!(lines[0]["body"], "The printer is broken.");
    assert_eq!(lines[0]["error"], Value::Null);
}

#[test]
fn sender_shows_the_one_author_and_trusted_evidence_for_it() {
    let head = "To: support@example.com\r\nSubject: x\r\nMessage-ID: <s@example.com>\r\n";
    let sender = |headers: &str, env: &[(&str, &str)]| {
        let raw = format!("{headers}{head}\r\nhi\r\n");
        let (status, lines) = inspect_with(&[Path::new("-")], Some(raw.as_bytes()), env);
        assert_eq!(status, 0);
        lines[0]["sender"].clone()
    };
    let json = |address: Value, authenticated: Value, problem: Value| serde_json::json!({ "address": address, "authenticated": authenticated, "problem": problem });
    let trusted = [("TICKETGATE_SECURITY__TRUSTED_AUTHSERV_IDS", "[\"mx.example.com\"]")];
    assert_eq!(
        sender("From: Jane <Jane@Example.com>\r\n", &[]),
        json("jane@example.com".into(), Value::Null, Value::Null)
    );
    let dmarc =
        "From: jane@example.com\r\nAuthentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n";
    assert_eq!(sender(dmarc, &[]), json("jane@example.com".into(), Value::Null, Value::Null), "not trusted by default");
    assert_eq!(sender(dmarc, &trusted), json("jane@example.com".into(), "dmarc".into(), Value::Null));
    let dkim = "From: jane@example.com\r\nAuthentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n";
    assert_eq!(sender(dkim, &trusted), json("jane@example.com".into(), "dkim".into(), Value::Null));
    let other =
        "From: jane@example.com\r\nAuthentication-Results: mx.example.com; dmarc=pass header.from=evil.test\r\n";
    assert_eq!(sender(other, &trusted), json("jane@example.com".into(), Value::Null, Value::Null));
    let ambiguous = json(Value::Null, Value::Null, "ambiguous_sender".into());
    assert_eq!(sender("From: <ali> <ce@example.com>\r\n", &trusted), ambiguous);
    assert_eq!(sender("From: a@example.com\r\nFrom: b@evil.test\r\n", &trusted), ambiguous);
    assert_eq!(sender("From: a@example.com, b@evil.test\r\n", &trusted), ambiguous);
}

#[test]
fn unreadable_file_sets_error_and_exit_status() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let good = tmp.path().join("good.eml");
    std::fs::write(&good, MAIL).expect("written");
    let missing = tmp.path().join("missing.eml");
    let garbage = tmp.path().join("garbage.eml");
    std::fs::write(&garbage, [0u8, 159, 146, 150, 255, 0, 1, 2]).expect("written");

    let (status, lines) = inspect(&[&good, &garbage], None);
    assert_eq!(status, 0, "a message that cannot be parsed was still read");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["error"], "unparseable");

    let (status, lines) = inspect(&[&good, &missing, &garbage], None);
    assert_eq!(status, 1, "a file that cannot be read fails the run");
    assert_eq!(lines.len(), 3, "one line per file, the unreadable one included");
    assert_eq!(lines[0]["error"], Value::Null);
    assert_eq!(lines[1]["file"], missing.to_string_lossy().as_ref());
    assert!(lines[1]["error"].as_str().is_some_and(|e| e.starts_with("unreadable: ")), "{}", lines[1]);
    for key in ["message_id", "from", "subject", "auto", "body"] {
        assert_eq!(lines[1][key], Value::Null, "{key}");
    }
    assert_eq!(lines[1]["attachments"], Value::Array(Vec::new()));
}

#[test]
fn directories_are_read_recursively_in_name_order_without_dot_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    for path in ["b.eml", "a/new/2.eml", "a/cur/1.eml", ".hidden.eml", "a/.dovecot/x.eml"] {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("dirs");
        std::fs::write(p, MAIL).expect("written");
    }
    let (status, lines) = inspect(&[root], None);
    assert_eq!(status, 0);
    let files: Vec<String> = lines
        .iter()
        .map(|l| {
            Path::new(l["file"].as_str().expect("file")).strip_prefix(root).expect("under root").display().to_string()
        })
        .collect();
    assert_eq!(files, ["a/cur/1.eml", "a/new/2.eml", "b.eml"]);
}

#[test]
fn messages_over_the_size_limit_are_not_read_whole() {
    let limit = MAIL.len() - 1;
    let env = [("TICKETGATE_LIMITS__MAX_MESSAGE_BYTES", limit.to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, lines) = inspect_with(&[Path::new("-")], Some(MAIL), &env);
    assert_eq!(status, 0, "the file was read; the message is reported");
    assert_eq!(lines[0]["error"], "message_too_large");
    assert_eq!(lines[0]["body"], Value::Null);
    let env = [("TICKETGATE_LIMITS__MAX_MESSAGE_BYTES", MAIL.len().to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, lines) = inspect_with(&[Path::new("-")], Some(MAIL), &env);
    assert_eq!(lines[0]["error"], Value::Null, "exactly the limit is fine");
}

/// Malformed MIME never panics: every fixture, cut at many points and with
/// bytes overwritten (deterministic pseudo-random), still parses or gives an
/// error, and its reply trimming and automatic-mail checks run.
#[test]
fn damaged_messages_never_panic() {
    let files: Vec<PathBuf> =
        sorted_entries(&fixtures()).into_iter().filter(|p| p.is_dir()).flat_map(|d| emls(&d)).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for f in &files {
        let raw = std::fs::read(f).expect("fixture readable");
        let mut variants: Vec<Vec<u8>> = (1..24).map(|k| raw[..raw.len() * k / 24].to_vec()).collect();
        for _ in 0..24 {
            let mut v = raw.clone();
            for _ in 0..8 {
                let i = (next() as usize) % v.len().max(1);
                if let Some(b) = v.get_mut(i) {
                    *b = [b'\n', b'-', b'=', b'<', b'>', b':', 0, 0xff][(next() % 8) as usize];
                }
            }
            variants.push(v);
        }
        for v in variants {
            if let Ok(p) = ticketgate::parse::parse(&v) {
                parsed += 1;
                let _ = ticketgate::policy::auto::classify(&p);
                assert!(p.body.len() <= p.text.len() + 1, "{}: the body comes from the text", f.display());
            }
        }
    }
    assert!(parsed > files.len() * 10, "most damaged messages still parse ({parsed})");
}
