//! Unit tests of `frame.rs`.

use super::*;

#[derive(Default)]
struct Seen(Vec<(u8, usize, Vec<u8>)>);
impl FrameObserver for Seen {
    fn on_header(&mut self, tag: u8, _len: usize) -> usize {
        if tag == b'Q' {
            4
        } else {
            0
        }
    }
    fn on_frame(&mut self, tag: u8, len: usize, head: &[u8]) {
        self.0.push((tag, len, head.to_vec()));
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn scans_frames_split_at_every_byte() {
    let mut stream = frame(b'Q', b"select 1\0");
    stream.extend(frame(b'D', &[1, 2, 3]));
    stream.extend(frame(b'Q', b"x\0"));
    for cut in 0..stream.len() {
        let mut sc = FrameScanner::new(MAX_MESSAGE);
        let mut seen = Seen::default();
        sc.scan(&stream[..cut], &mut seen).unwrap();
        sc.scan(&stream[cut..], &mut seen).unwrap();
        assert!(sc.at_boundary());
        assert_eq!(seen.0[0], (b'Q', 9, b"sele".to_vec()), "cut {cut}");
        assert_eq!(seen.0.last().unwrap(), &(b'Q', 2, b"x\0".to_vec()));
    }
}

#[test]
fn rejects_short_and_huge_lengths() {
    for bad in [
        [b'Q', 0, 0, 0, 0],
        [b'Q', 0, 0, 0, 3],
        [b'Q', 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut sc = FrameScanner::new(MAX_MESSAGE);
        assert!(sc.scan(&bad, &mut NoObserver).is_err());
    }
}

#[tokio::test]
async fn startup_packet_limits() {
    let mut short: &[u8] = &[0, 0, 0, 3];
    assert!(read_startup_packet(&mut short).await.is_err());
    let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff];
    assert!(read_startup_packet(&mut huge).await.is_err());
    let mut truncated: &[u8] = &[0, 0, 0, 16, 1, 2];
    assert!(read_startup_packet(&mut truncated).await.is_err());
    let mut ok: &[u8] = &[0, 0, 0, 8, 4, 210, 22, 47, b'x'];
    assert_eq!(read_startup_packet(&mut ok).await.unwrap().len(), 4);
}

#[tokio::test]
async fn framed_reader_keeps_leftover() {
    let mut data = frame(b'R', &[0, 0, 0, 0]);
    data.extend(frame(b'Z', b"I"));
    data.extend_from_slice(b"D\0\0");
    let mut r = FramedReader::new();
    let mut src: &[u8] = &data;
    assert_eq!(r.next(&mut src, 100).await.unwrap().tag, b'R');
    assert_eq!(r.next(&mut src, 100).await.unwrap().tag, b'Z');
    assert_eq!(&r.into_leftover()[..], b"D\0\0");
}
