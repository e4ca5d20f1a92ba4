//! Loading Burn records from untrusted bytes without trusting the shapes inside them.
//!
//! Burn's record decoder builds each tensor from its serialized `TensorData` (bytes, shape,
//! dtype) and, while decoding, converts a dtype other than the backend's by allocating
//! `shape.product()` elements: a checkpoint section that claims a tensor of 10^12 elements in a
//! few bytes aborts the process (an allocation failure is not a panic, so it cannot be caught).
//! [`load_record`] therefore decodes with a reader of its own for the format Burn writes
//! (bincode's standard configuration: little-endian, variable-length integers) that checks every
//! `TensorData` (bytes = elements x element size) before the tensor's own decoder sees it, and
//! bounds every length by the bytes that remain. It never panics on malformed input.

use std::fmt;

use burn::record::{BurnRecord, FullPrecisionSettings, Record};
use burn::tensor::backend::Backend;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Why a record's bytes were refused.
#[derive(Debug)]
pub(crate) struct Invalid(pub(crate) String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

impl de::Error for Invalid {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Invalid(msg.to_string())
    }
}

/// Decodes a record saved by `BinBytesRecorder<FullPrecisionSettings>`, checking every tensor's
/// byte count against its shape and dtype before anything is allocated from them.
///
/// # Errors
/// What is malformed (a length past the end, an inconsistent tensor, a bad tag), with the
/// offset.
pub(crate) fn load_record<B: Backend, R: Record<B>>(
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<R, String> {
    let mut reader = Reader {
        input: &bytes,
        pos: 0,
    };
    let item = BurnRecord::<R::Item<FullPrecisionSettings>, B>::deserialize(&mut reader)
        .map_err(|e| format!("{e} (at byte {} of {})", reader.pos, bytes.len()))?;
    Ok(R::from_item(item.item, device))
}

/// Bytes per element of the dtypes in Burn's `DType` order (`F64, F32, Flex32, F16, BF16, I64,
/// I32, I16, I8, U64, U32, U16, U8`), then `Bool(store)` (13) and `QFloat` (14).
const ELEMENT_SIZES: [u64; 13] = [8, 4, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1];
/// Bytes per element of `BoolStore::{Native, U8, U32}`.
const BOOL_SIZES: [u64; 3] = [1, 1, 4];

/// A cursor over bincode's standard encoding.
struct Reader<'de> {
    input: &'de [u8],
    pos: usize,
}

