//! Dictionary unification for the builder: gives every top-level
//! dictionary column of a sidecar one dictionary that only ever grows by
//! appending, whatever dictionaries the pushed batches carried.
//!
//! An Arrow IPC *file* allows one dictionary per column, extended only by
//! delta batches that append values (the format has no replacement). Input
//! batches often carry different dictionaries (each built per batch), so the
//! builder re-encodes every dictionary column through a
//! [`DictionaryUnifier`]: each distinct value is interned once (compared by
//! its [`arrow::row`] encoding, so any value type the row format supports
//! works, and a null *value* stays distinct from a null *key*), keys are
//! rewritten to the unified positions, and the unified values array grows by
//! appending the values first seen in each chunk. The IPC writer, set to
//! `DictionaryHandling::Delta`, then emits only the appended values.
//!
//! Values are appended in order of first use by a key, and values no key
//! references are dropped, so the unified dictionary depends only on the
//! rows in output order: the sorted fast path and the gather path produce
//! the same dictionary (and the same bytes).
//!
//! Costs: hashing one row-encoded value per distinct value per source
//! dictionary, plus an O(dictionary) concatenation whenever a chunk adds
//! values. Dictionaries are assumed to be small relative to the data.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, AsArray, BooleanBufferBuilder, DictionaryArray,
    PrimitiveArray, new_empty_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{concat, interleave};
use arrow::datatypes::{
    ArrowDictionaryKeyType, ArrowNativeType, DataType, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};

use crate::error::BuildError;

/// A source dictionary seen recently: its values, their row encoding, and
/// the unified position of each value once resolved.
struct Source {
    values: ArrayRef,
    rows: Rows,
    unified: Vec<Option<usize>>,
}

/// Sources remembered across chunks (the gather path reuses one spill
/// dictionary for every chunk, the fast path sees a few per chunk).
const SOURCE_CACHE: usize = 16;

/// Re-encodes one dictionary column onto a single, append-only dictionary.
pub(crate) struct DictionaryUnifier {
    column: String,
    key_type: DataType,
    converter: RowConverter,
    positions: HashMap<Box<[u8]>, usize>,
    values: ArrayRef,
    sources: Vec<Source>,
}

impl std::fmt::Debug for DictionaryUnifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DictionaryUnifier")
            .field("column", &self.column)
            .field("key_type", &self.key_type)
            .field("values", &self.values.len())
            .finish()
    }
}

impl DictionaryUnifier {
    /// A unifier for a column of type `Dictionary(key_type, value_type)`, or
    /// an error if the value type cannot be row-encoded.
    pub(crate) fn try_new(column: &str, data_type: &DataType) -> Result<Self, BuildError> {
        let DataType::Dictionary(key_type, value_type) = data_type else {
            unreachable!("DictionaryUnifier::try_new called for {data_type}");
        };
        let converter = RowConverter::new(vec![SortField::new(value_type.as_ref().clone())])
            .map_err(|_| BuildError::UnsupportedType {
                column: column.to_string(),
                data_type: data_type.clone(),
                provider: "the Feather sidecar",
                reason: "dictionary values of this type cannot be compared for unification",
            })?;
        Ok(Self {
            column: column.to_string(),
            key_type: key_type.as_ref().clone(),
            converter,
            positions: HashMap::new(),
            values: new_empty_array(value_type),
            sources: Vec::new(),
        })
    }

    /// The unified values so far.
    #[cfg(test)]
    pub(crate) fn values(&self) -> &ArrayRef {
        &self.values
    }

