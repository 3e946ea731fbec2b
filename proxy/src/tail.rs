//! `pgvigil tail [FILE] [--follow]`: the audit log (and the findings file) as a person reads
//! them, one line per event: time, `user@database from address`, class and command, the
//! statement cut to the terminal's width, outcome and rows. Findings stand out. Colour is
//! used only when standard output is a terminal (and `NO_COLOR` is unset).
//!
//! The files hold what clients sent: every control character is replaced before it reaches
//! the terminal, so a statement cannot carry escape sequences into the operator's screen.
//! JSON stays the file format; a line that is not JSON is shown as it is (sanitized).

use serde_json::Value;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of `pgvigil tail`.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write: {0}")]
    Write(io::Error),
}

/// How lines are rendered.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// The widest a line may be (characters); `None`: no cut.
    pub width: Option<usize>,
}

impl Style {
    /// Colour and width for the current standard output.
    pub fn for_stdout() -> Style {
        let tty = io::stdout().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none();
        let width = terminal_width().or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        });
        Style { color, width }
    }
}

/// The terminal's width in columns, when standard output is one.
fn terminal_width() -> Option<usize> {
    if !io::stdout().is_terminal() {
        return None;
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass, on our own stdout.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD_RED: &str = "\x1b[1;31m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const MAGENTA: &str = "\x1b[35m";

/// One line of output being built: plain text with optional colour spans.
struct Line {
    style: Style,
    out: String,
}

impl Line {
    fn new(style: Style) -> Line {
        Line {
            style,
            out: String::new(),
        }
    }

    fn push(&mut self, color: Option<&str>, text: &str) {
        let text = sanitize(text);
        match color.filter(|_| self.style.color) {
            Some(c) => {
                self.out.push_str(c);
                self.out.push_str(&text);
                self.out.push_str(RESET);
            }
            None => self.out.push_str(&text),
        }
    }
}

/// Replaces control characters (ESC, CR, newlines, tabs, C1 controls) with a space or
/// `�`, so the text is one line and cannot drive the terminal.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        let c = match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        };
        // Runs of whitespace become one space (statements are often indented).
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
    }
    out
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `HH:MM:SS.mmm` of an RFC 3339 time, or the text as it is.
fn time_of(ts: &str) -> &str {
    ts.get(11..23).unwrap_or(ts)
}

fn who(v: &Value) -> String {
    let user = str_of(v, "user").unwrap_or("?");
    let db = str_of(v, "database").unwrap_or("?");
    let addr = str_of(v, "client_addr").unwrap_or("?");
    format!("{user}@{db} from {addr}")
}

/// Renders one line of the audit log or the findings file.
pub fn render(line: &str, style: Style) -> String {
    let v: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let mut l = Line::new(style);
            l.push(Some(DIM), line);
            return finish(l, None);
        }
    };
    let mut l = Line::new(style);
    if v.get("rule_id").is_some() {
        return finding(&v, l);
    }
    let ts = str_of(&v, "ts").unwrap_or("");
    l.push(Some(DIM), time_of(ts));
    l.push(None, " ");
    l.push(Some(CYAN), &who(&v));
    l.push(None, " ");
    let kind = str_of(&v, "type").unwrap_or("?");
    let mut tail = None;
    match kind {
        "statement" => {
            let class = str_of(&v, "class").unwrap_or("");
            let command = str_of(&v, "command").unwrap_or("");
            l.push(Some(MAGENTA), &format!("{class} {command}"));
            l.push(None, " ");
            let mut end = String::new();
            match str_of(&v, "outcome") {
                Some("error") => {
                    end.push_str(" ERROR");
                    if let Some(code) = str_of(&v, "sqlstate") {
                        end.push_str(&format!(" {code}"));
                    }
                }
                Some(o) => end.push_str(&format!(" {o}")),
                None => {}
            }
            if let Some(rows) = v.get("rows").and_then(Value::as_u64) {
                end.push_str(&format!(" {rows} rows"));
            }
            let color = if str_of(&v, "outcome") == Some("error") {
                RED
            } else {
                GREEN
            };
            tail = Some((sanitize(str_of(&v, "statement").unwrap_or("")), end, color));
        }
        "session_start" => {
            let method = str_of(&v, "auth_method").unwrap_or("?");
            let tls = if v.get("tls") == Some(&Value::Bool(true)) {
                "TLS"
            } else {
                "no TLS"
            };
            l.push(Some(GREEN), &format!("connected ({method}, {tls})"));
        }
        "session_end" => {
            let ms = v.get("duration_ms").and_then(Value::as_u64).unwrap_or(0);
            l.push(
                None,
                &format!("disconnected after {:.1}s", ms as f64 / 1000.0),
            );
            if let Some(by) = str_of(&v, "ended_by") {
                l.push(Some(YELLOW), &format!(" (ended by {by})"));
            }
        }
        "auth_failure" => {
            l.push(Some(RED), "login failed: ");
            l.push(None, str_of(&v, "reason").unwrap_or(""));
        }
        "admin" => {
            let action = str_of(&v, "action").unwrap_or("?");
            let target = str_of(&v, "target").unwrap_or("");
            let result = str_of(&v, "result").unwrap_or("?");
            l.push(Some(YELLOW), &format!("ADMIN {action} {target} {result}"));
            if let Some(d) = str_of(&v, "detail") {
                l.push(None, &format!(": {d}"));
            }
        }
        other => {
            l.push(Some(YELLOW), other);
            for key in ["result", "reason"] {
                if let Some(x) = str_of(&v, key) {
                    l.push(None, &format!(" {x}"));
                }
            }
        }
    }
    finish(l, tail)
}

