//! Decodes a hex-encoded QWP frame and prints it: `qwp_dump ingress|response|request|server FILE`.

use quiver_qwp::{
    EgressDecoder, IngressDecoder, Limits, decode_client_message, decode_ingress_response,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: qwp_dump ingress|response|request|server FILE.hex");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(path).expect("readable file");
    let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    match kind.as_str() {
        "ingress" => match IngressDecoder::new(Limits::default()).decode(&bytes) {
            Ok((m, _)) => {
                println!(
                    "defer_commit={} symbols={:?}",
                    m.defer_commit,
                    m.symbols
                        .as_ref()
                        .map(|d| (d.start, d.entries.iter().collect::<Vec<_>>()))
                );
                for t in &m.tables {
                    println!("table {} rows={}", t.name, t.row_count);
                    for c in &t.columns {
                        println!(
                            "  {:?} {} nulls={:?}: {:?}",
                            c.name,
                            c.data.type_code(),
                            c.data.nulls().map(|n| n.null_count()),
                            c.data.rows()
                        );
                    }
                }
            }
            Err(e) => println!("error: {e} (status {})", e.status()),
        },
        "response" => println!("{:?}", decode_ingress_response(&bytes)),
        "request" => println!("{:?}", decode_client_message(&bytes, &Limits::default())),
        "server" => {
            let mut scratch = Vec::new();
            println!(
                "{:?}",
                EgressDecoder::new(Limits::egress_client()).decode(&bytes, &mut scratch)
            );
        }
        _ => eprintln!("unknown kind {kind}"),
    }
}
