//! Reply trimming: keeps what the sender newly wrote (SPEC.md "Reply
//! trimming"). Works on text (HTML mail is converted first by
//! [`super::html::to_text`], which turns quotes into `>` lines, Outlook's
//! reply header into an underscore line and client signature blocks into a
//! `-- ` line). The untrimmed text is always kept by the caller; this only
//! decides what is posted. `tests/it/trim.rs` scores it on a corpus of the
//! major clients in 25 languages.
//!
//! The rules are data, in the tables below; the order of work is:
//! 1. **Bottom posting**: when the text starts with a quote (an attribution
//!    and `>` lines) and only unquoted text follows it, the quote goes. With
//!    more than one quoted block it is an inline answer and stays.
//! 2. **History cut**: the first line (outside `>` quotes) where quoted history
//!    starts; everything from it on goes:
//!    - a separator line: `-----Original Message-----` and its translations
//!      ([`ORIGINAL_MESSAGE`]), forward markers ([`FORWARDED`]), Apple Mail's
//!      `Begin forwarded message:`, and `---- Name wrote ----`;
//!    - a header block: a line `Label: value` with labels of one language
//!      ([`HEADER_BLOCKS`]) on the next lines, its `From` label among them
//!      and two more (in any order: GMX starts with the date), or only two
//!      when an address is in them (`From:` + `Date:`); also flattened onto
//!      one line, as HTML-to-text leaves it. The cut moves up over an
//!      underscore line (Outlook on the web) and blank lines;
//!    - Outlook's underscore separator line followed by at least three
//!      `Label: value` lines, in any language;
//!    - an attribution, on one line or wrapped over up to three
//!      ([`attribution_len`]). It must contain a digit (a date or time: every
//!      client writes one) and end with a colon, which keeps ordinary
//!      sentences ending in "wrote:" safe. When the quote under it is answered
//!      inline (unquoted text after the quoted lines), it is no cut: inline
//!      answers need their questions.
//! 3. Trailing `>` quoted lines and blank lines go. A single quoted block
//!    (and its attribution) with new text above and below goes too: the
//!    reply wraps it (a closing under a top-posted quote). Two or more
//!    quoted blocks between new text stay, for the same reason as above.
//! 4. **Signature cut**: from the first `-- ` delimiter line (also `--`, as
//!    clients that strip trailing spaces send it) or a mobile / client
//!    signature line ([`SIGNATURES`]: "Sent from my iPhone", "Get Outlook for
//!    iOS", …) to the end; a last line `-Name` or `-- Name` after a blank line.
//! 5. If nothing is left (a bare forward, a mail that is only a quote), the
//!    untrimmed text is returned: nothing the sender sent may be hidden.
//!
//! Every rule looks at a line and a bounded window after it, so the time is
//! linear in the text. Line endings come out as `\n`; trailing spaces of
//! lines are removed.

use std::sync::LazyLock;

use regex::Regex;

/// Outlook's `-----Original Message-----` in the languages of the corpus
/// (Samsung writes `-------- Original message --------`).
pub const ORIGINAL_MESSAGE: &[&str] = &[
    "original message",
    "reply message",
    "ursprüngliche nachricht",
    "originalnachricht",
    "message d'origine",
    "mensaje original",
    "oorspronkelijk bericht",
    "messaggio originale",
    "mensagem original",
    "wiadomość oryginalna",
    "původní zpráva",
    "pôvodná správa",
    "eredeti üzenet",
    "eredeti levél",
    "mesaj original",
    "ursprungligt meddelande",
    "oprindelig meddelelse",
    "opprinnelig melding",
    "alkuperäinen viesti",
    "исходное сообщение",
    "оригинальное сообщение",
    "оригінальне повідомлення",
    "вихідне повідомлення",
    // `(?i)` folds no dotted capital İ: both spellings.
    "orijinal İleti",
    "orijinal ileti",
    "özgün ileti",
    "αρχικό μήνυμα",
    "元のメッセージ",
    "原始邮件",
    "原始郵件",
    "원본 메시지",
    "thư gốc",
    "הודעה מקורית",
];

/// Forward markers between dashes (Gmail, Thunderbird, Outlook).
pub const FORWARDED: &[&str] = &[
    "forwarded message",
    "weitergeleitete nachricht",
    "message transféré",
    "mensaje reenviado",
    "doorgestuurd bericht",
    "messaggio inoltrato",
    "mensagem encaminhada",
    "wiadomość przekazana",
    "přeposlaná zpráva",
    "preposlaná správa",
    "továbbított üzenet",
    "mesaj redirecționat",
    "vidarebefordrat meddelande",
    "videresendt meddelelse",
    "videresendt melding",
    "välitetty viesti",
    "пересылаемое сообщение",
    "переслане повідомлення",
    "iletilen ileti",
    "προωθημένο μήνυμα",
    "転送されたメッセージ",
    "转发的邮件",
    "轉寄的郵件",
    "전달된 메시지",
    "thư đã chuyển tiếp",
    "הודעה שהועברה",
];