    /// Gathers rows `indices` (`(source, row)`) of the dictionary arrays in
    /// `sources`, re-encoded onto the unified dictionary.
    pub(crate) fn gather(
        &mut self,
        sources: &[&dyn Array],
        indices: &[(usize, usize)],
    ) -> Result<ArrayRef, BuildError> {
        match self.key_type {
            DataType::Int8 => self.gather_typed::<Int8Type>(sources, indices),
            DataType::Int16 => self.gather_typed::<Int16Type>(sources, indices),
            DataType::Int32 => self.gather_typed::<Int32Type>(sources, indices),
            DataType::Int64 => self.gather_typed::<Int64Type>(sources, indices),
            DataType::UInt8 => self.gather_typed::<UInt8Type>(sources, indices),
            DataType::UInt16 => self.gather_typed::<UInt16Type>(sources, indices),
            DataType::UInt32 => self.gather_typed::<UInt32Type>(sources, indices),
            DataType::UInt64 => self.gather_typed::<UInt64Type>(sources, indices),
            ref other => unreachable!("dictionary key type {other}"),
        }
    }

    /// Position of `values` in the source cache, converting it on first use.
    /// The caller makes room first ([`Self::make_room`]), so this never
    /// evicts and earlier slots stay valid.
    fn source(&mut self, values: &ArrayRef) -> Result<usize, BuildError> {
        if let Some(i) = self
            .sources
            .iter()
            .position(|s| Arc::ptr_eq(&s.values, values))
        {
            return Ok(i);
        }
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(values))
            .map_err(|source| BuildError::Arrow {
                context: "row-encoding dictionary values",
                source,
            })?;
        self.sources.push(Source {
            values: Arc::clone(values),
            unified: vec![None; values.len()],
            rows,
        });
        Ok(self.sources.len() - 1)
    }

    /// Evicts cached sources this chunk does not use until `wanted` fit.
    /// Returns false if they cannot all fit.
    fn make_room(&mut self, wanted: &[&ArrayRef]) -> bool {
        let mut distinct: Vec<&ArrayRef> = Vec::new();
        for w in wanted {
            if !distinct.iter().any(|d| Arc::ptr_eq(d, w)) {
                distinct.push(w);
            }
        }
        if distinct.len() > SOURCE_CACHE {
            return false;
        }
        let missing = distinct
            .iter()
            .filter(|d| !self.sources.iter().any(|s| Arc::ptr_eq(&s.values, d)))
            .count();
        while self.sources.len() + missing > SOURCE_CACHE {
            let victim = self
                .sources
                .iter()
                .position(|s| !distinct.iter().any(|d| Arc::ptr_eq(&s.values, d)))
                .expect("distinct sources fit the cache");
            self.sources.remove(victim);
        }
        true
    }

    fn gather_typed<K: ArrowDictionaryKeyType>(
        &mut self,
        sources: &[&dyn Array],
        indices: &[(usize, usize)],
    ) -> Result<ArrayRef, BuildError> {
        let dicts: Vec<&DictionaryArray<K>> =
            sources.iter().map(|a| a.as_dictionary::<K>()).collect();
        let wanted: Vec<&ArrayRef> = dicts.iter().map(|d| d.values()).collect();
        if !self.make_room(&wanted) {
            // More distinct dictionaries than the cache holds: re-encode
            // each source on its own, then pick the rows.
            return self.gather_uncached::<K>(&dicts, indices);
        }
        let mut slots = Vec::with_capacity(dicts.len());
        for d in &dicts {
            slots.push(self.source(d.values())?);
        }
        let any_nulls = dicts.iter().any(|d| d.keys().null_count() > 0);
        let mut validity = any_nulls.then(|| BooleanBufferBuilder::new(indices.len()));
        let mut keys: Vec<K::Native> = Vec::with_capacity(indices.len());
        let mut appended: Vec<(usize, usize)> = Vec::new();
        let base = self.values.len();
        for &(s, r) in indices {
            let d = dicts[s];
            if d.keys().is_null(r) {
                keys.push(K::Native::ZERO);
                if let Some(v) = validity.as_mut() {
                    v.append(false);
                }
                continue;
            }
            let local = d.keys().values()[r].as_usize();
            let slot = slots[s];
            let src = &mut self.sources[slot];
            if local >= src.unified.len() {
                return Err(BuildError::Arrow {
                    context: "re-encoding a dictionary column",
                    source: ArrowError::InvalidArgumentError(format!(
                        "dictionary key {local} out of range for {} values",
                        src.unified.len()
                    )),
                });
            }
            let pos = match src.unified[local] {
                Some(p) => p,
                None => {
                    let row = src.rows.row(local);
                    let next = base + appended.len();
                    let p = *self.positions.entry(row.as_ref().into()).or_insert(next);
                    if p == next {
                        appended.push((slot, local));
                    }
                    src.unified[local] = Some(p);
                    p
                }
            };
            keys.push(self.key(pos)?);
            if let Some(v) = validity.as_mut() {
                v.append(true);
            }
        }
        self.append(&appended)?;
        self.finish::<K>(keys, validity)
    }

    fn gather_uncached<K: ArrowDictionaryKeyType>(
        &mut self,
        dicts: &[&DictionaryArray<K>],
        indices: &[(usize, usize)],
    ) -> Result<ArrayRef, BuildError> {
        // Re-encode each source separately onto the unified dictionary, then
        // pick the rows: cost O(rows + values of the sources).
        let mut per_source: Vec<ArrayRef> = Vec::with_capacity(dicts.len());
        for d in dicts {
            let all: Vec<(usize, usize)> = (0..d.len()).map(|r| (0, r)).collect();
            per_source.push(self.gather_typed::<K>(&[*d as &dyn Array], &all)?);
        }
        // Earlier sources were encoded against a shorter (prefix) dictionary;
        // re-point them all at the final values.
        let rekeyed: Vec<ArrayRef> = per_source
            .iter()
            .map(|a| {
                let d = a.as_dictionary::<K>();
                DictionaryArray::<K>::try_new(d.keys().clone(), Arc::clone(&self.values))
                    .map(|d| Arc::new(d) as ArrayRef)
            })
            .collect::<Result<_, _>>()
            .map_err(|source| BuildError::Arrow {
                context: "re-encoding a dictionary column",
                source,
            })?;
        let keys: Vec<&dyn Array> = rekeyed
            .iter()
            .map(|a| a.as_dictionary::<K>().keys() as &dyn Array)
            .collect();
        let k = interleave(&keys, indices).map_err(|source| BuildError::Arrow {
            context: "re-encoding a dictionary column",
            source,
        })?;
        let k = k.as_primitive::<K>().clone();
        DictionaryArray::<K>::try_new(k, Arc::clone(&self.values))
            .map(|d| Arc::new(d) as ArrayRef)
            .map_err(|source| BuildError::Arrow {
                context: "re-encoding a dictionary column",
                source,
            })
    }

    /// The key for unified position `pos`, or an overflow error.
    fn key<N: ArrowNativeType>(&self, pos: usize) -> Result<N, BuildError> {
        N::from_usize(pos).ok_or_else(|| BuildError::DictionaryOverflow {
            column: self.column.clone(),
            key_type: self.key_type.clone(),
            values: pos + 1,
        })
    }

    /// Appends the newly seen values (by `(source slot, local index)`).
    fn append(&mut self, appended: &[(usize, usize)]) -> Result<(), BuildError> {
        if appended.is_empty() {
            return Ok(());
        }
        let arrays: Vec<&dyn Array> = self.sources.iter().map(|s| s.values.as_ref()).collect();
        let new = interleave(&arrays, appended).map_err(|source| BuildError::Arrow {
            context: "appending dictionary values",
            source,
        })?;
        self.values = if self.values.is_empty() {
            new
        } else {
            concat(&[self.values.as_ref(), new.as_ref()]).map_err(|source| BuildError::Arrow {
                context: "appending dictionary values",
                source,
            })?
        };
        Ok(())
    }

    fn finish<K: ArrowDictionaryKeyType>(
        &self,
        keys: Vec<K::Native>,
        validity: Option<BooleanBufferBuilder>,
    ) -> Result<ArrayRef, BuildError> {
        let nulls = validity.map(|mut v| NullBuffer::new(v.finish()));
        let keys = PrimitiveArray::<K>::new(keys.into(), nulls);
        DictionaryArray::<K>::try_new(keys, Arc::clone(&self.values))
            .map(|d| Arc::new(d) as ArrayRef)
            .map_err(|source| BuildError::Arrow {
                context: "re-encoding a dictionary column",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int8Array, StringArray};

    use super::*;

    fn dict(keys: Vec<Option<i8>>, values: Vec<Option<&str>>) -> ArrayRef {
        Arc::new(
            DictionaryArray::<Int8Type>::try_new(
                Int8Array::from(keys),
                Arc::new(StringArray::from(values)),
            )
            .unwrap(),
        )
    }

    fn strings(a: &ArrayRef) -> Vec<Option<String>> {
        let d = a.as_dictionary::<Int8Type>();
        let v = d.values().as_string::<i32>();
        d.keys()
            .iter()
            .map(|k| {
                k.and_then(|k| {
                    v.is_valid(k as usize)
                        .then(|| v.value(k as usize).to_string())
                })
            })
            .collect()
    }

    #[test]
    fn different_dictionaries_unify_and_keep_values() {
        let dt = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        let mut u = DictionaryUnifier::try_new("c", &dt).unwrap();
        let a = dict(
            vec![Some(0), Some(1), None],
            vec![Some("x"), Some("y"), Some("unused")],
        );
        let b = dict(
            vec![Some(1), Some(0), Some(2)],
            vec![Some("y"), Some("z"), None],
        );
        let out1 = u.gather(&[a.as_ref()], &[(0, 0), (0, 1), (0, 2)]).unwrap();
        assert_eq!(
            strings(&out1),
            vec![Some("x".into()), Some("y".into()), None]
        );
        let first_values = Arc::clone(u.values());
        let out2 = u
            .gather(&[a.as_ref(), b.as_ref()], &[(1, 0), (1, 1), (0, 0), (1, 2)])
            .unwrap();
        assert_eq!(
            strings(&out2),
            vec![Some("z".into()), Some("y".into()), Some("x".into()), None]
        );
        // Append-only: the first dictionary is a prefix of the second;
        // "unused" was never referenced and is not stored; the null value is.
        let v = u.values().as_string::<i32>();
        assert_eq!(v.len(), 4);
        assert_eq!(&first_values.to_data(), &u.values().slice(0, 2).to_data());
        assert_eq!(v.value(2), "z");
        assert!(v.is_null(3));
        // A null key stays a null key; a key to a null value stays valid.
        let d = out2.as_dictionary::<Int8Type>();
        assert!(d.keys().is_valid(3));
    }

    #[test]
    fn overflowing_the_key_type_is_an_error() {
        let dt = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        let mut u = DictionaryUnifier::try_new("c", &dt).unwrap();
        for chunk in 0..3 {
            let values: Vec<String> = (0..100).map(|i| format!("{chunk}-{i}")).collect();
            let a = dict(
                (0..100).map(Some).collect(),
                values.iter().map(|s| Some(s.as_str())).collect(),
            );
            let idx: Vec<(usize, usize)> = (0..100).map(|r| (0, r)).collect();
            let r = u.gather(&[a.as_ref()], &idx);
            if chunk < 1 {
                r.unwrap();
            } else if let Err(e) = r {
                assert!(matches!(e, BuildError::DictionaryOverflow { .. }), "{e}");
                return;
            }
        }
        panic!("expected an overflow");
    }

    #[test]
    fn many_sources_fall_back_without_cache() {
        let dt = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        let mut u = DictionaryUnifier::try_new("c", &dt).unwrap();
        let names: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let arrays: Vec<ArrayRef> = names
            .iter()
            .map(|n| dict(vec![Some(0)], vec![Some(n.as_str())]))
            .collect();
        let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        let idx: Vec<(usize, usize)> = (0..20).rev().map(|s| (s, 0)).collect();
        let out = u.gather(&refs, &idx).unwrap();
        let got = strings(&out);
        let want: Vec<Option<String>> = names.iter().rev().cloned().map(Some).collect();
        assert_eq!(got, want);
    }
}
