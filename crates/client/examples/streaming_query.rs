//! Streams a query's result as Arrow record batches, batch by batch, with
//! bound parameters and credit flow control.
//!
//! Start a server (`cargo run --release -p quiver-server -- serve`), load
//! some rows (`cargo run -p quiver-client --example arrow_ingest`), then:
//!
//! ```sh
//! cargo run -p quiver-client --example streaming_query            # 127.0.0.1:9000
//! QUIVER_ADDR=db1:9000 cargo run -p quiver-client --example streaming_query
//! ```
//!
//! Only one batch is held at a time: the server sends at most about the
//! credit window (here 4 MiB) ahead of what has been read.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt32Type};
use quiver_client::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("QUIVER_ADDR").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let client = Client::from_conf(&format!("ws::addr={addr};compression=auto;"))?;

    let mut rows = client
        .query("SELECT sym, px, timestamp FROM trades WHERE px > $1")
        .bind(100.0)
        .credit(4 << 20)
        .fetch()?;
    println!("schema: {:?}", rows.schema());
    let (mut count, mut batches, mut sum) = (0usize, 0usize, 0.0);
    while let Some(batch) = rows.next_batch()? {
        batches += 1;
        count += batch.num_rows();
        // SYMBOL arrives as a dictionary of the batch's values.
        let sym = batch.column(0).as_dictionary::<UInt32Type>();
        let px = batch.column(1).as_primitive::<Float64Type>();
        sum += px.iter().flatten().sum::<f64>();
        if batches == 1 {
            println!("first batch's symbols: {:?}", sym.values());
        }
    }
    println!(
        "{count} rows in {batches} batches, mean px {:.4}",
        sum / count.max(1) as f64
    );
    Ok(())
}