/// Apple Mail's forward markers (a line ending in a colon).
pub const APPLE_FORWARDED: &[&str] = &[
    "begin forwarded message",
    "anfang der weitergeleiteten nachricht",
    "début du message réexpédié",
    "inicio del mensaje reenviado",
    "begin doorgestuurd bericht",
    "inizio messaggio inoltrato",
    "início da mensagem reencaminhada",
];

/// The verb of attribution lines (`… wrote:`), as regular expressions.
pub const WROTE: &[&str] = &[
    "wrote",
    "schrieb",
    "geschrieben",
    "a écrit",
    "escribió",
    "schreef",
    "geschreven",
    "ha scritto",
    "escreveu",
    r"napisał(?:a|\(a\))?",
    "pisze",
    r"napsal(?:a|\(a\))?",
    r"napísal(?:a|\(a\))?",
    "írta",
    "a scris",
    "skrev",
    "kirjoitti",
    r"написал(?:а|\(а\))?",
    "пишет",
    "пише",
    r"написав(?:ла|\(ла\))?",
    "yazdı",
    "έγραψε",
    "のメール",
    "写道",
    "寫道",
    "작성",
    "쓴 글",
    "đã viết",
    "כתב(?:/ה)?",
];

/// Header block labels per language: the `From` label, then the other
/// labels of that language (a label is a word, optionally followed by a
/// short one: Spanish Outlook writes `Enviado el:`). A colon follows each
/// (French puts a space before it). `*From:*` is how some clients render the
/// bold label as text.
pub const HEADER_BLOCKS: &[(&str, &[&str])] = &[
    ("from", &["sent", "date", "to", "cc", "subject"]),
    ("von", &["gesendet", "datum", "an", "cc", "betreff"]),
    ("de", &["envoyé", "date", "à", "a", "cc", "objet"]),
    ("de", &["enviado", "enviado el", "fecha", "para", "cc", "asunto"]),
    ("de", &["enviada", "enviado", "data", "para", "cc", "assunto"]),
    ("van", &["verzonden", "datum", "aan", "cc", "onderwerp"]),
    ("da", &["inviato", "data", "a", "cc", "oggetto"]),
    ("od", &["wysłano", "data", "do", "dw", "temat"]),
    ("od", &["odesláno", "datum", "komu", "kopie", "předmět"]),
    ("od", &["odoslané", "dátum", "komu", "kópia", "predmet"]),
    ("feladó", &["elküldve", "dátum", "címzett", "másolat", "tárgy"]),
    ("de la", &["trimis", "dată", "data", "către", "cc", "subiect"]),
    ("från", &["skickat", "datum", "till", "kopia", "ämne"]),
    ("fra", &["sendt", "dato", "til", "kopi", "cc", "emne"]),
    ("lähettäjä", &["lähetetty", "päivämäärä", "vastaanottaja", "kopio", "aihe"]),
    ("от", &["отправлено", "дата", "кому", "копия", "тема"]),
    ("від", &["надіслано", "дата", "кому", "копія", "тема"]),
    ("kimden", &["gönderildi", "tarih", "kime", "bilgi", "konu"]),
    ("από", &["στάλθηκε", "ημερομηνία", "προς", "κοιν", "θέμα"]),
    ("差出人", &["送信日時", "日付", "宛先", "cc", "件名"]),
    ("发件人", &["发送时间", "日期", "收件人", "抄送", "主题"]),
    ("寄件者", &["寄件日期", "日期", "收件者", "副本", "主旨"]),
    ("보낸 사람", &["보낸 날짜", "날짜", "받는 사람", "참조", "제목"]),
    ("từ", &["đã gửi", "ngày", "đến", "cc", "chủ đề"]),
    ("מאת", &["נשלח", "תאריך", "אל", "עותק", "נושא"]),
];
/// How many lines after the first label the others are looked for.
const HEADER_BLOCK_SPAN: usize = 8;
/// Labels besides `From` needed to call it a header block.
const HEADER_BLOCK_MIN: usize = 2;

/// Attribution lines whose verb comes before the name (whole line or joined
/// lines, case-insensitive); the lines with the verb last are [`WROTE`].
pub const ATTRIBUTIONS: &[&str] = &[
    r"am\s.{4,250}\sschrieb\s.{0,250}:",
    r"op\s.{4,250}\sschreef\s.{0,250}:",
    r"op\s.{4,250}\sheeft\s.{1,250}\shet volgende geschreven\s?:",
];