/// Appends the statement (cut so the whole line fits the width) and its outcome.
fn finish(mut l: Line, tail: Option<(String, String, &str)>) -> String {
    if let Some((statement, end, color)) = tail {
        let used = visible_len(&l.out) + end.chars().count();
        let room = l
            .style
            .width
            .map_or(usize::MAX, |w| w.saturating_sub(used).max(10));
        l.push(None, &cut(&statement, room));
        l.push(Some(color), &end);
    } else if let Some(w) = l.style.width {
        if !l.style.color && l.out.chars().count() > w {
            l.out = cut(&l.out, w);
        }
    }
    l.out
}

/// Characters on screen (colour sequences are not).
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_esc = false;
    for c in s.chars() {
        if in_esc {
            in_esc = c != 'm';
        } else if c == '\x1b' {
            in_esc = true;
        } else {
            n += 1;
        }
    }
    n
}

fn finding(v: &Value, mut l: Line) -> String {
    let ts = str_of(v, "ts").unwrap_or("");
    l.push(Some(DIM), time_of(ts));
    l.push(None, " ");
    let severity = str_of(v, "severity").unwrap_or("?").to_uppercase();
    let rule = str_of(v, "rule_id").unwrap_or("?");
    l.push(Some(BOLD_RED), &format!("!! FINDING {severity} {rule}"));
    l.push(None, " ");
    l.push(Some(CYAN), &who(v));
    l.push(None, ": ");
    l.push(None, str_of(v, "description").unwrap_or(""));
    if let Some(until) = str_of(v, "blocked_until") {
        l.push(Some(BOLD_RED), &format!(" (blocked until {until})"));
    }
    let statement = str_of(v, "statement").map(|s| (sanitize(s), String::new(), RED));
    match statement {
        Some((s, e, c)) => {
            l.push(None, " ");
            finish(l, Some((s, e, c)))
        }
        None => finish(l, None),
    }
}

