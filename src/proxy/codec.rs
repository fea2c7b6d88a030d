//! Pure framing of the PostgreSQL v3 message stream (no I/O): a type byte and
//! a big-endian i32 length that counts itself but not the type byte.
//! See <https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS>.
//!
//! The framer lets the relay forward original bytes as they arrive: messages
//! the proxy inspects are handed over whole, all others stream through in
//! pieces, so a 1 GB DataRow never needs 1 GB of proxy memory.

use bytes::{BufMut, BytesMut};

/// Length of a message header: type byte + i32 length.
pub const HEADER_LEN: usize = 5;

/// A framing step over the bytes not yet framed.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message the caller asked to see whole; `len` counts the
    /// type byte, so the message is `buf[..len]` and its body `buf[5..len]`.
    Whole { tag: u8, len: usize },
    /// The start of a streamed message: its header and the first body bytes,
    /// `consumed` bytes in all.
    Head { tag: u8, consumed: usize },
    /// More body bytes of the streamed message in progress.
    Body { consumed: usize },
    /// Not enough bytes buffered; `need` is the total the next step needs.
    Incomplete { need: usize },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid message length {len} for message type {:?}", *tag as char)]
    BadLength { tag: u8, len: u32 },
    #[error("message of type {:?} is {len} bytes, more than the configured maximum of {max} bytes (max_message_bytes)", *tag as char)]
    TooLong { tag: u8, len: usize, max: usize },
}

/// Streaming framer state for one direction.
#[derive(Debug, Default)]
pub struct Framer {
    /// Body bytes of the streamed message still to pass.
    skip: usize,
    /// Refuse messages longer than this (client side); `None` trusts the peer.
    max_len: Option<usize>,
}

impl Framer {
    pub fn new(max_len: Option<usize>) -> Framer {
        Framer { skip: 0, max_len }
    }

    /// True between messages: nothing of a streamed message is pending, so a
    /// message of the proxy's own may be inserted here.
    pub fn at_boundary(&self) -> bool {
        self.skip == 0
    }

    /// Take one step over `buf` (bytes not yet framed). `whole(tag, len)`
    /// decides whether the message must be buffered completely.
    pub fn step(
        &mut self,
        buf: &[u8],
        whole: impl Fn(u8, usize) -> bool,
    ) -> Result<Frame, FrameError> {
        if self.skip > 0 {
            if buf.is_empty() {
                return Ok(Frame::Incomplete { need: 1 });
            }
            let consumed = self.skip.min(buf.len());
            self.skip -= consumed;
            return Ok(Frame::Body { consumed });
        }
        if buf.len() < HEADER_LEN {
            return Ok(Frame::Incomplete { need: HEADER_LEN });
        }
        let tag = buf[0];
        let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if declared < 4 || declared > i32::MAX as u32 {
            return Err(FrameError::BadLength { tag, len: declared });
        }
        let len = declared as usize + 1;
        if let Some(max) = self.max_len {
            if len > max {
                return Err(FrameError::TooLong { tag, len, max });
            }
        }
        if whole(tag, len) {
            return Ok(if buf.len() >= len {
                Frame::Whole { tag, len }
            } else {
                Frame::Incomplete { need: len }
            });
        }
        let available = (buf.len() - HEADER_LEN).min(len - HEADER_LEN);
        self.skip = len - HEADER_LEN - available;
        Ok(Frame::Head {
            tag,
            consumed: HEADER_LEN + available,
        })
    }
}

/// Append a message with `tag` and `body` to `out`.
pub fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.reserve(HEADER_LEN + body.len());
    out.put_u8(tag);
    out.put_u32((body.len() + 4) as u32);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_message(&mut b, tag, body);
        b.to_vec()
    }

    #[test]
    fn whole_message_waits_for_all_bytes() {
        let m = msg(b'Q', b"select 1\0");
        let mut f = Framer::new(None);
        let want = |t: u8, _| t == b'Q';
        assert_eq!(f.step(&m[..3], want), Ok(Frame::Incomplete { need: 5 }));
        assert_eq!(
            f.step(&m[..8], want),
            Ok(Frame::Incomplete { need: m.len() })
        );
        assert_eq!(
            f.step(&m, want),
            Ok(Frame::Whole {
                tag: b'Q',
                len: m.len()
            })
        );
    }

    #[test]
    fn streamed_message_passes_in_pieces() {
        let m = msg(b'D', &[7u8; 100]);
        let mut f = Framer::new(None);
        let none = |_: u8, _| false;
        assert_eq!(
            f.step(&m[..40], none),
            Ok(Frame::Head {
                tag: b'D',
                consumed: 40
            })
        );
        assert!(!f.at_boundary());
        assert_eq!(f.step(&m[40..60], none), Ok(Frame::Body { consumed: 20 }));
        assert_eq!(f.step(&m[60..], none), Ok(Frame::Body { consumed: 45 }));
        assert!(f.at_boundary());
    }

    #[test]
    fn back_to_back_messages() {
        let mut all = msg(b'C', b"SELECT 1\0");
        all.extend(msg(b'Z', b"I"));
        let mut f = Framer::new(None);
        let want = |t: u8, _| t == b'Z';
        let Frame::Head { consumed, .. } = f.step(&all, want).unwrap() else {
            panic!()
        };
        assert_eq!(
            f.step(&all[consumed..], want),
            Ok(Frame::Whole { tag: b'Z', len: 6 })
        );
    }

    #[test]
    fn rejects_bad_and_oversized_lengths() {
        let mut f = Framer::new(Some(1000));
        let bad = [b'Q', 0, 0, 0, 3];
        assert_eq!(
            f.step(&bad, |_, _| true),
            Err(FrameError::BadLength { tag: b'Q', len: 3 })
        );
        let negative = [b'Q', 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            f.step(&negative, |_, _| true),
            Err(FrameError::BadLength { .. })
        ));
        let big = [b'd', 0, 1, 0, 0];
        assert!(matches!(
            f.step(&big, |_, _| false),
            Err(FrameError::TooLong { len: 65537, .. })
        ));
    }

    #[test]
    fn empty_body_message() {
        let m = msg(b'S', b"");
        let mut f = Framer::new(None);
        assert_eq!(
            f.step(&m, |_, _| false),
            Ok(Frame::Head {
                tag: b'S',
                consumed: 5
            })
        );
        assert!(f.at_boundary());
    }
}
