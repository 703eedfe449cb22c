//! Fewer, larger socket writes for gRPC connections (the client port's and skiff-bench's).
//!
//! hyper's HTTP/2 server flushes its connection after every poll. Under load the replies
//! of one Raft batch finish together, but each request's task wakes the connection task,
//! which (tokio runs a woken task right after its waker) then writes that one reply with
//! its own `writev`: a profile at 1,000 clients showed 16% of the leader's CPU in `writev`
//! alone, and the client pays a read per reply on its side too. The client side of
//! hyper's HTTP/2 does the same with requests (a quarter of `skiff-bench`'s CPU was
//! `writev` with 10 requests in flight per connection).
//!
//! [`BatchedWrites`] wraps the socket: writes go to a buffer, and the first flush of a
//! buffer yields once to the scheduler (wakes itself and returns `Pending`) before writing,
//! so every reply task that became ready at the same moment adds its frames first and they
//! leave in one write. It costs one extra task poll per flush, no timer: a lone request is
//! answered after one trip through the run queue. A buffer above [`FLUSH_BYTES`] is
//! written at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes at which a write goes to the socket without waiting for a flush.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// A socket whose writes are gathered until a flush, which yields once before writing.
pub struct BatchedWrites<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner`.
    written: usize,
    /// The current buffer's flush already yielded once.
    yielded: bool,
}

impl<T> BatchedWrites<T> {
    pub fn new(inner: T) -> Self {
        BatchedWrites {
            inner,
            buf: Vec::with_capacity(8 * 1024),
            written: 0,
            yielded: false,
        }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrites<T> {
    /// Writes the whole buffer to the socket (`Pending` if the socket is full).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = match Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]) {
                Poll::Ready(r) => r?,
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        self.yielded = false;
        Poll::Ready(Ok(()))
    }

    /// Makes room before taking more bytes: a buffer past [`FLUSH_BYTES`] is written first.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.len() >= FLUSH_BYTES {
            return self.poll_drain(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_room(cx))?;
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_room(cx))?;
        let mut n = 0;
        for b in bufs {
            self.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.written < self.buf.len() {
            if !self.yielded {
                // Let the other tasks woken with this one add their replies first.
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            std::task::ready!(self.poll_drain(cx))?;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_flush_and_leave_in_one_piece() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = BatchedWrites::new(a);
        w.write_all(b"one ").await.unwrap();
        w.write_all(b"two").await.unwrap();
        // Nothing reached the peer before the flush.
        let mut probe = [0u8; 16];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), b.read(&mut probe)).await;
        assert!(early.is_err(), "bytes left before the flush");
        w.flush().await.unwrap();
        let n = b.read(&mut probe).await.unwrap();
        assert_eq!(&probe[..n], b"one two");
    }

    #[tokio::test]
    async fn a_large_buffer_is_written_without_a_flush() {
        let (a, mut b) = tokio::io::duplex(4 << 20);
        let mut w = BatchedWrites::new(a);
        let chunk = vec![7u8; FLUSH_BYTES];
        w.write_all(&chunk).await.unwrap();
        w.write_all(b"x").await.unwrap(); // makes room by writing the first chunk
        let mut got = vec![0u8; FLUSH_BYTES];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, chunk);
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"x");
    }

    #[tokio::test]
    async fn vectored_writes_keep_their_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = BatchedWrites::new(a);
        let parts = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
        let n = w.write_vectored(&parts).await.unwrap();
        assert_eq!(n, 4);
        w.write_all(b"ef").await.unwrap();
        w.flush().await.unwrap();
        let mut got = [0u8; 6];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");
    }
}