/// Signature lines of mobile apps and mail clients (whole line, case-insensitive).
pub const SIGNATURES: &[&str] = &[
    r"sent from my \S.{0,60}",
    r"sent from (outlook|mail|yahoo mail)( for \S.{0,30})?",
    r"sent from samsung mobile.{0,200}",
    r"sent with proton mail secure email\.?",
    r"get outlook for (ios|android)",
    r"von meinem \S.{0,40} gesendet",
    r"gesendet von (meinem \S.{0,40}|outlook|mail) ?(für \S.{0,30})?",
    r"outlook für (ios|android) (herunterladen|beziehen)",
    r"holen sie sich outlook für (ios|android)",
    r"envoyé de mon \S.{0,60}",
    r"envoyé (à partir|depuis) de? ?\S.{0,60}",
    r"(télécharger|obtenir) outlook pour (ios|android)",
    r"enviado desde mi \S.{0,60}",
    r"(descargar|obtener) outlook para (ios|android)",
    r"(verzonden|verstuurd) (vanaf|met|van) mijn \S.{0,60}",
    r"outlook voor (ios|android) (downloaden|ophalen)",
    r"inviato da \S.{0,40}",
    r"enviado do meu \S.{0,40}",
    r"wysłane z \S.{0,40}",
    r"odesláno z \S.{0,40}",
    r"odoslané z \S.{0,40}",
    r"\S.{0,30}-r[óo]l küldve",
    r"trimis de pe \S.{0,40}",
    r"skickat från min \S.{0,40}",
    r"sendt fra min \S.{0,40}",
    r"lähetetty \S.{0,30}(sta|stä)",
    r"отправлено с \S.{0,40}",
    r"надіслано з \S.{0,40}",
    r"\S.{0,30}(umdan|imden|undan|ümden) gönderildi",
    r"στάλθηκε από \S.{0,40}",
    r"\S.{0,30}から送信",
    r"(发|發)自我的\S.{0,30}",
    r"\S.{0,30}에서 보냄",
    r"được gửi từ \S.{0,40}",
    r"נשלח מה-?\S.{0,40}",
];

/// The `-- ` signature delimiter, as sent or with its space stripped.
const SIGNATURE_DELIMITERS: &[&str] = &["-- ", "--"];

/// An underscore line: Outlook on the web's separator before its header block.
const UNDERSCORES: &str = r"_{10,}";

/// Longest attribution, in characters, over all its lines.
const MAX_ATTRIBUTION: usize = 400;
/// Shortest line that a client wraps an attribution after.
const MIN_WRAPPED: usize = 30;

struct Rules {
    separators: Regex,
    attributions: Regex,
    wrote_last: Regex,
    wrote: Regex,
    address: Regex,
    signatures: Regex,
    short_signature: Regex,
    underscores: Regex,
    header_label: Regex,
}

/// `(?i)^\s*(?:a|b|c)\s*$`: one alternation of whole-line patterns.
fn whole_line(patterns: &[&str]) -> String {
    format!(r"(?i)^\s*(?:{})\s*$", patterns.join("|"))
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let build = |p: String| Regex::new(&p).expect("the pattern tables are valid regular expressions");
    let escaped = |phrases: &[&str]| phrases.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join("|");
    let wrote = WROTE.join("|");
    Rules {
        separators: build(whole_line(&[
            &format!(r"[-_]{{2,}}\s*(?:{})\s*[-_]{{2,}}", escaped(ORIGINAL_MESSAGE)),
            &format!(r"-{{2,}}\s*(?:{})\s*-{{2,}}", escaped(FORWARDED)),
            &format!(r"(?:{})\s*:", escaped(APPLE_FORWARDED)),
            // `---- Name wrote ----`, `------On … wrote-----`.
            &format!(r"-{{2,}}.{{1,250}}\s(?:{wrote})\s*:?\s*-{{2,}}"),
        ])),
        attributions: build(whole_line(ATTRIBUTIONS)),
        wrote_last: build(format!(r"(?i)(?:^|\s|\d|>|\)|,)(?:{wrote})\s?[:：]\s*$")),
        wrote: build(format!(r"(?i)(?:{wrote})")),
        address: build(r"[^\s<>()\[\]]@[^\s<>()\[\]]+\.\p{L}".to_string()),
        // Outlook mobile glues its link to the line: `Get Outlook for iOS<https://aka.ms/o0ukef>`.
        signatures: build(whole_line(&[&format!(r"(?:{})(?:\s*<\S+>)?", SIGNATURES.join("|"))])),
        // `-Jane`, `-- Jane Doe`: a name signed under the text.
        short_signature: build(r"^\s*(?:-|--\s)\p{Lu}[\p{L}.]{0,20}(?:\s\p{L}[\p{L}.]{0,20})?\s*$".to_string()),
        underscores: build(whole_line(&[UNDERSCORES])),
        header_label: build(r"(?i)^\s*\*?(\p{L}{1,16}(?: \p{L}{1,8})?)\s?[:：]\*?(\s|$)".to_string()),
    }
});

