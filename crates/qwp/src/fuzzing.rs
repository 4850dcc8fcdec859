//! Properties the cargo-fuzz targets check (compiled only with
//! `--cfg fuzzing`): whatever bytes arrive, decoding returns a value or an
//! error without panicking, and a decoded message re-encodes to a canonical
//! frame that decodes to the same rows and re-encodes to the same bytes.

use crate::column::ColumnData;
use crate::egress::request::{decode_client_message, encode_client_message};
use crate::egress::response::{BatchEncoding, EgressDecoder, ServerMessage, encode_server_message};
use crate::ingress::{
    IngressMessage, decode_ingress_message, decode_ingress_response, encode_ingress_message,
};
use crate::limits::Limits;
use crate::symbols::SymbolDictionary;

fn same_rows(a: &ColumnData<'_>, b: &ColumnData<'_>) -> bool {
    let (ra, rb) = (a.rows(), b.rows());
    a.type_code() == b.type_code()
        && ra.len() == rb.len()
        && ra.iter().zip(&rb).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => x.bit_eq(y),
            (None, None) => true,
            _ => false,
        })
}

fn same_message(a: &IngressMessage<'_>, b: &IngressMessage<'_>) -> bool {
    a.defer_commit == b.defer_commit
        && a.symbols
            .as_ref()
            .map(|d| (d.start, d.entries.iter().collect::<Vec<_>>()))
            == b.symbols
                .as_ref()
                .map(|d| (d.start, d.entries.iter().collect::<Vec<_>>()))
        && a.tables.len() == b.tables.len()
        && a.tables.iter().zip(&b.tables).all(|(x, y)| {
            x.name == y.name
                && x.row_count == y.row_count
                && x.columns.len() == y.columns.len()
                && x.columns
                    .iter()
                    .zip(&y.columns)
                    .all(|(c, d)| c.name == d.name && same_rows(&c.data, &d.data))
        })
}

/// Ingress message and ingress response decoders.
pub fn ingress(data: &[u8]) {
    let limits = Limits::default();
    let dict = SymbolDictionary::new();
    let _ = decode_ingress_response(data);
    let Ok(message) = decode_ingress_message(data, &limits, &dict) else {
        return;
    };
    let mut canonical = Vec::new();
    encode_ingress_message(&message, &mut canonical).expect("a decoded message re-encodes");
    let again =
        decode_ingress_message(&canonical, &limits, &dict).expect("the canonical frame decodes");
    assert!(
        same_message(&message, &again),
        "decode(encode(m)) has the rows of m"
    );
    let mut twice = Vec::new();
    encode_ingress_message(&again, &mut twice).expect("re-encodes");
    assert_eq!(canonical, twice, "the canonical encoding is stable");
}

/// Egress decoders: client requests, then the frame as a server message.
pub fn egress(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(m) = decode_client_message(data, &limits) {
        let mut out = Vec::new();
        encode_client_message(&m, &mut out).expect("a decoded request re-encodes");
        let again = decode_client_message(&out, &limits).expect("the canonical request decodes");
        let mut twice = Vec::new();
        encode_client_message(&again, &mut twice).expect("re-encodes");
        assert_eq!(out, twice);
    }
    let mut scratch = Vec::new();
    let mut decoder = EgressDecoder::new(limits.clone());
    let Ok(m) = decoder.decode(data, &mut scratch) else {
        return;
    };
    let gorilla = data
        .get(5)
        .is_some_and(|f| f & crate::header::Flags::GORILLA != 0);
    let encoding = BatchEncoding {
        gorilla,
        zstd_level: None,
    };
    let mut canonical = Vec::new();
    encode_server_message(&m, &encoding, &mut canonical).expect("a decoded message re-encodes");
    let mut scratch2 = Vec::new();
    let again = EgressDecoder::new(limits)
        .decode(&canonical, &mut scratch2)
        .expect("the canonical frame decodes");
    if let (ServerMessage::ResultBatch(a), ServerMessage::ResultBatch(b)) = (&m, &again) {
        assert!(
            a.columns
                .iter()
                .zip(&b.columns)
                .all(|(x, y)| same_rows(x, y))
        );
    }
    let mut twice = Vec::new();
    encode_server_message(&again, &encoding, &mut twice).expect("re-encodes");
    assert_eq!(canonical, twice, "the canonical encoding is stable");
}
