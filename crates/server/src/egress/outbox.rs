//! The writing half of an egress connection, on its own task: the session
//! encodes the next frame while the previous one is being written to the
//! socket, on another thread. At most [`FRAMES_QUEUED`] frames wait between
//! the two, so a session holds at most four frames (encoding, two queued,
//! being written: 64 MiB at the 16 MiB frame limit, a few MiB for typical
//! results); a frame the socket does not take within
//! [`SEND_TIMEOUT`] ends the connection, and at the end the writer gets
//! [`FINISH_TIMEOUT`] to flush before it is aborted.

use std::time::Duration;

use hyper::body::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::websocket::{FrameWriter, Opcode};

/// A frame for the writer.
#[derive(Debug)]
pub enum OutFrame {
    /// A binary message (a QWP frame).
    Binary(Bytes),
    /// The answer to a client's ping.
    Pong(Bytes),
    /// A close frame: status code and reason; the last frame.
    Close(u16, String),
}

/// Frames that may wait for the socket (besides the one being written and
/// the one the session is encoding). One is measurably slower (the
/// encoder waits on the writer more often): `bench/egress` 0.40 s against
/// 0.28-0.33 s for 10M rows.
pub const FRAMES_QUEUED: usize = 2;
/// How long sending one frame may take before the client is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the last frames (a close) may take once the session ends.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// See the module docs.
pub struct Outbox {
    tx: Option<mpsc::Sender<OutFrame>>,
    writer: Option<JoinHandle<()>>,
}

impl Outbox {
    /// Starts the writer task over `io`.
    pub fn start<W: AsyncWrite + Unpin + Send + 'static>(io: W) -> Outbox {
        let (tx, mut rx) = mpsc::channel::<OutFrame>(FRAMES_QUEUED);
        let writer = tokio::spawn(async move {
            let mut w = FrameWriter::new(io);
            while let Some(frame) = rx.recv().await {
                let last = matches!(frame, OutFrame::Close(..));
                let written = async {
                    match &frame {
                        OutFrame::Binary(b) => w.write(Opcode::Binary, b).await,
                        OutFrame::Pong(b) => w.write(Opcode::Pong, b).await,
                        OutFrame::Close(code, reason) => w.close(*code, reason).await,
                    }
                };
                match tokio::time::timeout(SEND_TIMEOUT, written).await {
                    Ok(Ok(())) if !last => {}
                    // Closed, or the client is gone, stopped reading or
                    // closed the connection: the session's next send fails
                    // and it ends.
                    _ => break,
                }
            }
            let _ = tokio::time::timeout(FINISH_TIMEOUT, w.shutdown()).await;
        });
        Outbox {
            tx: Some(tx),
            writer: Some(writer),
        }
    }

    /// Queues `message` (waits while [`FRAMES_QUEUED`] frames wait); `Err`
    /// when the connection can no longer be written.
    pub async fn send(&mut self, message: OutFrame) -> Result<(), ()> {
        match &self.tx {
            Some(tx) => tx.send(message).await.map_err(|_| ()),
            None => Err(()),
        }
    }

    /// Queues `message` unless the queue stays full for
    /// [`FINISH_TIMEOUT`] (a close frame at shutdown: never held up by a
    /// client that stopped reading).
    pub async fn send_soon(&mut self, message: OutFrame) {
        if let Some(tx) = &self.tx {
            let _ = tokio::time::timeout(FINISH_TIMEOUT, tx.send(message)).await;
        }
    }

    /// Lets the queued frames go out (a close last) for up to
    /// [`FINISH_TIMEOUT`], then ends the writer.
    pub async fn finish(&mut self) {
        self.tx = None;
        if let Some(mut writer) = self.writer.take()
            && tokio::time::timeout(FINISH_TIMEOUT, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
    }
}
