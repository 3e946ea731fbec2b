//! Fuzzes the audit tracker with arbitrary interleavings of client and server frames, fed
//! the way the relay feeds it: the bytes of each direction go through a `FrameScanner`
//! with the relay's own observers (`ClientSide`, `ServerSide`), in arbitrary chunks.
//! Events are taken as the relay takes them, and the session ends with `abandon`.
//!
//! The input is a script, one step per line, so seeds are written by hand and libFuzzer's
//! mutations keep most frames well-formed (reaching the tracker's logic) while raw frames
//! bring malformed bodies:
//! - first line: options: `p` log_parameters, `l` redact literals, `o`
//!   standard_conforming_strings off, a number: max_parse_bytes;
//! - `>` then a tag: a client frame. `Q sql`, `Pname|sql`, `Bportal|statement|p1|p2`
//!   (`~` is NULL), `Eportal`, `DSname` / `DPname` (Describe), `CSname` / `CPname`
//!   (Close), `Foid`, `S`, `H`, `d...`, `c`, `fmessage`, `X`; any other tag: raw body;
//! - `<` then a tag: a server frame. `Ctag`, `Ecode|message`, `Nmessage`, `Zstatus`, `1`,
//!   `2`, `3`, `n`, `T`, `D...`, `I`, `s`, `Sname|value`, `G`, `H`; any other: raw body;
//! - `!`: take the events; `#n`: deliver bytes in chunks of `n` (0: whole frames).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgvigil::audit::{write_pgaudit, SessionInfo, Tracker};
use pgvigil::config::{load_str, Config};
use pgvigil::frontend::relay::{Activity, ClientSide, ServerSide};
use pgvigil::metrics::Metrics;
use pgvigil::wire::FrameScanner;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// A frame: tag, length counting itself, body. Bodies here are far below 4 GiB.
fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

fn fields(body: &[u8]) -> Vec<&[u8]> {
    body.split(|&c| c == b'|').collect()
}

/// Appends a string and its terminator.
fn bstr(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(s);
    b.push(0);
}

