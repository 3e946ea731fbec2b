//! The console's command language: a handful of PgBouncer-style commands, parsed from
//! whatever a client sends. Hostile input gets an error message, never a panic; the
//! parser is linear in the text and allocates at most the text's size.

use std::net::IpAddr;
use std::time::Duration;

/// The longest block `BLOCK ... FOR` accepts, as for rules.
const MAX_BLOCK: Duration = crate::detect::rule::MAX_DURATION;
/// How long a `BLOCK` without `FOR` lasts.
pub const DEFAULT_BLOCK: Duration = Duration::from_secs(3600);
/// The most findings `SHOW FINDINGS n` returns (the console keeps no more).
pub const MAX_FINDINGS: usize = crate::detect::engine::RECENT_FINDINGS;

/// One console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowSessions,
    ShowStats,
    ShowRules,
    ShowFindings(usize),
    ShowBlocks,
    ShowConfig,
    ShowVersion,
    ShowHelp,
    Kill(String),
    Block(IpAddr, Duration),
    Unblock(IpAddr),
    Reload,
    /// Only whitespace, semicolons or comments.
    Empty,
}

/// A word or a quoted string of the command text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Number(u64),
}

/// Splits the text into words, `'quoted'` strings (`''` is a quote) and numbers; one
/// trailing `;` and `--` comments are allowed.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut ended = false;
    while let Some((_, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '-' && chars.peek().map(|p| p.1) == Some('-') {
            // A comment runs to the end of the line.
            for (_, c) in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if ended {
            return Err("one command at a time: nothing may follow the ';'".into());
        }
        if c == ';' {
            ended = true;
            continue;
        }
        if c == '\'' {
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string".into()),
                    Some((_, '\'')) if chars.peek().map(|p| p.1) == Some('\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some((_, '\'')) => break,
                    Some((_, c)) => s.push(c),
                }
            }
            out.push(Token::Quoted(s));
            continue;
        }
        if c.is_ascii_digit() {
            let mut n: u64 = u64::from(c as u8 - b'0');
            while let Some(&(_, d)) = chars.peek() {
                if !d.is_ascii_alphanumeric() {
                    break;
                }
                let digit = d
                    .to_digit(10)
                    .ok_or_else(|| "a number must be digits only".to_string())?;
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(|| "number too large".to_string())?;
                chars.next();
            }
            out.push(Token::Number(n));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut w = String::new();
            w.push(c.to_ascii_uppercase());
            while let Some(&(_, d)) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                w.push(d.to_ascii_uppercase());
                chars.next();
            }
            out.push(Token::Word(w));
            continue;
        }
        return Err(format!("syntax error at {:?}", c));
    }
    Ok(out)
}

/// What the console understands, for errors and `SHOW HELP`.
pub const USAGE: &str =
    "SHOW SESSIONS | SHOW STATS | SHOW RULES | SHOW FINDINGS [n] | SHOW BLOCKS | \
SHOW CONFIG | SHOW VERSION | SHOW HELP | KILL '<session id>' | BLOCK '<addr>' [FOR '<duration>'] | \
UNBLOCK '<addr>' | RELOAD";

