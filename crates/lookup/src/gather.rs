//! Gathering rows from several record batches into one: the kernel both
//! the lookup path and the builder's re-chunk/gather use.
//!
//! - Primitive and flat byte columns (`Utf8`, `LargeUtf8`, `Binary`,
//!   `LargeBinary`): a gather of our own that first issues a prefetch for
//!   every picked row (offsets, then the value bytes), then copies. A
//!   lookup's picks are scattered over a file much larger than the caches;
//!   without the prefetch pass each copy waits for its own cache miss
//!   (~1.3 us per row at K = 1000 with Arrow's `interleave`, measured).
//! - One source of another type: Arrow's `take`.
//! - Several sources of another type: one Arrow `interleave` per column
//!   over only the sources actually touched (interleave's cost grows with
//!   the number of sources it is given, so passing every batch of a file is
//!   what made it slow for K = 1 in the seed's measurements).
//! - Dictionary columns whose sources share one values array (every batch of
//!   a sidecar does: they are decoded against the file's one dictionary):
//!   only the keys are interleaved and the shared values are reused. Arrow's
//!   `interleave` would instead concatenate the dictionary once per source.
//! - [`compact_views`]: after a gather, view arrays (`Utf8View`,
//!   `BinaryView`, also inside struct/list/map children) still point at the
//!   sources' data buffers; the builder compacts them so a written batch
//!   carries only its own strings.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanBufferBuilder, DictionaryArray,
    FixedSizeListArray, GenericByteArray, GenericListArray, MapArray, OffsetSizeTrait,
    PrimitiveArray, StructArray, UInt64Array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::{interleave, take};
use arrow::datatypes::ArrowNativeType as _;
use arrow::datatypes::{
    ArrowDictionaryKeyType, BinaryType, ByteArrayType, DataType, Date32Type, Date64Type,
    Decimal128Type, Decimal256Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, LargeBinaryType, LargeUtf8Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type, Utf8Type,
};
use arrow::error::ArrowError;

