//! Unix streams that wake the proxy only when there is something to read.
//!
//! tokio registers a socket for readability and writability at once, edge-triggered.
//! On a unix socket, every time the peer reads what the proxy wrote, the kernel
//! signals "writable" again, and epoll wakes the proxy for it, with nothing to do:
//! on every forwarded call, once when kubelet reads the answer and once when the
//! runtime reads the request. A byte relay such as socat waits for writability only
//! when a write could not complete. [`LeanStream`] does the same: it waits for
//! readability, writes straight away, and only when the socket is full registers
//! for writability (on a duplicate descriptor), until a write goes through.

use std::{
    io::{self, Read as _, Write as _},
    net::Shutdown,
    os::unix::net::UnixStream,
    path::Path,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, unix::AsyncFd};

/// The largest read at once (a read also zeroes the part of the buffer it may fill).
const MAX_READ: usize = 64 << 10;

/// A unix stream that waits for writability only while a write is blocked.
#[derive(Debug)]
pub struct LeanStream {
    read: AsyncFd<UnixStream>,
    /// Registered for writability while a write is blocked, dropped after.
    write: Option<AsyncFd<UnixStream>>,
}

impl LeanStream {
    /// Takes over a connected tokio stream.
    ///
    /// # Errors
    /// It cannot be registered with the reactor.
    pub fn new(stream: tokio::net::UnixStream) -> io::Result<Self> {
        // `into_std` leaves the socket non-blocking
        let stream = stream.into_std()?;
        Ok(Self { read: register(stream, Interest::READABLE)?, write: None })
    }

    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// As [`tokio::net::UnixStream::connect`].
    pub async fn connect(path: &Path) -> io::Result<Self> {
        Self::new(tokio::net::UnixStream::connect(path).await?)
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self.read.get_ref()) {
                Ok(n) => {
                    self.write = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.write.is_none() {
                        let dup = self.read.get_ref().try_clone()?;
                        // registering reports the socket at once if it is writable by now
                        self.write = Some(register(dup, Interest::WRITABLE)?);
                    }
                    let fd = self.write.as_ref().expect("registered above");
                    let mut guard = ready!(fd.poll_write_ready(cx))?;
                    guard.clear_ready();
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Registers `stream` for `interest`. tokio deprecates the safe constructor because
/// a `T: AsRawFd` may close its descriptor while registered; a `UnixStream` owns its
/// descriptor and closes it only when dropped, which the `AsyncFd` that holds it
/// orders after deregistering.
#[allow(deprecated)]
fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    AsyncFd::with_interest(stream, interest)
}

impl AsyncRead for LeanStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.read.poll_read_ready(cx))?;
            let want = buf.remaining().min(MAX_READ);
            let unfilled = buf.initialize_unfilled_to(want);
            match guard.try_io(|s| {
                let mut s: &UnixStream = s.get_ref();
                s.read(unfilled)
            }) {
                Ok(Ok(n)) => {
                    if n > 0 && n < want {
                        // a short read drained the socket: wait for the next edge rather
                        // than read again only to hear EAGAIN (as tokio's own streams do)
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for LeanStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.read.get_ref().shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn bytes_cross_both_ways_and_a_full_socket_waits_for_the_reader() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (LeanStream::new(a).unwrap(), LeanStream::new(b).unwrap());
        // far more than the socket buffers hold: the writer must wait for the reader
        let big: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.shutdown().await.unwrap();
            let mut back = Vec::new();
            a.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert!(got == big, "{} bytes arrived of {}", got.len(), big.len());
        b.write_all(b"done").await.unwrap();
        b.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"done");
    }
}
