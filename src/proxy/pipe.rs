//! One direction of the relay: a buffer that bytes are read into, framed in
//! place, and written out from unchanged. Memory stays bounded: reading stops
//! while a buffer's worth is waiting to be written, except to complete a
//! message the proxy must see whole (at most `max_message_bytes`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::codec::{Frame, FrameError, Framer, HEADER_LEN};

/// What a hook may do with a whole message: forward it, or replace it.
pub type Replacement = Option<BytesMut>;

pub struct Pipe {
    buf: BytesMut,
    /// `buf[..written]` has been written to the destination.
    written: usize,
    /// `buf[..framed]` has been framed and may be written.
    framed: usize,
    /// Bytes needed from `framed` before framing can go on.
    need: usize,
    framer: Framer,
    chunk: usize,
    read_eof: bool,
    /// The message after which the source has nothing more to say.
    end_tag: Option<u8>,
    /// That message has been framed: later input is read and dropped.
    ended: bool,
    unflushed: bool,
    shut_down: bool,
    /// Total bytes read from the source.
    pub bytes: u64,
}

impl Pipe {
    pub fn new(chunk: usize, max_message: Option<usize>) -> Pipe {
        Pipe {
            buf: BytesMut::with_capacity(chunk),
            written: 0,
            framed: 0,
            need: 0,
            framer: Framer::new(max_message),
            chunk,
            read_eof: false,
            end_tag: None,
            ended: false,
            unflushed: false,
            shut_down: false,
            bytes: 0,
        }
    }

    /// End the stream at the first `tag` message (the client's Terminate):
    /// it is framed whole and forwarded, and whatever follows is read and
    /// dropped, as the server never reads past it either.
    pub fn end_at(mut self, tag: u8) -> Pipe {
        self.end_tag = Some(tag);
        self
    }

    /// Start with bytes already in hand (sent before the relay began).
    pub fn preload(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.framed = self.buf.len();
    }

    /// The source reached end of file.
    pub fn read_eof(&self) -> bool {
        self.read_eof
    }

    /// Both the source is at EOF and everything was written and shut down.
    pub fn finished(&self) -> bool {
        self.shut_down
    }

    /// The destination has seen only whole messages: the proxy may insert one.
    pub fn at_boundary(&self) -> bool {
        self.framer.at_boundary() && self.written == self.framed
    }

    /// Framed bytes not yet written.
    pub fn has_unwritten(&self) -> bool {
        self.written < self.framed
    }