/// Gathers `indices` (`(source, row)`) from `sources`, which all have the
/// type of `sources[0]`.
pub(crate) fn gather_column(
    sources: &[&ArrayRef],
    indices: &[(usize, usize)],
) -> Result<ArrayRef, ArrowError> {
    macro_rules! primitive {
        ($t:ty) => {
            return Ok(gather_primitive::<$t>(sources, indices))
        };
    }
    match sources[0].data_type() {
        DataType::Utf8 => return gather_bytes::<Utf8Type>(sources, indices),
        DataType::LargeUtf8 => return gather_bytes::<LargeUtf8Type>(sources, indices),
        DataType::Binary => return gather_bytes::<BinaryType>(sources, indices),
        DataType::LargeBinary => return gather_bytes::<LargeBinaryType>(sources, indices),
        DataType::Int8 => primitive!(Int8Type),
        DataType::Int16 => primitive!(Int16Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Int64 => primitive!(Int64Type),
        DataType::UInt8 => primitive!(UInt8Type),
        DataType::UInt16 => primitive!(UInt16Type),
        DataType::UInt32 => primitive!(UInt32Type),
        DataType::UInt64 => primitive!(UInt64Type),
        DataType::Float16 => primitive!(Float16Type),
        DataType::Float32 => primitive!(Float32Type),
        DataType::Float64 => primitive!(Float64Type),
        DataType::Date32 => primitive!(Date32Type),
        DataType::Date64 => primitive!(Date64Type),
        // `gather_primitive` keeps the source's data type (and so the time
        // zone) on the output.
        DataType::Timestamp(TimeUnit::Second, _) => primitive!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => primitive!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => primitive!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => primitive!(TimestampNanosecondType),
        DataType::Duration(TimeUnit::Second) => primitive!(DurationSecondType),
        DataType::Duration(TimeUnit::Millisecond) => primitive!(DurationMillisecondType),
        DataType::Duration(TimeUnit::Microsecond) => primitive!(DurationMicrosecondType),
        DataType::Duration(TimeUnit::Nanosecond) => primitive!(DurationNanosecondType),
        DataType::Time32(TimeUnit::Second) => primitive!(Time32SecondType),
        DataType::Time32(TimeUnit::Millisecond) => primitive!(Time32MillisecondType),
        DataType::Time64(TimeUnit::Microsecond) => primitive!(Time64MicrosecondType),
        DataType::Time64(TimeUnit::Nanosecond) => primitive!(Time64NanosecondType),
        DataType::Decimal128(_, _) => primitive!(Decimal128Type),
        DataType::Decimal256(_, _) => primitive!(Decimal256Type),
        _ => {}
    }
    if sources.len() == 1 {
        let rows = UInt64Array::from_iter_values(indices.iter().map(|&(_, r)| r as u64));
        return take(sources[0].as_ref(), &rows, None);
    }
    if let DataType::Dictionary(key, _) = sources[0].data_type() {
        let shared = match key.as_ref() {
            DataType::Int8 => shared_dictionary::<Int8Type>(sources, indices)?,
            DataType::Int16 => shared_dictionary::<Int16Type>(sources, indices)?,
            DataType::Int32 => shared_dictionary::<Int32Type>(sources, indices)?,
            DataType::Int64 => shared_dictionary::<Int64Type>(sources, indices)?,
            DataType::UInt8 => shared_dictionary::<UInt8Type>(sources, indices)?,
            DataType::UInt16 => shared_dictionary::<UInt16Type>(sources, indices)?,
            DataType::UInt32 => shared_dictionary::<UInt32Type>(sources, indices)?,
            DataType::UInt64 => shared_dictionary::<UInt64Type>(sources, indices)?,
            _ => None,
        };
        if let Some(a) = shared {
            return Ok(a);
        }
    }
    let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
    interleave(&refs, indices)
}

/// Hints the CPU to bring the cache line holding `p` closer. Never reads
/// program state and never faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint with no architectural effect: it does
    // not fault on unmapped or invalid addresses and writes nothing. SSE,
    // which provides it, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The output validity of a gather: `None` when no picked row is null.
fn gather_nulls(nulls: &[Option<&NullBuffer>], indices: &[(usize, usize)]) -> Option<NullBuffer> {
    if nulls.iter().all(|n| n.is_none_or(|n| n.null_count() == 0)) {
        return None;
    }
    let mut valid = BooleanBufferBuilder::new(indices.len());
    for &(s, r) in indices {
        valid.append(nulls[s].is_none_or(|n| n.is_valid(r)));
    }
    let nulls = NullBuffer::new(valid.finish());
    (nulls.null_count() > 0).then_some(nulls)
}

/// Gathers a primitive column: prefetch every picked value, then copy. The
/// output keeps the source's data type (timestamp unit and zone, decimal
/// precision and scale).
fn gather_primitive<T: ArrowPrimitiveType>(
    sources: &[&ArrayRef],
    indices: &[(usize, usize)],
) -> ArrayRef {
    let arrays: Vec<&PrimitiveArray<T>> = sources.iter().map(|a| a.as_primitive::<T>()).collect();
    let values: Vec<&[T::Native]> = arrays.iter().map(|a| a.values().as_ref()).collect();
    for &(s, r) in indices {
        prefetch(values[s].as_ptr().wrapping_add(r));
    }
    let out: Vec<T::Native> = indices.iter().map(|&(s, r)| values[s][r]).collect();
    let nulls: Vec<Option<&NullBuffer>> = arrays.iter().map(|a| a.nulls()).collect();
    Arc::new(
        PrimitiveArray::<T>::new(out.into(), gather_nulls(&nulls, indices))
            .with_data_type(sources[0].data_type().clone()),
    )
}

/// Gathers a flat byte column (`Utf8`, `LargeUtf8`, `Binary`,
/// `LargeBinary`) in three passes over the picks: prefetch their offsets;
/// read the offsets and prefetch the value bytes; copy.
fn gather_bytes<T: ByteArrayType>(
    sources: &[&ArrayRef],
    indices: &[(usize, usize)],
) -> Result<ArrayRef, ArrowError> {
    let arrays: Vec<&GenericByteArray<T>> = sources.iter().map(|a| a.as_bytes::<T>()).collect();
    let offsets: Vec<&[T::Offset]> = arrays.iter().map(|a| a.value_offsets()).collect();
    let data: Vec<&[u8]> = arrays.iter().map(|a| a.value_data()).collect();
    for &(s, r) in indices {
        prefetch(offsets[s].as_ptr().wrapping_add(r));
    }
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(indices.len());
    let mut total = 0usize;
    for &(s, r) in indices {
        let (start, end) = (offsets[s][r].as_usize(), offsets[s][r + 1].as_usize());
        let base = data[s].as_ptr();
        let mut line = start;
        while line < end {
            prefetch(base.wrapping_add(line));
            line += 64;
        }
        if end > start {
            prefetch(base.wrapping_add(end - 1));
        }
        ranges.push((start, end));
        total += end - start;
    }
    if T::Offset::from_usize(total).is_none() {
        return Err(ArrowError::OffsetOverflowError(total));
    }
    let mut values: Vec<u8> = Vec::with_capacity(total);
    let mut out_offsets: Vec<T::Offset> = Vec::with_capacity(indices.len() + 1);
    out_offsets.push(T::Offset::usize_as(0));
    for (&(s, _), &(start, end)) in indices.iter().zip(&ranges) {
        values.extend_from_slice(&data[s][start..end]);
        out_offsets.push(T::Offset::usize_as(values.len()));
    }
    let nulls: Vec<Option<&NullBuffer>> = arrays.iter().map(|a| a.nulls()).collect();
    let nulls = gather_nulls(&nulls, indices);
    // SAFETY: the offsets start at 0, never decrease (a running total of
    // value lengths), end at `values.len()` and fit `T::Offset` (checked
    // against `total` above); there is one more offset than picks, as
    // `nulls` has bits. Every value is copied whole from an array of the
    // same type `T`, which upheld `T`'s invariants (for `Utf8`, each value
    // is valid UTF-8), so each output value upholds them too. Skipping the
    // re-validation saves a UTF-8 pass over every gathered byte.
    let array = unsafe {
        GenericByteArray::<T>::new_unchecked(
            OffsetBuffer::new_unchecked(ScalarBuffer::from(out_offsets)),
            Buffer::from_vec(values),
            nulls,
        )
    };
    Ok(Arc::new(array))
}

/// Interleaves only the keys when every source shares one values array.
fn shared_dictionary<K: ArrowDictionaryKeyType>(
    sources: &[&ArrayRef],
    indices: &[(usize, usize)],
) -> Result<Option<ArrayRef>, ArrowError> {
    let dicts: Vec<&DictionaryArray<K>> = sources.iter().map(|a| a.as_dictionary::<K>()).collect();
    let values = dicts[0].values();
    if !dicts.iter().all(|d| Arc::ptr_eq(d.values(), values)) {
        return Ok(None);
    }
    let keys: Vec<&dyn Array> = dicts.iter().map(|d| d.keys() as &dyn Array).collect();
    let keys = interleave(&keys, indices)?;
    let keys = keys.as_primitive::<K>().clone();
    Ok(Some(Arc::new(DictionaryArray::<K>::try_new(
        keys,
        Arc::clone(values),
    )?)))
}

/// Whether `data_type` holds a view type anywhere.
pub(crate) fn has_views(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8View | DataType::BinaryView => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_views(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| has_views(f.data_type())),
        DataType::Union(fields, _) => fields.iter().any(|(_, f)| has_views(f.data_type())),
        DataType::Dictionary(_, v) => has_views(v),
        DataType::RunEndEncoded(r, v) => has_views(r.data_type()) || has_views(v.data_type()),
        _ => false,
    }
}