/// The frame a client line stands for.
fn encode_client(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    let mut b = Vec::new();
    let f = fields(body);
    let field = |i: usize| f.get(i).copied().unwrap_or_default();
    match tag {
        b'Q' | b'f' => bstr(&mut b, body),
        b'P' => {
            bstr(&mut b, field(0));
            bstr(&mut b, field(1));
            b.extend_from_slice(&0u16.to_be_bytes());
        }
        b'B' => {
            bstr(&mut b, field(0));
            bstr(&mut b, field(1));
            let params = f.get(2..).unwrap_or_default();
            b.extend_from_slice(&0u16.to_be_bytes());
            b.extend_from_slice(&(params.len() as u16).to_be_bytes());
            for p in params {
                if *p == b"~" {
                    b.extend_from_slice(&(-1i32).to_be_bytes());
                } else {
                    b.extend_from_slice(&(p.len() as i32).to_be_bytes());
                    b.extend_from_slice(p);
                }
            }
            b.extend_from_slice(&0u16.to_be_bytes());
        }
        b'E' => {
            bstr(&mut b, body);
            b.extend_from_slice(&0i32.to_be_bytes());
        }
        b'D' | b'C' => {
            b.push(body.first().copied().unwrap_or(b'S'));
            bstr(&mut b, body.get(1..).unwrap_or_default());
        }
        b'F' => {
            let oid: u32 = std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            b.extend_from_slice(&oid.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        b'S' | b'H' | b'c' | b'X' => {}
        _ => b.extend_from_slice(body),
    }
    frame(out, tag, &b);
}

/// The frame a server line stands for.
fn encode_server(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    let mut b = Vec::new();
    let f = fields(body);
    let field = |i: usize| f.get(i).copied().unwrap_or_default();
    match tag {
        b'C' => bstr(&mut b, body),
        b'E' => {
            for (code, v) in [
                (b'S', &b"ERROR"[..]),
                (b'V', b"ERROR"),
                (b'C', field(0)),
                (b'M', field(1)),
            ] {
                b.push(code);
                bstr(&mut b, v);
            }
            b.push(0);
        }
        b'N' => {
            b.push(b'M');
            bstr(&mut b, body);
            b.push(0);
        }
        b'Z' => b.push(body.first().copied().unwrap_or(b'I')),
        b'1' | b'2' | b'3' | b'n' | b'I' | b's' => {}
        b'T' => b.extend_from_slice(&0u16.to_be_bytes()),
        b'S' => {
            bstr(&mut b, field(0));
            bstr(&mut b, field(1));
        }
        b'G' | b'H' => b.extend_from_slice(&[0, 0, 0]),
        _ => b.extend_from_slice(body),
    }
    frame(out, tag, &b);
}

/// Options from the script's first line.
struct Options {
    log_parameters: bool,
    literals: bool,
    scs: bool,
    max_parse_bytes: u32,
}

impl Options {
    fn parse(line: &[u8]) -> Options {
        let digits: String = line
            .iter()
            .filter(|c| c.is_ascii_digit())
            .take(6)
            .map(|&c| char::from(c))
            .collect();
        Options {
            log_parameters: line.contains(&b'p'),
            literals: line.contains(&b'l'),
            scs: !line.contains(&b'o'),
            max_parse_bytes: digits.parse().unwrap_or(65536),
        }
    }
}

fn tracker(input: &Options) -> Option<Tracker> {
    let text = format!(
        "[listen.tls]\nmode = \"disable\"\n[audit]\nlog_parameters = {}\nredact = \"{}\"\nmax_parse_bytes = {}\n",
        input.log_parameters,
        if input.literals { "literals" } else { "passwords" },
        input.max_parse_bytes,
    );
    // Loading a configuration parses the built-in rules: far slower than a run, so each
    // is loaded once (a bounded cache; a limit the configuration refuses is simply not a
    // case to fuzz).
    static CONFIGS: OnceLock<Mutex<HashMap<String, Option<Arc<Config>>>>> = OnceLock::new();
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    let mut configs = CONFIGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if configs.len() > 64 {
        configs.clear();
    }
    let config = configs
        .entry(text)
        .or_insert_with_key(|text| {
            load_str(text, Path::new("/tmp/fuzz.toml"))
                .ok()
                .map(Arc::new)
        })
        .clone()?;
    let metrics = METRICS.get_or_init(|| Arc::new(Metrics::new())).clone();
    let session = Arc::new(SessionInfo {
        session_id: "fuzz".into(),
        user: Some("alice".into()),
        database: Some("app".into()),
        client_addr: std::net::IpAddr::from([127, 0, 0, 1]),
        client_port: 1,
        application_name: None,
        tls: false,
        auth_method: None,
        upstream_auth_method: None,
        service: false,
    });
    let mut t = Tracker::new(config, metrics, session);
    t.set_standard_conforming_strings(input.scs);
    Some(t)
}

fuzz_target!(|script: &[u8]| {
    let mut lines = script.split(|&c| c == b'\n');
    let options = Options::parse(lines.next().unwrap_or_default());
    let Some(t) = tracker(&options) else {
        return;
    };
    let tracker = Mutex::new(t);
    let activity = Activity::new_idle();
    let limit = pgvigil::wire::frame::MAX_MESSAGE;
    let mut client_scan = FrameScanner::new(limit);
    let mut server_scan = FrameScanner::new(limit);
    let mut chunk = 0usize;
    let take = || {
        let got = tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_events();
        for e in &got {
            // The writer formats every event, as JSON or as pgAudit lines: that must hold
            // for any input.
            let mut out = Vec::new();
            assert!(e.write_json(&mut out).is_ok(), "event does not serialize");
            assert!(write_pgaudit(e, &mut out).is_ok(), "no pgAudit line");
        }
    };
    for line in lines {
        let Some((&kind, rest)) = line.split_first() else {
            continue;
        };
        let (tag, body) = rest.split_first().map_or((0, &[][..]), |(t, b)| (*t, b));
        let mut bytes = Vec::new();
        let client = match kind {
            b'>' => {
                encode_client(tag, body, &mut bytes);
                true
            }
            b'<' => {
                encode_server(tag, body, &mut bytes);
                false
            }
            b'!' => {
                take();
                continue;
            }
            b'#' => {
                chunk = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                continue;
            }
            _ => continue,
        };
        let step = if chunk == 0 { bytes.len() } else { chunk };
        for now in bytes.chunks(step.max(1)) {
            let res = if client {
                let mut obs = ClientSide {
                    activity: &activity,
                    tracker: &tracker,
                };
                client_scan.scan(now, &mut obs)
            } else {
                let mut obs = ServerSide {
                    activity: &activity,
                    tracker: &tracker,
                };
                server_scan.scan(now, &mut obs)
            };
            // Every frame built here has a valid length.
            assert!(res.is_ok(), "well-framed bytes refused");
        }
        assert!(client_scan.at_boundary() && server_scan.at_boundary());
    }
    take();
    tracker.lock().unwrap_or_else(|p| p.into_inner()).abandon();
    take();
    // After abandon nothing is left to report.
    assert!(tracker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take_events()
        .is_empty());
});
