//! Response bodies: small in-memory ones (JSON, HTML) and file streams. A file
//! is read on tokio's blocking pool in large chunks and handed to the
//! connection through a short channel, so slow clients apply back-pressure to
//! the disk reads and a client that goes away stops the reader.

use crate::metrics::Metrics;
use crate::store::BlobReader;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Bytes read from disk per chunk.
const CHUNK: usize = 256 * 1024;

/// A response body.
pub enum Body {
    Full(Option<Bytes>),
    File {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        remaining: u64,
        metrics: Arc<Metrics>,
    },
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn from_bytes(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        if b.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(b))
        }
    }

    /// Streams `len` bytes of `reader` from `start`.
    pub fn file(
        mut reader: Box<dyn BlobReader>,
        start: u64,
        len: u64,
        metrics: Arc<Metrics>,
    ) -> Body {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = reader.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
                // read_to_end into spare capacity: no zero-filling per chunk.
                let mut buf = Vec::with_capacity(n);
                let item = match (&mut reader).take(n as u64).read_to_end(&mut buf) {
                    Ok(got) if got == n => Ok(Bytes::from(buf)),
                    Ok(_) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than recorded",
                    )),
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    // Receiver gone (client left) or read failed: stop.
                    return;
                }
                left -= n as u64;
            }
        });
        Body::File {
            rx,
            remaining: len,
            metrics,
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::File {
                rx,
                remaining,
                metrics,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(Ok(b))) => {
                        *remaining = remaining.saturating_sub(b.len() as u64);
                        metrics
                            .bytes_served
                            .fetch_add(b.len() as u64, Ordering::Relaxed);
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    // The reader ended early: abort so the client sees a
                    // short body instead of a silently truncated file.
                    Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended early",
                    )))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::File { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::File { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}