/// Copies the strings of view arrays into fresh buffers holding only what
/// the array references (top level and inside struct, list, large list,
/// fixed-size list and map children). Other arrays are returned as is.
pub(crate) fn compact_views(array: ArrayRef) -> Result<ArrayRef, ArrowError> {
    if !has_views(array.data_type()) {
        return Ok(array);
    }
    Ok(match array.data_type() {
        DataType::Utf8View => Arc::new(array.as_string_view().gc()),
        DataType::BinaryView => Arc::new(array.as_binary_view().gc()),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let children = s
                .columns()
                .iter()
                .map(|c| compact_views(Arc::clone(c)))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                s.nulls().cloned(),
            )?)
        }
        DataType::List(_) => compact_list::<i32>(&array)?,
        DataType::LargeList(_) => compact_list::<i64>(&array)?,
        DataType::FixedSizeList(field, size) => {
            let l = array.as_fixed_size_list();
            Arc::new(FixedSizeListArray::try_new(
                Arc::clone(field),
                *size,
                compact_views(Arc::clone(l.values()))?,
                l.nulls().cloned(),
            )?)
        }
        DataType::Map(field, sorted) => {
            let m = array.as_map();
            let entries = compact_views(Arc::new(m.entries().clone()))?;
            Arc::new(MapArray::try_new(
                Arc::clone(field),
                m.offsets().clone(),
                entries.as_struct().clone(),
                m.nulls().cloned(),
                *sorted,
            )?)
        }
        // Views inside list views, unions, dictionaries or run-end arrays
        // are written as they are (correct, possibly with extra bytes).
        _ => array,
    })
}

