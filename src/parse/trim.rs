//! Reply trimming: keeps what the sender newly wrote (SPEC.md "Reply
//! trimming"). Works on text (HTML mail is converted first by
//! [`super::html::to_text`], which turns quotes into `>` lines and Outlook's
//! reply header into an underscore line). The untrimmed text is always kept
//! by the caller; this only decides what is posted.
//!
//! The rules are data, in the tables below; the order of work is:
//! 1. **History cut**: the first line (outside `>` quotes) where quoted history
//!    starts; everything from it on goes:
//!    - a separator line: `-----Original Message-----` and its translations,
//!      forward markers (`---------- Forwarded message ---------`,
//!      `Begin forwarded message:`, …) in English, German, French, Spanish and
//!      Dutch ([`SEPARATORS`]);
//!    - an Outlook header block: a `From:`-like label at the start of a line
//!      and at least two more header labels of the same language ([`HEADER_BLOCKS`])
//!      in the next few lines; the cut moves up over an underscore line
//!      (Outlook on the web) and blank lines;
//!    - Outlook's underscore separator line followed by at least three
//!      `Label: value` lines, in any language;
//!    - an attribution line `On … wrote:` and its translations ([`ATTRIBUTIONS`]),
//!      also when wrapped over two lines as Gmail does. It must contain a digit
//!      (a date or time: every client writes one), which keeps ordinary
//!      sentences ending in "wrote:" safe. When the quote under it is answered
//!      inline (unquoted text after the quoted lines), it is no cut: inline
//!      answers need their questions.
//! 2. Trailing `>` quoted lines and blank lines go; quoted blocks between new
//!    text stay, for the same reason.
//! 3. **Signature cut**: from the first `-- ` delimiter line (also `--`, as
//!    clients that strip trailing spaces send it) or a mobile / client
//!    signature line ([`SIGNATURES`]: "Sent from my iPhone", "Get Outlook for
//!    iOS", …) to the end.
//! 4. If nothing is left (a bare forward, a mail that is only a quote), the
//!    untrimmed text is returned: nothing the sender sent may be hidden.
//!
//! Line endings come out as `\n`; trailing spaces of lines are removed.

use std::sync::LazyLock;

use regex::Regex;

/// Lines that start quoted history outright (whole line, case-insensitive).
pub const SEPARATORS: &[&str] = &[
    // -----Original Message----- and translations.
    r"-{2,}\s*(original message|ursprüngliche nachricht|originalnachricht|message d'origine|mensaje original|oorspronkelijk bericht)\s*-{2,}",
    // Forward markers: Gmail, Thunderbird, Outlook.
    r"-{2,}\s*(forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|doorgestuurd bericht)\s*-{2,}",
    // Apple Mail's forward markers.
    r"(begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|inicio del mensaje reenviado|begin doorgestuurd bericht)\s*:",
];

/// Outlook header block labels per language: the `From` label, then the
/// other labels of that language (a label is a word, optionally followed
/// by a short one: Spanish Outlook writes `Enviado el:`). A colon follows
/// each (French puts a space before it). `*From:*` is how some clients render the bold label as text.
pub const HEADER_BLOCKS: &[(&str, &[&str])] = &[
    ("from", &["sent", "date", "to", "cc", "subject"]),
    ("von", &["gesendet", "datum", "an", "cc", "betreff"]),
    ("de", &["envoyé", "date", "à", "a", "cc", "objet"]),
    ("de", &["enviado", "enviado el", "fecha", "para", "cc", "asunto"]),
    ("van", &["verzonden", "datum", "aan", "cc", "onderwerp"]),
];
/// How many lines after the `From` line the other labels are looked for.
const HEADER_BLOCK_SPAN: usize = 8;
/// Labels besides `From` needed to call it a header block.
const HEADER_BLOCK_MIN: usize = 2;

/// Attribution lines (whole line or two joined lines, case-insensitive).
pub const ATTRIBUTIONS: &[&str] = &[
    r"on\s.{4,250}\swrote\s?:",
    r"am\s.{4,250}\sschrieb\s.{0,250}:",
    r"le\s.{4,250}\sa\s+écrit\s?:",
    r"el\s.{4,250}\sescribió\s?:",
    r"op\s.{4,250}\sschreef\s.{0,250}:",
    r"op\s.{4,250}\sheeft\s.{1,250}\shet volgende geschreven\s?:",
];

/// Signature lines of mobile apps and mail clients (whole line, case-insensitive).
pub const SIGNATURES: &[&str] = &[
    r"sent from my \S.{0,60}",
    r"sent from (outlook|mail|yahoo mail)( for \S.{0,30})?",
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
    r"verzonden (vanaf|met|van) mijn \S.{0,60}",
    r"outlook voor (ios|android) (downloaden|ophalen)",
];

/// The `-- ` signature delimiter, as sent or with its space stripped.
const SIGNATURE_DELIMITERS: &[&str] = &["-- ", "--"];

