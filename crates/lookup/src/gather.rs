//! Gathering rows from several record batches into one: the kernel both
//! the lookup path and the builder's re-chunk/gather use.
//!
//! - One source: Arrow's `take`.
//! - Several sources: one Arrow `interleave` per column over only the
//!   sources actually touched (interleave's cost grows with the number of
//!   sources it is given, so passing every batch of a file is what made it
//!   slow for K = 1 in the seed's measurements).
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
    Array, ArrayRef, AsArray, DictionaryArray, FixedSizeListArray, GenericListArray, MapArray,
    OffsetSizeTrait, StructArray, UInt64Array,
};
use arrow::compute::{interleave, take};
use arrow::datatypes::{
    ArrowDictionaryKeyType, DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;

/// Gathers `indices` (`(source, row)`) from `sources`, which all have the
/// type of `sources[0]`.
pub(crate) fn gather_column(
    sources: &[&ArrayRef],
    indices: &[(usize, usize)],
) -> Result<ArrayRef, ArrowError> {
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