impl<'de> Reader<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], Invalid> {
        if n > self.input.len() - self.pos {
            return Err(Invalid(format!(
                "{n} bytes announced, {} left",
                self.input.len() - self.pos
            )));
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Invalid> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// An unsigned variable-length integer: one byte below 251, else a marker and 2, 4, 8 or 16
    /// little-endian bytes.
    fn varint(&mut self) -> Result<u128, Invalid> {
        Ok(match self.byte()? {
            b @ 0..=250 => b.into(),
            251 => u16::from_le_bytes(self.fixed()?).into(),
            252 => u32::from_le_bytes(self.fixed()?).into(),
            253 => u64::from_le_bytes(self.fixed()?).into(),
            254 => u128::from_le_bytes(self.fixed()?),
            _ => return Err(Invalid("invalid integer marker 255".into())),
        })
    }

    fn unsigned<T: TryFrom<u128>>(&mut self, what: &str) -> Result<T, Invalid> {
        let v = self.varint()?;
        T::try_from(v).map_err(|_| Invalid(format!("{what} {v} out of range")))
    }

    /// A zig-zag encoded signed integer.
    fn signed(&mut self) -> Result<i128, Invalid> {
        let v = self.varint()?;
        Ok((v >> 1) as i128 ^ -((v & 1) as i128))
    }

    fn signed_as<T: TryFrom<i128>>(&mut self, what: &str) -> Result<T, Invalid> {
        let v = self.signed()?;
        T::try_from(v).map_err(|_| Invalid(format!("{what} {v} out of range")))
    }

    /// A length, bounded by the bytes left (every element takes at least one byte).
    fn len(&mut self) -> Result<usize, Invalid> {
        let n: usize = self.unsigned("length")?;
        if n > self.input.len() - self.pos {
            return Err(Invalid(format!(
                "a length of {n} exceeds the {} bytes left",
                self.input.len() - self.pos
            )));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<&'de str, Invalid> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|e| Invalid(format!("invalid UTF-8: {e}")))
    }

    /// Reads ahead over a `TensorData` (bytes, shape, dtype) and checks that its byte count is
    /// its shape's element count times the dtype's size; the position is left unchanged.
    fn check_tensor(&mut self) -> Result<(), Invalid> {
        let start = self.pos;
        let result = (|| {
            let bytes = self.len()?;
            self.take(bytes)?;
            let dims = self.len()?;
            let mut shape = Vec::with_capacity(dims);
            for _ in 0..dims {
                shape.push(self.unsigned::<u64>("dimension")?);
            }
            let dtype: usize = self.unsigned("dtype")?;
            let size = match dtype {
                0..=12 => ELEMENT_SIZES[dtype],
                13 => *BOOL_SIZES
                    .get(self.unsigned::<usize>("bool store")?)
                    .ok_or_else(|| Invalid("unknown bool store".into()))?,
                _ => return Err(Invalid(format!("tensor dtype #{dtype} is not expected"))),
            };
            let expected = shape
                .iter()
                .try_fold(size, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| Invalid(format!("a tensor's shape {shape:?} overflows")))?;
            if expected != bytes as u64 {
                return Err(Invalid(format!(
                    "a tensor of shape {shape:?} ({size}-byte elements) holds {bytes} bytes"
                )));
            }
            Ok(())
        })();
        if result.is_ok() {
            self.pos = start;
        }
        result
    }
}

/// The elements of a sequence, tuple, struct or map, `left` of them.
struct Items<'a, 'de> {
    reader: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = Invalid;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Invalid> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = Invalid;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Invalid> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Invalid> {
        seed.deserialize(&mut *self.reader)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = Invalid;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Invalid> {
        let index: u32 = self.unsigned("variant index")?;
        let v = seed.deserialize(index.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = Invalid;
    fn unit_variant(self) -> Result<(), Invalid> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Invalid> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_seq(Items {
            reader: self,
            left: len,
        })
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_seq(Items {
            reader: self,
            left: fields.len(),
        })
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Invalid;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Invalid> {
        Err(Invalid("the format does not describe itself".into()))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(Invalid(format!("invalid bool {b}"))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i8(self.byte()? as i8)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i16(self.signed_as("i16")?)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i32(self.signed_as("i32")?)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i64(self.signed_as("i64")?)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_i128(self.signed()?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u8(self.byte()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u16(self.unsigned("u16")?)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u32(self.unsigned("u32")?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u64(self.unsigned("u64")?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_u128(self.varint()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_f32(f32::from_le_bytes(self.fixed()?))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_f64(f64::from_le_bytes(self.fixed()?))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let first = self.byte()?;
        let width = match first {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return Err(Invalid("invalid char".into())),
        };
        let mut buf = [first, 0, 0, 0];
        buf[1..width].copy_from_slice(self.take(width - 1)?);
        let c = std::str::from_utf8(&buf[..width])
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or_else(|| Invalid("invalid char".into()))?;
        visitor.visit_char(c)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_string(self.str()?.to_string())
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let n = self.len()?;
        visitor.visit_byte_buf(self.take(n)?.to_vec())
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            b => Err(Invalid(format!("invalid option tag {b}"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let left = self.len()?;
        visitor.visit_seq(Items { reader: self, left })
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_seq(Items {
            reader: self,
            left: len,
        })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_seq(Items {
            reader: self,
            left: len,
        })
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Invalid> {
        let left = self.len()?;
        visitor.visit_map(Items { reader: self, left })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        if name == "TensorData" {
            self.check_tensor()?;
        }
        visitor.visit_seq(Items {
            reader: self,
            left: fields.len(),
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Invalid> {
        visitor.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Invalid> {
        Err(Invalid("identifiers are not encoded".into()))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Invalid> {
        Err(Invalid("the format cannot skip values".into()))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::record::{BinBytesRecorder, Recorder};
    use burn::tensor::{Tensor, TensorData};
    use contrast_core::FlexAutodiff as B;

    type Bin = BinBytesRecorder<FullPrecisionSettings>;

    fn weights(l: &burn::nn::Linear<B>) -> Vec<f32> {
        let t: Tensor<B, 2> = l.weight.val();
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn module_and_optimizer_records_read_as_burn_reads_them() {
        let device = Default::default();
        let linear = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
        // Reading the weights initialises them (parameters are lazy).
        let before = weights(&linear);
        let bytes = Bin::default()
            .record(linear.clone().into_record(), ())
            .unwrap();
        let record: <burn::nn::Linear<B> as Module<B>>::Record =
            load_record::<B, _>(bytes, &device).unwrap();
        let fresh = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
        assert_eq!(weights(&fresh.load_record(record)), before);

        // An optimiser with moments, saved and read back both ways: the same next step.
        let mut optim = AdamConfig::new().init::<B, burn::nn::Linear<B>>();
        let x = Tensor::<B, 2>::ones([4, 3], &device);
        let grads = |l: &burn::nn::Linear<B>| {
            GradientsParams::from_grads(l.forward(x.clone()).sum().backward(), l)
        };
        let stepped = optim.step(0.1, linear.clone(), grads(&linear));
        let saved = Bin::default().record(optim.to_record(), ()).unwrap();
        let ours = load_record::<B, _>(saved.clone(), &device).unwrap();
        let burns = Bin::default().load(saved, &device).unwrap();
        let next = |record| {
            let mut o = AdamConfig::new().init::<B, burn::nn::Linear<B>>();
            o = o.load_record(record);
            weights(&o.step(0.1, stepped.clone(), grads(&stepped)))
        };
        assert_eq!(next(ours), next(burns));
    }

    #[test]
    fn a_tensor_whose_shape_exceeds_its_bytes_is_refused_before_allocation() {
        let mut lying = TensorData::new(vec![1.0f32; 6], [2, 3]);
        lying.shape = [1_000_000, 1_000_000, 100].into();
        let bytes = <Bin as Recorder<B>>::save_item(&Bin::default(), lying, ()).unwrap();
        let mut reader = Reader {
            input: &bytes,
            pos: 0,
        };
        let err = TensorData::deserialize(&mut reader)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds 24 bytes"), "{err}");
        // Every truncation of a valid record is an error, never a panic.
        let device = Default::default();
        let linear = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
        let bytes = Bin::default().record(linear.into_record(), ()).unwrap();
        for cut in 0..bytes.len() {
            let r = load_record::<B, <burn::nn::Linear<B> as Module<B>>::Record>(
                bytes[..cut].to_vec(),
                &device,
            );
            assert!(r.is_err(), "cut at {cut}");
        }
    }
}
