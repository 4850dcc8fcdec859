//! The writing half of an egress connection, on its own task: the session
//! encodes the next frame while the previous one is being written to the
//! socket, on another thread. At most [`FRAMES_QUEUED`] frames wait between
//! the two, so a session holds at most four frames (encoding, two queued,
//! being written: 64 MiB at the 16 MiB frame limit, a few MiB for typical
//! results); a frame the socket does not take within
//! [`SEND_TIMEOUT`] ends the connection, and at the end the writer gets
//! [`FINISH_TIMEOUT`] to flush before it is aborted.

use std::time::Duration;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::Ws;

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
    tx: Option<mpsc::Sender<Message>>,
    writer: Option<JoinHandle<()>>,
}

impl Outbox {
    /// Starts the writer task over `sink`.
    pub fn start(mut sink: SplitSink<Ws, Message>) -> Outbox {
        let (tx, mut rx) = mpsc::channel::<Message>(FRAMES_QUEUED);
        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
                    Ok(Ok(())) => {}
                    // The client is gone, stopped reading or closed the
                    // connection: answer a close if it can still go out;
                    // the session's next send fails and it ends.
                    _ => break,
                }
            }
            let _ = tokio::time::timeout(FINISH_TIMEOUT, sink.close()).await;
        });
        Outbox {
            tx: Some(tx),
            writer: Some(writer),
        }
    }

    /// Queues `message` (waits while [`FRAMES_QUEUED`] frames wait); `Err`
    /// when the connection can no longer be written.
    pub async fn send(&mut self, message: Message) -> Result<(), ()> {
        match &self.tx {
            Some(tx) => tx.send(message).await.map_err(|_| ()),
            None => Err(()),
        }
    }

    /// Queues `message` unless the queue stays full for
    /// [`FINISH_TIMEOUT`] (a close frame at shutdown: never held up by a
    /// client that stopped reading).
    pub async fn send_soon(&mut self, message: Message) {
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