/// A reply split into what is posted and what was trimmed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// The new text of the reply.
    pub body: String,
    /// The lines trimmed from it (a bottom-posted quote, a quote the reply
    /// wraps, then the signature and quoted history below), in that order,
    /// for a folded "Show quoted text"; empty when nothing was trimmed.
    pub quoted: String,
}

/// Splits a reply into its new text and the quoted rest.
pub fn split(text: &str) -> Trimmed {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let start = bottom_post_start(&lines).unwrap_or(0);
    let rest = &lines[start..];
    let mut end = history_start(rest).unwrap_or(rest.len());
    end = without_trailing_quotes(&rest[..end]);
    if let Some(sig) = signature_start(&rest[..end]) {
        end = without_trailing_quotes(&rest[..sig]);
    }
    let block = |ls: &[&str]| ls.join("\n").trim_matches('\n').to_string();
    let (above, below) = wrapped_quote(&rest[..end]).unwrap_or((end, end));
    let body = [block(&rest[..above]), block(&rest[below..end])].into_iter().filter(|b| !b.is_empty());
    let body = body.collect::<Vec<_>>().join("\n\n");
    if body.trim().is_empty() {
        return Trimmed { body: block(&lines), quoted: String::new() };
    }
    let quoted = [block(&lines[..start]), block(&rest[above..below]), block(&rest[end..])];
    Trimmed { body, quoted: quoted.into_iter().filter(|b| !b.trim().is_empty()).collect::<Vec<_>>().join("\n\n") }
}

/// The lines of a quote that the reply wraps: one quoted block under an
/// attribution that has new text above and below it and is the only one.
/// A closing under a top-posted quote is such text; with two or more
/// quoted blocks it is an inline answer, which keeps them. Without an
/// attribution the block is a snippet the sender quotes (an error
/// message) and stays.
fn wrapped_quote(lines: &[&str]) -> Option<(usize, usize)> {
    let first = lines.iter().position(|l| is_quoted(l))?;
    let mut below = first;
    while below < lines.len() && (is_quoted(lines[below]) || is_blank(lines[below])) {
        below += 1;
    }
    if below == lines.len() || lines[below..].iter().any(|l| is_quoted(l)) {
        return None;
    }
    let mut above = first;
    while above > 0 && is_blank(lines[above - 1]) {
        above -= 1;
    }
    let n = (1..=above.min(3)).find(|&n| attribution_len(lines, above - n) == Some(n))?;
    (!lines[..above - n].iter().all(|l| is_blank(l))).then_some((above - n, below))
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Index of the first line after blank ones from `i`.
fn skip_blank(lines: &[&str], mut i: usize) -> usize {
    while i < lines.len() && is_blank(lines[i]) {
        i += 1;
    }
    i
}

/// Where the new text of a bottom-posted reply starts: after a leading
/// quote (an attribution, if any, and one block of `>` lines) that only
/// unquoted text follows.
fn bottom_post_start(lines: &[&str]) -> Option<usize> {
    let mut i = skip_blank(lines, 0);
    if let Some(n) = lines.get(i).filter(|l| !is_quoted(l)).and_then(|_| attribution_len(lines, i)) {
        i = skip_blank(lines, i + n);
    }
    if !lines.get(i).is_some_and(|l| is_quoted(l)) {
        return None;
    }
    while i < lines.len() && (is_quoted(lines[i]) || is_blank(lines[i])) {
        i += 1;
    }
    (i < lines.len() && !lines[i..].iter().any(|l| is_quoted(l))).then_some(i)
}

/// The first line of quoted history, outside `>` quotes.
fn history_start(lines: &[&str]) -> Option<usize> {
    let r = &*RULES;
    (0..lines.len()).filter(|&i| !is_quoted(lines[i])).find_map(|i| {
        if r.separators.is_match(lines[i]) {
            return Some(i);
        }
        if is_header_block(lines, i) {
            return Some(above_separator(lines, i));
        }
        if r.underscores.is_match(lines[i]) && labelled_lines(&lines[i + 1..]) > HEADER_BLOCK_MIN {
            return Some(i);
        }
        attribution_len(lines, i).filter(|&n| !answered_inline(&lines[i + n..])).map(|_| i)
    })
}

/// Moves a cut up over blank lines and an underscore separator line, when
/// there is one directly above.
fn above_separator(lines: &[&str], i: usize) -> usize {
    let mut j = i;
    while j > 0 && is_blank(lines[j - 1]) {
        j -= 1;
    }
    if j > 0 && RULES.underscores.is_match(lines[j - 1]) { j - 1 } else { i }
}

fn label(line: &str) -> Option<String> {
    RULES.header_label.captures(line).map(|c| c[1].to_lowercase())
}

/// How many of the first lines after blank ones look like `Label: value`:
/// under Outlook's underscore separator that is a header block in any
/// language (`Da:` / `Inviato:` / `A:` / `Oggetto:`).
fn labelled_lines(after: &[&str]) -> usize {
    after.iter().skip_while(|l| is_blank(l)).take(HEADER_BLOCK_SPAN).filter(|l| label(l).is_some()).count()
}

/// Whether a header block starts at line `i`: its label and those of the
/// next lines (or, flattened, later on the same line) are of one language,
/// with the `From` label and [`HEADER_BLOCK_MIN`] others, or with one other
/// on the next line when the two name an address.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    let Some(first) = label(lines[i]) else { return false };
    let in_block: Vec<String> = std::iter::once(first.clone())
        .chain(lines[i + 1..].iter().take(HEADER_BLOCK_SPAN).filter_map(|l| label(l)))
        .collect();
    let next = lines.get(i + 1).and_then(|l| label(l));
    let has_address = lines[i..lines.len().min(i + 2)].iter().any(|l| RULES.address.is_match(l));
    let flat = lines[i].to_lowercase();
    HEADER_BLOCKS.iter().any(|(from, others)| {
        let ours = |l: &str| l == *from || others.contains(&l);
        if !ours(&first) {
            return false;
        }
        let mut seen: Vec<&str> = others.iter().copied().filter(|o| in_block.iter().any(|f| f == o)).collect();
        seen.dedup();
        let has_from = in_block.iter().any(|f| f == from);
        let flattened = first == *from
            && others.iter().filter(|o| flat.contains(&format!(" {o}:")) || flat.contains(&format!(" {o} :"))).count()
                >= HEADER_BLOCK_MIN;
        let short = has_address
            && next.as_deref().is_some_and(|n| n != first && ours(n))
            && [first.as_str(), next.as_deref().unwrap_or_default()]
                .iter()
                .any(|l| l == from || others[..2].contains(l));
        (has_from && seen.len() >= HEADER_BLOCK_MIN) || flattened || short
    })
}