    /// Read more from `src` when the buffer has room (or a whole message
    /// needs completing). `Ready(Ok(true))` means something happened.
    pub fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut R,
    ) -> Poll<io::Result<bool>> {
        // Only a message that must be seen whole may grow the buffer past a
        // chunk; streamed messages wait for the destination to catch up.
        let missing = if self.framer.at_boundary() {
            (self.framed + self.need).saturating_sub(self.buf.len())
        } else {
            0
        };
        let unwritten = self.buf.len() - self.written;
        if self.read_eof || (missing == 0 && unwritten >= self.chunk) {
            return Poll::Ready(Ok(false));
        }
        let max_read = self.chunk.max(missing);
        if self.buf.capacity() - self.buf.len() < max_read {
            self.buf.reserve(max_read);
        }
        let mut limited = (&mut self.buf).limit(max_read);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(src),
            cx,
            &mut limited
        ))?;
        if n == 0 {
            self.read_eof = true;
        }
        self.bytes += n as u64;
        Poll::Ready(Ok(true))
    }

    /// Frame what was read. `whole` says which messages `hook` must see
    /// complete; `hook(tag, Some(body))` sees those, `hook(tag, None)` the
    /// start of every other message.
    pub fn frame(
        &mut self,
        whole: impl Fn(u8, usize) -> bool,
        mut hook: impl FnMut(u8, Option<&[u8]>) -> Replacement,
    ) -> Result<(), FrameError> {
        let end = self.end_tag;
        let whole = |tag, len| Some(tag) == end || whole(tag, len);
        loop {
            if self.ended {
                self.discard_unframed();
                return Ok(());
            }
            match self.framer.step(&self.buf[self.framed..], whole)? {
                Frame::Whole { tag, len } => {
                    let start = self.framed;
                    match hook(tag, Some(&self.buf[start + HEADER_LEN..start + len])) {
                        Some(new) => self.framed += self.splice(start, len, &new),
                        None => self.framed += len,
                    }
                    self.ended = Some(tag) == end;
                }
                Frame::Head { tag, consumed } => {
                    hook(tag, None);
                    self.framed += consumed;
                }
                Frame::Body { consumed } => self.framed += consumed,
                Frame::Incomplete { need } => {
                    self.need = need;
                    return Ok(());
                }
            }
        }
    }

    /// Replace `buf[start..start+len]` with `new` (rare: auth rewrites).
    fn splice(&mut self, start: usize, len: usize, new: &[u8]) -> usize {
        let tail = self.buf.split_off(start + len);
        self.buf.truncate(start);
        self.buf.extend_from_slice(new);
        self.buf.extend_from_slice(&tail);
        new.len()
    }

    /// Write framed bytes to `dst`; once the source is at EOF and all is
    /// written, shut the destination's write side (half-close).
    pub fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut W,
    ) -> Poll<io::Result<bool>> {
        let mut progress = ready!(self.poll_write_out(cx, dst))?;
        if self.read_eof && !self.shut_down {
            // Bytes of an unfinished message are dropped with the connection.
            ready!(Pin::new(&mut *dst).poll_shutdown(cx))?;
            self.shut_down = true;
            progress = true;
        }
        Poll::Ready(Ok(progress))
    }

    /// Write framed bytes to `dst` and flush; never shuts it down.
    pub fn poll_write_out<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut W,
    ) -> Poll<io::Result<bool>> {
        let mut progress = false;
        while self.written < self.framed {
            let n =
                ready!(Pin::new(&mut *dst).poll_write(cx, &self.buf[self.written..self.framed]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            self.unflushed = true;
            progress = true;
        }
        if progress {
            self.compact();
        }
        if self.unflushed {
            // A no-op for TCP; TLS streams buffer records until flushed.
            ready!(Pin::new(&mut *dst).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(progress))
    }

    /// Drop written bytes so the buffer does not grow; give back memory a
    /// large message made us take.
    fn compact(&mut self) {
        if self.written == self.buf.len() {
            if self.buf.capacity() > 4 * self.chunk {
                self.buf = BytesMut::with_capacity(self.chunk);
            } else {
                self.buf.clear();
            }
        } else {
            self.buf.advance(self.written);
        }
        self.framed -= self.written;
        self.written = 0;
    }

    /// Discard bytes of a message that was never forwarded (before the proxy
    /// inserts a message of its own).
    pub fn discard_unframed(&mut self) {
        self.buf.truncate(self.framed);
        self.need = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::codec::put_message;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn relays_bytes_unchanged_and_sees_whole_messages() {
        let (mut src_w, mut src) = tokio::io::duplex(64);
        let (mut dst, mut dst_r) = tokio::io::duplex(1 << 20);
        let mut input = BytesMut::new();
        for i in 0..200u32 {
            put_message(&mut input, b'D', &vec![i as u8; (i * 7) as usize]);
            put_message(&mut input, b'Z', b"I");
        }
        let expected = input.clone();
        tokio::spawn(async move {
            src_w.write_all(&input).await.unwrap();
        });
        let mut pipe = Pipe::new(32, None);
        let mut zs = 0;
        while !pipe.finished() {
            poll_fn(|cx| {
                let filled = pipe.poll_fill(cx, &mut src)?;
                if let Poll::Ready(true) = filled {
                    pipe.frame(
                        |t, _| t == b'Z',
                        |t, body| {
                            if let Some(b) = body {
                                assert_eq!((t, b), (b'Z', &b"I"[..]));
                                zs += 1;
                            }
                            None
                        },
                    )
                    .unwrap();
                }
                let drained = pipe.poll_drain(cx, &mut dst)?;
                match (filled, drained) {
                    (Poll::Pending, Poll::Ready(false)) => Poll::Pending,
                    _ => Poll::Ready(Ok::<_, io::Error>(())),
                }
            })
            .await
            .unwrap();
        }
        drop(dst);
        let mut out = Vec::new();
        dst_r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, expected.to_vec());
        assert_eq!(zs, 200);
    }

    #[tokio::test]
    async fn input_after_the_end_message_is_read_and_dropped() {
        let mut input = BytesMut::new();
        put_message(&mut input, b'Q', b"select 1\0");
        put_message(&mut input, b'X', b"");
        let forwarded = input.clone();
        put_message(&mut input, b'Q', b"select 2\0");
        let (mut src_w, mut src) = tokio::io::duplex(1024);
        src_w.write_all(&input).await.unwrap();
        src_w.write_all(b"more").await.unwrap();
        drop(src_w);
        let (mut dst, mut dst_r) = tokio::io::duplex(1024);
        let mut pipe = Pipe::new(64, Some(1024)).end_at(b'X');
        let mut seen = Vec::new();
        while !pipe.finished() {
            poll_fn(|cx| {
                if let Poll::Ready(r) = pipe.poll_fill(cx, &mut src) {
                    r?;
                    let hook = |tag, body: Option<&[u8]>| {
                        seen.push((tag, body.is_some()));
                        None
                    };
                    pipe.frame(|_, _| false, hook).unwrap();
                }
                pipe.poll_drain(cx, &mut dst).map_ok(|_| ())
            })
            .await
            .unwrap();
        }
        drop(dst);
        let mut out = Vec::new();
        dst_r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, forwarded.to_vec());
        assert_eq!(seen, [(b'Q', false), (b'X', true)]);
    }

    #[test]
    fn splice_replaces_a_message() {
        let mut pipe = Pipe::new(64, None);
        let mut input = BytesMut::new();
        put_message(&mut input, b'R', b"long-body");
        put_message(&mut input, b'Z', b"I");
        pipe.buf.extend_from_slice(&input);
        pipe.frame(
            |t, _| t == b'R',
            |t, _| {
                let mut m = BytesMut::new();
                put_message(&mut m, t, b"x");
                (t == b'R').then_some(m)
            },
        )
        .unwrap();
        assert_eq!(&pipe.buf[..6], &[b'R', 0, 0, 0, 5, b'x']);
        assert_eq!(pipe.framed, pipe.buf.len());
    }
}
