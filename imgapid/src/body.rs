//! Response bodies: small in-memory ones (JSON, HTML) and file streams.
//!
//! A file is read in large chunks on tokio's blocking pool, **one chunk at a
//! time and only when the connection asks for more**: the reader travels
//! into a short blocking task and comes back with the chunk. A client that
//! stops reading therefore parks nothing but this body's state — no blocking
//! thread waits on a full channel — so hundreds of stalled downloaders cannot
//! exhaust the blocking pool that every other request's storage work needs.
//! The next chunk is read ahead while the current one is being written, which
//! keeps a fast client's throughput. A client that goes away drops the body,
//! and with it the reader.

use crate::metrics::Metrics;
use crate::store::BlobReader;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

/// Bytes read from disk per chunk.
const CHUNK: usize = 256 * 1024;

/// What one blocking read hands back: the reader (for the next read) and the
/// chunk it read.
type ReadDone = (Box<dyn BlobReader>, io::Result<Bytes>);

/// The state of a file body between polls.
pub enum FileState {
    /// A chunk is being read on the blocking pool.
    Reading(JoinHandle<ReadDone>),
    /// The reader is idle: nothing read yet (a download from the start).
    Idle(Box<dyn BlobReader>),
    /// Finished or failed; nothing more to send.
    Done,
}

/// A response body.
pub enum Body {
    /// A body held in memory (`None` once sent, or when empty).
    Full(Option<Bytes>),
    /// `remaining` bytes streamed from a stored blob.
    File {
        /// The reader's state.
        state: FileState,
        /// Bytes still to send.
        remaining: u64,
        /// Where sent bytes are counted.
        metrics: Arc<Metrics>,
    },
}

/// Reads the next chunk of at most `want` bytes on the blocking pool, after
/// seeking to `seek` when given (a Range request's start).
fn read_chunk(
    mut reader: Box<dyn BlobReader>,
    seek: Option<u64>,
    want: u64,
) -> JoinHandle<ReadDone> {
    tokio::task::spawn_blocking(move || {
        if let Some(at) = seek {
            if let Err(e) = reader.seek(SeekFrom::Start(at)) {
                return (reader, Err(e));
            }
        }
        let n = usize::try_from(want).map_or(CHUNK, |w| w.min(CHUNK));
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
        (reader, item)
    })
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body::Full(None)
    }

    /// A body of the given bytes.
    pub fn from_bytes(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        if b.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(b))
        }
    }

    /// Streams `len` bytes of `reader` from `start`. The seek happens on the
    /// blocking pool together with the first read.
    pub fn file(reader: Box<dyn BlobReader>, start: u64, len: u64, metrics: Arc<Metrics>) -> Body {
        let state = if len == 0 {
            FileState::Done
        } else if start == 0 {
            FileState::Idle(reader)
        } else {
            FileState::Reading(read_chunk(reader, Some(start), len))
        };
        Body::File {
            state,
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
                state,
                remaining,
                metrics,
            } => loop {
                if *remaining == 0 {
                    *state = FileState::Done;
                    return Poll::Ready(None);
                }
                match std::mem::replace(state, FileState::Done) {
                    FileState::Done => {
                        // The reader failed before: the error was sent.
                        return Poll::Ready(None);
                    }
                    FileState::Idle(reader) => {
                        *state = FileState::Reading(read_chunk(reader, None, *remaining));
                    }
                    FileState::Reading(mut job) => match Pin::new(&mut job).poll(cx) {
                        Poll::Pending => {
                            *state = FileState::Reading(job);
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(Some(Err(io::Error::other(format!(
                                "file reader failed: {e}"
                            )))));
                        }
                        Poll::Ready(Ok((_, Err(e)))) => return Poll::Ready(Some(Err(e))),
                        Poll::Ready(Ok((reader, Ok(b)))) => {
                            *remaining = remaining.saturating_sub(b.len() as u64);
                            metrics
                                .bytes_served
                                .fetch_add(b.len() as u64, Ordering::Relaxed);
                            if *remaining > 0 {
                                // Read ahead while this chunk is written.
                                *state = FileState::Reading(read_chunk(reader, None, *remaining));
                            }
                            return Poll::Ready(Some(Ok(Frame::data(b))));
                        }
                    },
                }
            },
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