/// Lines (1 to 3) the attribution starting at `i` takes, if there is one.
///
/// An attribution has a digit and ends with a colon. It ends with a
/// [`WROTE`] verb, or matches [`ATTRIBUTIONS`], or, when a quote follows
/// it, holds that verb or an address anywhere (`… skrev Name <a@b>:`,
/// `пн, 5 янв. 2026 г. в 10:02, Name <a@b>:`).
///
/// Wrapped lines are joined: the first must be long (clients wrap at 72 to
/// 78 columns), and a quoted line continues one only when it
/// is the verb alone (Gmail wraps `<addr\n> wrote:`, and the `>` is taken
/// for a quote). When the last lines alone end with the verb, they are the
/// attribution and the line above is text, unless that line leaves a
/// bracket open (`Name <` wrapped before the address).
fn attribution_len(lines: &[&str], i: usize) -> Option<usize> {
    let n = (1..=3).find(|&n| attribution(lines, i, n).is_some())?;
    let open = |l: &str| l.matches(['<', '(', '[']).count() > l.matches(['>', ')', ']']).count();
    (open(lines[i]) || (1..n).all(|k| attribution(lines, i + k, n - k) != Some(Strength::Verb))).then_some(n)
}

/// How an attribution was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// By its verb at the end or its form ([`ATTRIBUTIONS`]).
    Verb,
    /// By a verb or an address anywhere in it, with a quote under it.
    QuoteFollows,
}

/// Whether lines `i..i + n`, joined, are an attribution, and how it shows.
fn attribution(lines: &[&str], i: usize, n: usize) -> Option<Strength> {
    let r = &*RULES;
    let span = lines.get(i..i + n)?;
    if !span[n - 1].ends_with([':', '：']) {
        return None;
    }
    let wrapped = |l: &&str| l.trim().chars().count() >= MIN_WRAPPED;
    let continues = |l: &&str| !is_blank(l) && (!is_quoted(l) || (l.chars().count() <= 24 && r.wrote_last.is_match(l)));
    if (n > 1 && !wrapped(&span[0])) || !span[1..].iter().all(continues) {
        return None;
    }
    let joined = span.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    if joined.chars().count() > MAX_ATTRIBUTION || !joined.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    if r.wrote_last.is_match(&joined) || r.attributions.is_match(&joined) {
        return Some(Strength::Verb);
    }
    let quote_follows = lines.get(skip_blank(lines, i + n)).is_some_and(|l| is_quoted(l));
    (quote_follows && (r.wrote.is_match(&joined) || r.address.is_match(&joined))).then_some(Strength::QuoteFollows)
}