/// Renders every complete line of `path` (standard input for `-` or no path), then with
/// `follow` keeps reading what is appended, reopening the file when it is rotated.
pub fn run(path: Option<&Path>, follow: bool, style: Style) -> Result<(), TailError> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let path = path.filter(|p| p.as_os_str() != "-");
    let Some(path) = path else {
        for line in io::stdin().lock().lines() {
            let line = line.map_err(TailError::Write)?;
            writeln!(out, "{}", render(&line, style)).map_err(TailError::Write)?;
            out.flush().map_err(TailError::Write)?;
        }
        return Ok(());
    };
    let open = || {
        std::fs::File::open(path).map_err(|source| TailError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut file = open()?;
    let mut pending = Vec::new();
    let mut pos: u64 = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(|source| TailError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if n > 0 {
            pos = pos.saturating_add(n as u64);
            lines(&mut pending, &buf[..n], &mut out, style)?;
            continue;
        }
        out.flush().map_err(TailError::Write)?;
        if !follow {
            return Ok(());
        }
        // At the end of the file we have: if another file is now at the path (logrotate
        // moved ours) or ours was truncated, start over on what is there. Checked only at
        // the end, so what was written to the old file before the move is shown first.
        let replaced = match (std::fs::metadata(path), file.metadata()) {
            (Ok(now), Ok(ours)) => {
                use std::os::unix::fs::MetadataExt;
                now.ino() != ours.ino() || now.len() < pos
            }
            _ => false,
        };
        if replaced {
            if let Ok(f) = open() {
                // The new file appears when pgvigil reopens; until then it wrote to the old
                // one, perhaps since our last read: finish that first.
                while let Ok(n @ 1..) = file.read(&mut buf) {
                    lines(&mut pending, &buf[..n], &mut out, style)?;
                }
                file = f;
                pos = 0;
                pending.clear();
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads of the file are this large: a big log is streamed, never loaded whole.
const CHUNK: usize = 64 * 1024;
/// The longest line held while waiting for its end.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Adds `data` to the partial line in `pending` and shows every line completed.
fn lines(
    pending: &mut Vec<u8>,
    data: &[u8],
    out: &mut impl Write,
    style: Style,
) -> Result<(), TailError> {
    pending.extend_from_slice(data);
    // Only whole lines: the writer may be mid-line.
    while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=nl).collect();
        show(out, &line[..line.len().saturating_sub(1)], style)?;
    }
    // A "line" that never ends (not a log file) is shown in pieces, not held.
    if pending.len() > MAX_LINE {
        let piece: Vec<u8> = std::mem::take(pending);
        show(out, &piece, style)?;
    }
    Ok(())
}

fn show(out: &mut impl Write, line: &[u8], style: Style) -> Result<(), TailError> {
    let text = String::from_utf8_lossy(line);
    if text.trim().is_empty() {
        return Ok(());
    }
    writeln!(out, "{}", render(&text, style)).map_err(TailError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style {
        color: false,
        width: Some(80),
    };

    #[test]
    fn a_statement_line() {
        let l = r#"{"ts":"2026-12-03T09:58:10.324246Z","type":"statement","user":"alice","database":"app","client_addr":"10.0.0.5","class":"WRITE","command":"UPDATE","statement":"update t\n   set x = 1 where id = 7","outcome":"ok","rows":3}"#;
        let wide = Style {
            color: false,
            width: Some(120),
        };
        let r = render(l, wide);
        assert_eq!(
            r,
            "09:58:10.324 alice@app from 10.0.0.5 WRITE UPDATE update t set x = 1 where id = 7 ok 3 rows"
        );
    }

    #[test]
    fn long_statements_are_cut_to_the_width() {
        let long = "x".repeat(500);
        let l = format!(
            r#"{{"ts":"2026-12-03T09:58:10.324246Z","type":"statement","user":"u","database":"d","client_addr":"a","class":"READ","command":"SELECT","statement":"select {long}","outcome":"error","sqlstate":"42P01","rows":null}}"#
        );
        let r = render(&l, PLAIN);
        assert_eq!(r.chars().count(), 80, "{r}");
        assert!(r.ends_with("… ERROR 42P01"), "{r}");
    }

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        let l = r#"{"ts":"t","type":"statement","user":"\u001b[2J","database":"d","client_addr":"a","class":"READ","command":"SELECT","statement":"select '\u001b]0;pwned\u0007'","outcome":"ok"}"#;
        for color in [false, true] {
            let r = render(l, Style { color, width: None });
            let without_ours = r
                .replace(RESET, "")
                .replace(DIM, "")
                .replace(CYAN, "")
                .replace(MAGENTA, "")
                .replace(GREEN, "");
            assert!(!without_ours.contains('\x1b'), "{r:?}");
            assert!(!without_ours.contains('\x07'), "{r:?}");
        }
        assert!(!render("\x1b[31mnot json", PLAIN).contains('\x1b'));
    }

    #[test]
    fn findings_stand_out() {
        let l = r#"{"id":"x","ts":"2026-12-03T10:00:00.000000Z","rule_id":"failed-logins","severity":"high","description":"More than 5 failed logins","user":"bob","database":"app","client_addr":"203.0.113.9","blocked_until":"2026-12-03T10:15:00.000000Z"}"#;
        let r = render(
            l,
            Style {
                color: false,
                width: None,
            },
        );
        assert!(r.starts_with("10:00:00.000 !! FINDING HIGH failed-logins bob@app from 203.0.113.9: More than 5 failed logins (blocked until"), "{r}");
        let c = render(
            l,
            Style {
                color: true,
                width: None,
            },
        );
        assert!(c.contains(BOLD_RED), "{c:?}");
    }
}