/// An underscore line: Outlook on the web's separator before its header block.
const UNDERSCORES: &str = r"_{10,}";

struct Rules {
    separators: Regex,
    attributions: Regex,
    signatures: Regex,
    underscores: Regex,
    header_label: Regex,
}

/// `(?i)^\s*(?:a|b|c)\s*$`: one alternation of whole-line patterns.
fn whole_line(patterns: &[&str]) -> String {
    format!(r"(?i)^\s*(?:{})\s*$", patterns.join("|"))
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let build = |p: String| Regex::new(&p).expect("the pattern tables are valid regular expressions");
    Rules {
        separators: build(whole_line(SEPARATORS)),
        attributions: build(whole_line(ATTRIBUTIONS)),
        // Outlook mobile glues its link to the line: `Get Outlook for iOS<https://aka.ms/o0ukef>`.
        signatures: build(whole_line(&[&format!(r"(?:{})(?:\s*<\S+>)?", SIGNATURES.join("|"))])),
        underscores: build(whole_line(&[UNDERSCORES])),
        header_label: build(r"(?i)^\s*\*?(\p{L}{1,12}(?: \p{L}{1,3})?)\s?:\*?(\s|$)".to_string()),
    }
});

/// The new text of a reply.
pub fn new_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut end = history_start(&lines).unwrap_or(lines.len());
    end = without_trailing_quotes(&lines[..end]);
    if let Some(sig) = signature_start(&lines[..end]) {
        end = without_trailing_quotes(&lines[..sig]);
    }
    let kept = lines[..end].join("\n");
    let kept = kept.trim_matches('\n');
    if kept.trim().is_empty() { lines.join("\n").trim_matches('\n').to_string() } else { kept.to_string() }
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
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
    while j > 0 && lines[j - 1].trim().is_empty() {
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
    after.iter().skip_while(|l| l.trim().is_empty()).take(HEADER_BLOCK_SPAN).filter(|l| label(l).is_some()).count()
}

fn is_header_block(lines: &[&str], i: usize) -> bool {
    let Some(first) = label(lines[i]) else { return false };
    let following: Vec<String> = lines[i + 1..].iter().take(HEADER_BLOCK_SPAN).filter_map(|l| label(l)).collect();
    HEADER_BLOCKS.iter().filter(|(from, _)| *from == first).any(|(_, others)| {
        let mut seen: Vec<&str> = others.iter().copied().filter(|o| following.iter().any(|f| f == o)).collect();
        seen.dedup();
        seen.len() >= HEADER_BLOCK_MIN
    })
}

/// Lines (1 or 2) the attribution starting at `i` takes, if there is one.
fn attribution_len(lines: &[&str], i: usize) -> Option<usize> {
    let matches = |s: &str| s.chars().any(|c| c.is_ascii_digit()) && RULES.attributions.is_match(s);
    if matches(lines[i]) {
        return Some(1);
    }
    let next = lines.get(i + 1).filter(|l| !l.trim().is_empty() && !is_quoted(l))?;
    matches(&format!("{} {}", lines[i].trim_end(), next.trim())).then_some(2)
}

/// Whether unquoted text follows the quote under an attribution: an inline
/// answer. Unquoted history straight under the attribution is not one.
fn answered_inline(after: &[&str]) -> bool {
    let mut rest = after.iter().skip_while(|l| l.trim().is_empty()).peekable();
    if !rest.peek().is_some_and(|l| is_quoted(l)) {
        return false;
    }
    let mut rest = rest.skip_while(|l| is_quoted(l) || l.trim().is_empty());
    rest.next().is_some_and(|l| !is_signature(l) && !SIGNATURE_DELIMITERS.contains(l))
}

fn is_signature(line: &str) -> bool {
    line.len() <= 120 && RULES.signatures.is_match(line)
}

fn signature_start(lines: &[&str]) -> Option<usize> {
    lines.iter().position(|l| {
        let raw = l.trim_start_matches('\u{feff}');
        SIGNATURE_DELIMITERS.iter().any(|d| raw == d.trim_end()) || is_signature(raw)
    })
}

/// The end of `lines` without trailing quoted and blank lines.
fn without_trailing_quotes(lines: &[&str]) -> usize {
    lines.iter().rposition(|l| !l.trim().is_empty() && !is_quoted(l)).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn inline_answers_keep_their_questions() {
        let t = "Answers inline.\n\nOn Mon, 5 Jan 2026, Jane wrote:\n> Which model?\nThe X200.\n> Since when?\nMonday.\n\n> Regards, Jane\n";
        assert_eq!(
            new_text(t),
            "Answers inline.\n\nOn Mon, 5 Jan 2026, Jane wrote:\n> Which model?\nThe X200.\n> Since when?\nMonday."
        );
    }

    #[test]
    fn text_without_history_is_untouched_but_normalised() {
        assert_eq!(new_text("\r\n  Hello,  \r\n\r\nit works.\r\n\r\n"), "  Hello,\n\nit works.");
    }
}