/// Whether unquoted text follows the quote under an attribution: an inline
/// answer. Unquoted history straight under the attribution is not one.
fn answered_inline(after: &[&str]) -> bool {
    let mut rest = after.iter().skip_while(|l| is_blank(l)).peekable();
    if !rest.peek().is_some_and(|l| is_quoted(l)) {
        return false;
    }
    let mut rest = rest.skip_while(|l| is_quoted(l) || is_blank(l));
    rest.next().is_some_and(|l| !is_signature(l) && !SIGNATURE_DELIMITERS.contains(l))
}

fn is_signature(line: &str) -> bool {
    line.len() <= 250 && RULES.signatures.is_match(line)
}

/// The first line of the signature: a delimiter or client line, or a short
/// `-Name` after a blank line as the last line.
fn signature_start(lines: &[&str]) -> Option<usize> {
    let marked = lines.iter().position(|l| {
        let raw = l.trim_start_matches('\u{feff}');
        SIGNATURE_DELIMITERS.iter().any(|d| raw == d.trim_end()) || is_signature(raw)
    });
    let last = lines.iter().rposition(|l| !is_blank(l))?;
    let signed = (last > 0 && is_blank(lines[last - 1]) && RULES.short_signature.is_match(lines[last])).then_some(last);
    marked.or(signed)
}