fn compact_list<O: OffsetSizeTrait>(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let l = array.as_list::<O>();
    let (DataType::List(field) | DataType::LargeList(field)) = array.data_type() else {
        unreachable!()
    };
    Ok(Arc::new(GenericListArray::<O>::try_new(
        Arc::clone(field),
        l.offsets().clone(),
        compact_views(Arc::clone(l.values()))?,
        l.nulls().cloned(),
    )?))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, StringArray, StringViewArray};

    use super::*;

    /// The picks used by the fast-path tests: every source, rows out of
    /// order, a row picked twice.
    const PICKS: &[(usize, usize)] = &[(1, 2), (0, 0), (2, 1), (1, 0), (0, 3), (2, 1), (1, 1)];

    /// Checks the fast path against Arrow's `interleave` (the reference)
    /// and against Arrow's full validation of the output.
    fn assert_matches_interleave(sources: &[ArrayRef]) {
        let refs: Vec<&ArrayRef> = sources.iter().collect();
        let ours = gather_column(&refs, PICKS).unwrap();
        let dyns: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
        let expected = interleave(&dyns, PICKS).unwrap();
        ours.to_data().validate_full().unwrap();
        assert_eq!(ours.data_type(), expected.data_type());
        assert_eq!(&ours, &expected);
    }

    #[test]
    fn primitive_gather_keeps_nulls_and_the_data_type() {
        use arrow::array::TimestampMicrosecondArray;
        let ts = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("Europe/Berlin"))
        };
        assert_matches_interleave(&[
            ts(vec![Some(1), None, Some(3), Some(4)]),
            ts(vec![Some(10), Some(11), Some(12)]),
            ts(vec![None, Some(21)]),
        ]);
        // No nulls anywhere: no validity buffer on the output.
        let ints: Vec<ArrayRef> = (0..3)
            .map(|s| Arc::new(Int32Array::from_iter_values((0..4).map(|i| s * 10 + i))) as _)
            .collect();
        let refs: Vec<&ArrayRef> = ints.iter().collect();
        assert!(gather_column(&refs, PICKS).unwrap().nulls().is_none());
        assert_matches_interleave(&ints);
    }

    #[test]
    fn byte_gather_copies_whole_values_from_sliced_sources() {
        use arrow::array::{LargeBinaryArray, StringArray};
        // Multi-byte UTF-8, empty strings and nulls; the middle source is a
        // slice, so its offsets do not start at zero.
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("grüße"),
            None,
            Some(""),
            Some("日本語のテキスト"),
        ]));
        let wide = StringArray::from(vec![Some("skip"), Some("ä"), Some("€uro"), None, Some("z")]);
        let b: ArrayRef = Arc::new(wide.slice(1, 3));
        let c: ArrayRef = Arc::new(StringArray::from(vec!["x", "𝄞 clef"]));
        assert_matches_interleave(&[a, b, c]);

        let bin = |v: Vec<Option<&[u8]>>| -> ArrayRef { Arc::new(LargeBinaryArray::from(v)) };
        assert_matches_interleave(&[
            bin(vec![Some(b"\x00\xff"), Some(b""), None, Some(b"abc")]),
            bin(vec![Some(b"1"), Some(b"22"), Some(b"333")]),
            bin(vec![None, Some(&[0u8; 100][..])]),
        ]);
    }

    #[test]
    fn shared_dictionary_keeps_one_values_array() {
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        let d1: ArrayRef = Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(vec![0, 1]),
                Arc::clone(&values),
            )
            .unwrap(),
        );
        let d2: ArrayRef = Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(vec![2, 2]),
                Arc::clone(&values),
            )
            .unwrap(),
        );
        let out = gather_column(&[&d1, &d2], &[(1, 0), (0, 1), (0, 0)]).unwrap();
        let out = out.as_dictionary::<Int32Type>();
        assert!(Arc::ptr_eq(out.values(), &values));
        assert_eq!(out.keys().values().as_ref(), &[2, 1, 0]);
    }

    #[test]
    fn compacting_views_drops_unreferenced_bytes() {
        let long: Vec<String> = (0..100).map(|i| format!("{i:040}")).collect();
        let a: ArrayRef = Arc::new(StringViewArray::from_iter_values(long.iter()));
        let picked = gather_column(&[&a], &[(0, 3)]).unwrap();
        let before: usize = picked
            .as_string_view()
            .data_buffers()
            .iter()
            .map(|b| b.len())
            .sum();
        let compact = compact_views(picked).unwrap();
        let after: usize = compact
            .as_string_view()
            .data_buffers()
            .iter()
            .map(|b| b.len())
            .sum();
        assert!(after < before, "{after} >= {before}");
        assert_eq!(compact.as_string_view().value(0), long[3]);
    }
}
