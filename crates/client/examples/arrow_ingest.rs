//! Sends an Arrow `RecordBatch` to a QWP server and commits it.
//!
//! Start a server (`cargo run --release -p quiver-server -- serve`), then:
//!
//! ```sh
//! cargo run -p quiver-client --example arrow_ingest            # 127.0.0.1:9000
//! QUIVER_ADDR=db1:9000 cargo run -p quiver-client --example arrow_ingest
//! ```
//!
//! The batch's `ts` column becomes the designated timestamp (stored as
//! `timestamp`, the name QWP gives it); `sym` (an Arrow dictionary)
//! becomes a SYMBOL column; the others map as the official client maps
//! them (see `quiver_client::ArrowOptions`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::types::Int8Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, RecordBatch, TimestampNanosecondArray};
use quiver_client::{Ack, ArrowOptions, Client};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("QUIVER_ADDR").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let client = Client::from_conf(&format!("ws::addr={addr};"))?;

    let rows = 1_000usize;
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos())?;
    let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from_iter_values(
        (0..rows as i64).map(|i| now + i * 1_000),
    ));
    let sym: ArrayRef = Arc::new(
        (0..rows)
            .map(|i| Some(["BTC-USD", "ETH-USD", "SOL-USD"][i % 3]))
            .collect::<DictionaryArray<Int8Type>>(),
    );
    let px: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..rows).map(|i| 100.0 + i as f64 / 100.0),
    ));
    let batch = RecordBatch::try_from_iter([("ts", ts), ("sym", sym), ("px", px)])?;

    client.send_batch(&batch, &ArrowOptions::at_column("trades", "ts"), Ack::Ok)?;
    println!("sent and committed {rows} rows into trades at {addr}");
    Ok(())
}