/// Parses one command.
pub fn parse(text: &str) -> Result<Command, String> {
    let toks = tokens(text)?;
    let word = |i: usize| match toks.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let quoted = |i: usize, what: &str| match toks.get(i) {
        Some(Token::Quoted(s)) => Ok(s.clone()),
        _ => Err(format!("expected {what} in single quotes")),
    };
    let no_more = |n: usize| {
        if toks.len() > n {
            Err(format!(
                "unexpected text after the command; commands: {USAGE}"
            ))
        } else {
            Ok(())
        }
    };
    let cmd = match word(0) {
        None if toks.is_empty() => return Ok(Command::Empty),
        Some("SHOW") => {
            let c = match word(1) {
                Some("SESSIONS") => Command::ShowSessions,
                Some("STATS") => Command::ShowStats,
                Some("RULES") => Command::ShowRules,
                Some("BLOCKS") => Command::ShowBlocks,
                Some("CONFIG") => Command::ShowConfig,
                Some("VERSION") => Command::ShowVersion,
                Some("HELP") => Command::ShowHelp,
                Some("FINDINGS") => {
                    let n = match toks.get(2) {
                        None => 20,
                        Some(Token::Number(n)) => {
                            usize::try_from(*n).unwrap_or(usize::MAX).min(MAX_FINDINGS)
                        }
                        Some(_) => return Err("SHOW FINDINGS takes a number".into()),
                    };
                    no_more(3)?;
                    return Ok(Command::ShowFindings(n));
                }
                _ => return Err(format!("unknown SHOW command; commands: {USAGE}")),
            };
            no_more(2)?;
            c
        }
        Some("KILL") => {
            let id = quoted(1, "a session id")?;
            no_more(2)?;
            Command::Kill(id)
        }
        Some("BLOCK") => {
            let addr = addr(&quoted(1, "an address")?)?;
            let d = match word(2) {
                None if toks.len() == 2 => DEFAULT_BLOCK,
                Some("FOR") => {
                    let text = quoted(3, "a duration such as '15m'")?;
                    let d = humantime::parse_duration(text.trim())
                        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
                    if d.is_zero() || d > MAX_BLOCK {
                        return Err("the duration must be more than 0 and at most 365 days".into());
                    }
                    no_more(4)?;
                    d
                }
                _ => return Err("expected BLOCK '<addr>' [FOR '<duration>']".into()),
            };
            Command::Block(addr, d)
        }
        Some("UNBLOCK") => {
            let a = addr(&quoted(1, "an address")?)?;
            no_more(2)?;
            Command::Unblock(a)
        }
        Some("RELOAD") => {
            no_more(1)?;
            Command::Reload
        }
        _ => return Err(format!("unknown command; commands: {USAGE}")),
    };
    Ok(cmd)
}

fn addr(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse::<IpAddr>()
        .map(|a| a.to_canonical())
        .map_err(|_| format!("{text:?} is not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("show sessions;"), Ok(Command::ShowSessions));
        assert_eq!(parse("  SHOW   Stats "), Ok(Command::ShowStats));
        assert_eq!(parse("show findings"), Ok(Command::ShowFindings(20)));
        assert_eq!(parse("show findings 3"), Ok(Command::ShowFindings(3)));
        assert_eq!(
            parse("show findings 99999999999999"),
            Ok(Command::ShowFindings(MAX_FINDINGS))
        );
        assert_eq!(parse("KILL 'ab-1'"), Ok(Command::Kill("ab-1".into())));
        assert_eq!(parse("kill 'it''s'"), Ok(Command::Kill("it's".into())));
        assert_eq!(
            parse("block '10.0.0.9' for '15m'"),
            Ok(Command::Block(
                "10.0.0.9".parse().unwrap(),
                Duration::from_secs(900)
            ))
        );
        assert_eq!(
            parse("block '::ffff:10.0.0.9'"),
            Ok(Command::Block("10.0.0.9".parse().unwrap(), DEFAULT_BLOCK))
        );
        assert_eq!(
            parse("unblock '2001:db8::1' -- done"),
            Ok(Command::Unblock("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(parse("reload"), Ok(Command::Reload));
        assert_eq!(parse(" ; "), Ok(Command::Empty));
        assert_eq!(parse("-- nothing"), Ok(Command::Empty));
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [
            "show",
            "show sessions; drop table x",
            "kill ab",
            "kill 'unterminated",
            "block 'not an ip'",
            "block '10.0.0.1' for '0s'",
            "block '10.0.0.1' for '400 days'",
            "block '10.0.0.1' for 'soon'",
            "block '10.0.0.1' until '1h'",
            "show findings 18446744073709551616",
            "show findings 1x",
            "show findings 'x'",
            "select 1",
            "\u{0}",
            "kill '' ''",
            "unblock",
            "reload now",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"sShOwKILblockFR '';-\n0123456789.:fx\x00\xff";
                let pick = alphabet[(x % alphabet.len() as u64) as usize];
                s.push(char::from(pick));
            }
            let _ = parse(&s);
        }
    }
}