/// The end of `lines` without trailing quoted and blank lines.
fn without_trailing_quotes(lines: &[&str]) -> usize {
    lines.iter().rposition(|l| !is_blank(l) && !is_quoted(l)).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_text(text: &str) -> String {
        split(text).body
    }

    #[test]
    fn the_trimmed_rest_is_kept_apart() {
        let top = split("New.\n\nOn Mon, 5 Jan 2026, Jane wrote:\n> old\n");
        assert_eq!(top, Trimmed { body: "New.".into(), quoted: "On Mon, 5 Jan 2026, Jane wrote:\n> old".into() });
        let bottom = split("> old\n\nNew.\n-- \nJane");
        assert_eq!(bottom, Trimmed { body: "New.".into(), quoted: "> old\n\n--\nJane".into() });
        assert_eq!(split("Only new.\n").quoted, "");
        assert_eq!(split("> only a quote").quoted, "");
    }

    #[test]
    fn gmail_attribution_wrapped_over_two_lines() {
        let t = "Thanks, that fixed it.\n\nOn Mon, Jan 5, 2026 at 10:02 AM Jane Doe <\njane@example.com> wrote:\n\n> Please restart the printer.\n>\n";
        assert_eq!(new_text(t), "Thanks, that fixed it.");
    }

    #[test]
    fn attributions_in_five_languages() {
        for attr in [
            "On 5 Jan 2026, at 10:02, Jane Doe <jane@example.com> wrote:",
            "Am 05.01.2026 um 10:02 schrieb Jane Doe <jane@example.com>:",
            "Am Mo., 5. Jan. 2026 um 10:02 Uhr schrieb Jane Doe <jane@example.com>:",
            "Le lun. 5 janv. 2026 à 10:02, Jane Doe <jane@example.com> a écrit :",
            "El lun, 5 ene 2026 a las 10:02, Jane Doe (<jane@example.com>) escribió:",
            "Op ma 5 jan. 2026 om 10:02 schreef Jane Doe <jane@example.com>:",
            "Le lun. 5 janv. 2026 à 10:02, Jane Doe <jane@example.com> a\nécrit :",
            "El lun, 5 ene 2026 a las 10:02, Jane Doe (<jane@example.com>)\nescribió:",
            "Op 5 jan. 2026 om 10:02 heeft Jane Doe <jane@example.com> het volgende geschreven:",
        ] {
            let t = format!("New text.\r\n\r\n{}\r\n> old\r\n", attr.replace('\n', "\r\n"));
            assert_eq!(new_text(&t), "New text.", "{attr}");
        }
    }

    #[test]
    fn sentence_ending_in_wrote_is_kept() {
        let t = "On the form you wrote:\nthe account number is wrong.";
        assert_eq!(new_text(t), t);
    }

    #[test]
    fn outlook_header_blocks() {
        for block in [
            "From: Jane Doe <jane@example.com>\nSent: Monday, January 5, 2026 10:02 AM\nTo: Support\nSubject: Printer",
            "________________________________\nFrom: Jane Doe <jane@example.com>\nSent: Monday, January 5, 2026 10:02\nTo: Support <support@example.com>\nSubject: Printer",
            "Von: Jane Doe <jane@example.com>\nGesendet: Montag, 5. Januar 2026 10:02\nAn: Support\nBetreff: Drucker",
            "De : Jane Doe <jane@example.com>\nEnvoyé : lundi 5 janvier 2026 10:02\nÀ : Support\nObjet : Imprimante",
            "De: Jane Doe <jane@example.com>\nEnviado: lunes, 5 de enero de 2026 10:02\nPara: Soporte\nAsunto: Impresora",
            "De: Jane Doe [mailto:jane@example.com]\nEnviado el: lunes, 5 de enero de 2026 10:02\nPara: Soporte\nCC: Otro\nAsunto: Impresora",
            "Van: Jane Doe <jane@example.com>\nVerzonden: maandag 5 januari 2026 10:02\nAan: Support\nOnderwerp: Printer",
            "*From:* Jane Doe <jane@example.com>\n*Sent:* Monday\n*To:* Support\n*Subject:* Printer",
        ] {
            let t = format!("Done, see attached.\n\n{block}\n\nOld text without quote marks.\n");
            assert_eq!(new_text(&t), "Done, see attached.", "{block}");
        }
    }

    #[test]
    fn underscore_separator_with_a_header_block_in_any_language() {
        let t = "Grazie, funziona.\n\n________________________________\nDa: Support <support@example.com>\nInviato: lunedì 5 gennaio 2026 10:02\nA: Mario Rossi\nOggetto: Stampante\n\nvecchio";
        assert_eq!(new_text(t), "Grazie, funziona.");
        let not_headers = "Totals:\n________________________________\nSum: 5\nthat is all";
        assert_eq!(new_text(not_headers), not_headers);
    }

    #[test]
    fn a_from_line_alone_is_not_a_header_block() {
        let t = "From: the accounting team\nWe need the invoice.";
        assert_eq!(new_text(t), t);
    }

    #[test]
    fn separators() {
        for sep in [
            "-----Original Message-----",
            "-----Ursprüngliche Nachricht-----",
            "-------- Message d'origine --------",
            "-----Mensaje original-----",
            "-----Oorspronkelijk bericht-----",
            "---------- Forwarded message ---------",
            "Begin forwarded message:",
            "Anfang der weitergeleiteten Nachricht:",
            "-------- Message transféré --------",
            "---------- Mensaje reenviado ---------",
            "---------- Doorgestuurd bericht ---------",
        ] {
            let t = format!("Please see below.\n\n{sep}\nSome: thing\nold");
            assert_eq!(new_text(&t), "Please see below.", "{sep}");
        }
    }

    #[test]
    fn bare_forward_is_kept_whole() {
        let t = "---------- Forwarded message ---------\nFrom: Vendor <v@example.net>\nDate: Mon, 5 Jan 2026\nSubject: Invoice\nTo: me\n\nYour invoice.";
        assert_eq!(new_text(t), t);
        assert_eq!(new_text("> only a quote\n> here\n"), "> only a quote\n> here");
    }

    #[test]
    fn signatures() {
        for sig in [
            "-- \nJane Doe\nACME",
            "--\nJane",
            "Sent from my iPhone",
            "Von meinem iPhone gesendet",
            "Envoyé de mon iPhone",
            "Enviado desde mi iPhone",
            "Verzonden vanaf mijn iPhone",
            "Get Outlook for iOS",
            "Get Outlook for Android",
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Holen Sie sich Outlook für Android <https://aka.ms/AAb9ysg>",
        ] {
            let t = format!("Works now.\n\n{sig}\n\n> On Mon wrote\n> x\n");
            assert_eq!(new_text(&t), "Works now.", "{sig}");
        }
    }

    #[test]
    fn a_quoted_snippet_in_the_text_stays() {
        let t = "The printer says:\n> Error 42\nWhat does it mean?";
        assert_eq!(new_text(t), t);
    }

    #[test]
    fn a_single_quote_wrapped_by_the_reply_goes() {
        let t = "Test reply\nOn 04/19/2011 07:10 AM, Roman wrote:\n\n>Test\n>> older\n\nRegards, Roman";
        assert_eq!(
            split(t),
            Trimmed {
                body: "Test reply\n\nRegards, Roman".into(),
                quoted: "On 04/19/2011 07:10 AM, Roman wrote:\n\n>Test\n>> older".into()
            }
        );
    }

    #[test]
    fn inline_answers_keep_their_questions() {
        let t = "Answers inline.\n\nOn Mon, 5 Jan 2026, Jane wrote:\n> Which model?\nThe X200.\n> Since when?\nMonday.\n\n> Regards, Jane\n";
        assert_eq!(
            new_text(t),
            "Answers inline.\n\nOn Mon, 5 Jan 2026, Jane wrote:\n> Which model?\nThe X200.\n> Since when?\nMonday."
        );
    }

    #[test]
    fn attributions_in_more_languages_and_forms() {
        for attr in [
            "pon., 5 sty 2026 o 10:02 ACME Support <support@acme.test> napisał(a):",
            "Den mån 5 jan. 2026 kl 10:02 skrev ACME Support <support@acme.test>:",
            "Vào Th 2, 5 thg 1, 2026 vào lúc 10:02 ACME Support <support@acme.test> đã viết:",
            "ACME Support <support@acme.test> 于2026年1月5日周一 10:02写道：",
            "2026年1月5日(月) 10:02 ACME Support <support@acme.test>:",
            "2026-01-05 10:02 GMT+01:00 ACME Support <support@acme.test>:",
            "Понедельник, 5 января 2026, 10:02 +03:00 от ACME Support <support@acme.test>:",
            "ACME Support <support@acme.test> ezt írta (időpont: 2026. jan. 5., H, 10:02):",
            "On Mon, Jan 5, 2026 at 10:02 AM ACME Support Team for Europe and the Middle\nEast <support-emea@acme.test\n> wrote:",
            "On Nov 30, 2011, at 12:47 PM, ACME Support <\n416ffd3258d4d2fa4c85cfa4c44e1721d66e3e8f4@acme.test>\nwrote:",
            "On Mar 8, 2012 9:59 AM, \"Example.com\" <\nr+7f1b094ceb90e18cca93d53d3703feae@example.com> wrote:",
        ] {
            let t = format!("New text.\n\n{attr}\n\n> old\n");
            assert_eq!(new_text(&t), "New text.", "{attr}");
        }
        let closing = "Regards,\nJane\nOn Mon, Jan 5, 2026 at 10:02 AM ACME Support wrote:\n> old";
        assert_eq!(new_text(closing), "Regards,\nJane");
    }

    #[test]
    fn separators_and_header_blocks_in_more_forms() {
        for history in [
            "-------- Původní zpráva --------\nold",
            "---- ACME Support wrote ----\nold",
            "-----Reply Message-----\nold",
            "Från: ACME Support <support@acme.test>\nSkickat: den 5 januari 2026 10:02\nTill: Åsa\nÄmne: Skrivare\n\nold",
            "Gesendet: Montag, 05. Januar 2026 um 10:02 Uhr\nVon: \"ACME\" <support@acme.test>\nAn: Jürgen\nBetreff: Drucker\n\nalt",
            "From: ACME Support <support@acme.test> Sent: Monday, January 5, 2026 To: Jane Subject: Printer\nold",
            "Date: Mon, 5 Jan 2026 10:02:00 +0100\nTo: Jane Doe <jane@customer.test>\n\nold",
        ] {
            let t = format!("New text.\n\n{history}\n");
            assert_eq!(new_text(&t), "New text.", "{history}");
        }
        let not_headers = "Date: next Monday\nTo: all of the team\nthanks";
        assert_eq!(new_text(not_headers), not_headers);
    }

    #[test]
    fn bottom_posted_reply_keeps_the_text_under_the_quote() {
        let t = "Am 05.01.26 um 10:02 schrieb ACME Support:\n> Bitte die Fehlermeldung.\n\nPapierstau.\n\n-- \nJürgen";
        assert_eq!(new_text(t), "Papierstau.");
        assert_eq!(new_text("> Which error?\n\nPaper jam."), "Paper jam.");
    }

    #[test]
    fn short_and_mobile_signatures_in_more_languages() {
        for sig in [
            "-Jane",
            "-- Jane",
            "Wysłane z iPhone'a",
            "发自我的iPhone",
            "iPhone에서 보냄",
            "Sent with Proton Mail secure email.",
        ] {
            let t = format!("Works now.\n\n{sig}\n");
            assert_eq!(new_text(&t), "Works now.", "{sig}");
        }
        assert_eq!(new_text("Items:\n\n- Toner"), "Items:\n\n- Toner");
    }

    #[test]
    fn text_without_history_is_untouched_but_normalised() {
        assert_eq!(new_text("\r\n  Hello,  \r\n\r\nit works.\r\n\r\n"), "  Hello,\n\nit works.");
    }
}
