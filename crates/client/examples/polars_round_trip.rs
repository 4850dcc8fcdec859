//! A Polars round trip: a `DataFrame` in (categorical → SYMBOL, datetime
//! → designated timestamp), a `LazyFrame` in, and a query's result back
//! as a `DataFrame`.
//!
//! Start a server (`cargo run --release -p quiver-server -- serve`), then:
//!
//! ```sh
//! cargo run -p quiver-client --features polars --example polars_round_trip
//! QUIVER_ADDR=db1:9000 cargo run -p quiver-client --features polars --example polars_round_trip
//! ```

use quiver_client::polars::prelude::*;
use quiver_client::{Ack, ArrowOptions, Client};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("QUIVER_ADDR").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let client = Client::from_conf(&format!("ws::addr={addr};"))?;

    let start = 1_767_225_600_000_000_000i64; // 2026-01-01T00:00:00Z in ns
    let rows = 10_000;
    let ts: Vec<i64> = (0..rows).map(|r| start + r * 1_000_000_000).collect();
    let sym: Vec<&str> = (0..rows)
        .map(|r| ["ETH-USD", "BTC-USD", "SOL-USD"][(r % 3) as usize])
        .collect();
    let px: Vec<f64> = (0..rows).map(|r| 100.0 + (r % 97) as f64 / 4.0).collect();
    let frame = DataFrame::new(
        rows as usize,
        vec![
            Series::new("ts".into(), &ts)
                .cast(&DataType::Datetime(TimeUnit::Nanoseconds, None))?
                .into_column(),
            Series::new("sym".into(), &sym)
                .cast(&DataType::from_categories(Categories::global()))?
                .into_column(),
            Series::new("px".into(), &px).into_column(),
        ],
    )?;
    let sent = client.send_dataframe(
        &frame,
        &ArrowOptions::at_column("polars_trades", "ts"),
        Ack::Ok,
    )?;
    println!("sent {sent} rows from a DataFrame");

    // A LazyFrame is collected, then sent the same way.
    let expensive =
        frame
            .lazy()
            .filter(col("px").gt(lit(120.0)))
            .select([col("ts"), col("sym"), col("px")]);
    let sent = client.send_lazyframe(
        expensive,
        &ArrowOptions::at_column("polars_expensive", "ts"),
        Ack::Ok,
    )?;
    println!("sent {sent} rows from a LazyFrame");

    let back = client
        .query("SELECT sym, count() n, avg(px) FROM polars_trades ORDER BY sym")
        .fetch_dataframe()?;
    println!("{back}");
    Ok(())
}
