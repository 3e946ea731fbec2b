//! Fuzzes the relay's frame scanner and the authentication phase's framed reader: arbitrary
//! bytes, cut into arbitrary chunks, must be framed exactly as a whole-buffer reference
//! framing does (same headers, same observed heads, same refusal), never mis-framed.

#![no_main]

#[path = "common.rs"]
mod common;

use common::{block_on, chunk_size, ChunkedReader};
use libfuzzer_sys::fuzz_target;
use pgvigil::wire::frame::{MAX_AUTH_MESSAGE, MAX_MESSAGE};
use pgvigil::wire::{FrameObserver, FrameScanner, FramedReader, WireError};

/// The input layout, simple enough to write seeds by hand: one byte picking the frame-size
/// limit, a count `k` and `k` chunk sizes, a count `w` and `w` big-endian u16 wants, then
/// the stream's bytes.
struct Input<'a> {
    limit: u8,
    /// Chunk sizes the bytes arrive in, cycled.
    chunks: &'a [u8],
    /// How many body bytes the observer asks for, per frame, cycled.
    wants: Vec<u16>,
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(raw: &'a [u8]) -> Option<Input<'a>> {
        let (&limit, raw) = raw.split_first()?;
        let (&k, raw) = raw.split_first()?;
        let (chunks, raw) = raw.split_at_checked(usize::from(k))?;
        let (&w, raw) = raw.split_first()?;
        let (wants, data) = raw.split_at_checked(usize::from(w) * 2)?;
        let wants = wants
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        Some(Input {
            limit,
            chunks,
            wants,
            data,
        })
    }
}

/// What the reference framing sees in the whole buffer.
#[derive(Debug, PartialEq)]
struct Frame {
    tag: u8,
    body: Vec<u8>,
}

enum End {
    /// The data ends exactly after the last frame.
    Boundary,
    /// The data ends inside a frame (header or body).
    Partial,
    /// A frame's length word is invalid.
    Refused,
}

/// Plain framing over the whole buffer: tag, 4-byte length counting itself, body.
fn reference(data: &[u8], max: usize) -> (Vec<Frame>, End) {
    let mut frames = Vec::new();
    let mut rest = data;
    loop {
        if rest.is_empty() {
            return (frames, End::Boundary);
        }
        if rest.len() < 5 {
            return (frames, End::Partial);
        }
        let total = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as u64;
        if total < 4 || total > max as u64 {
            return (frames, End::Refused);
        }
        let end = 1 + total as usize;
        if rest.len() < end {
            return (frames, End::Partial);
        }
        frames.push(Frame {
            tag: rest[0],
            body: rest[5..end].to_vec(),
        });
        rest = &rest[end..];
    }
}

/// Records what the scanner reports.
struct Recorder<'a> {
    wants: &'a [u16],
    frame: usize,
    headers: Vec<(u8, usize)>,
    heads: Vec<(usize, Vec<u8>)>,
}

impl FrameObserver for Recorder<'_> {
    fn on_header(&mut self, tag: u8, body_len: usize) -> usize {
        self.headers.push((tag, body_len));
        let want = self
            .wants
            .get(self.frame % self.wants.len().max(1))
            .copied()
            .unwrap_or(0);
        self.frame += 1;
        usize::from(want)
    }
    fn on_frame(&mut self, tag: u8, body_len: usize, head: &[u8]) {
        let last = self.headers.last().copied();
        assert_eq!(last, Some((tag, body_len)), "on_frame for another frame");
        self.heads.push((self.headers.len() - 1, head.to_vec()));
    }
}

fuzz_target!(|raw: &[u8]| {
    let Some(input) = Input::parse(raw) else {
        return;
    };
    let max = match input.limit % 5 {
        0 => 5,
        1 => 64,
        2 => 1024,
        3 => MAX_AUTH_MESSAGE,
        _ => MAX_MESSAGE,
    };
    let data = input.data;
    let (frames, end) = reference(data, max);

    // The scanner, fed chunk by chunk.
    let mut scanner = FrameScanner::new(max);
    let mut rec = Recorder {
        wants: &input.wants,
        frame: 0,
        headers: Vec::new(),
        heads: Vec::new(),
    };
    let mut rest = data;
    let mut next = 0;
    let mut refused = false;
    while !rest.is_empty() {
        let n = chunk_size(input.chunks, &mut next).min(rest.len());
        let (now, later) = rest.split_at(n);
        rest = later;
        if let Err(e) = scanner.scan(now, &mut rec) {
            assert!(matches!(
                e,
                WireError::BadLength { .. } | WireError::TooLong { .. }
            ));
            refused = true;
            break;
        }
    }
    assert_eq!(refused, matches!(end, End::Refused), "refusal differs");
    // Headers: every complete frame, plus a partial one whose header arrived.
    let expected: Vec<(u8, usize)> = frames.iter().map(|f| (f.tag, f.body.len())).collect();
    assert!(rec.headers.len() >= expected.len());
    assert_eq!(&rec.headers[..expected.len()], &expected[..], "mis-framed");
    assert!(rec.headers.len() <= expected.len() + 1);
    if matches!(end, End::Boundary) {
        assert_eq!(rec.headers.len(), expected.len());
        assert!(
            scanner.at_boundary(),
            "not at a boundary after whole frames"
        );
    }
    if matches!(end, End::Partial) {
        assert!(!scanner.at_boundary(), "at a boundary inside a frame");
    }
    // Heads: exactly the asked-for prefix of each complete frame that wanted some.
    for (i, head) in &rec.heads {
        if let Some(f) = frames.get(*i) {
            let want = usize::from(input.wants[i % input.wants.len()]);
            assert_eq!(&head[..], &f.body[..want.min(f.body.len())], "wrong head");
        }
    }
    for (i, f) in frames.iter().enumerate() {
        let want = input
            .wants
            .get(i % input.wants.len().max(1))
            .copied()
            .unwrap_or(0);
        let seen = rec.heads.iter().any(|(j, _)| *j == i);
        assert_eq!(
            seen,
            want > 0 && !f.body.is_empty(),
            "on_frame missed or extra"
        );
    }

    // The framed reader over the same chunks (it buffers; keep its limit small).
    if max <= MAX_AUTH_MESSAGE {
        let mut reader = FramedReader::new();
        let mut src = ChunkedReader::new(data, input.chunks);
        let mut got = Vec::new();
        let err = loop {
            match block_on(reader.next(&mut src, max)) {
                Ok(m) => {
                    assert_eq!(m.raw.len(), m.body.len() + 5);
                    assert_eq!(m.raw[0], m.tag);
                    assert_eq!(&m.raw[5..], &m.body[..]);
                    got.push(Frame {
                        tag: m.tag,
                        body: m.body.to_vec(),
                    });
                    // Stop early now and then: what it buffered past this message must be
                    // exactly the bytes that follow it.
                    if got.len() == 2 {
                        assert_eq!(&got[..], &frames[..2], "framed reader mis-framed");
                        let consumed: usize = got.iter().map(|f| f.body.len() + 5).sum();
                        let leftover = reader.into_leftover();
                        let read = data.len() - src.rest().len();
                        assert_eq!(&leftover[..], &data[consumed..read], "bytes lost");
                        return;
                    }
                }
                Err(e) => break e,
            }
        };
        assert_eq!(got, frames, "framed reader mis-framed");
        match end {
            End::Refused => assert!(matches!(
                err,
                WireError::BadLength { .. } | WireError::TooLong { .. }
            )),
            End::Boundary | End::Partial => assert!(matches!(err, WireError::Eof)),
        }
    }
});
