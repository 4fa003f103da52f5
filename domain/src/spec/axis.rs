//! A numeric setting that is one value or a list of values, a list being an axis of the grid.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A numeric setting: one value, or a list of values that becomes an axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub enum Axis<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Copy> Axis<T> {
    pub fn values(&self) -> &[T] {
        match self {
            Axis::One(value) => std::slice::from_ref(value),
            Axis::Many(values) => values,
        }
    }

    pub fn first(&self) -> T {
        self.values()[0]
    }
}

impl<T: Copy + PartialOrd> Axis<T> {
    pub(super) fn min(&self) -> T {
        let mut values = self.values().iter().copied();
        let first = values.next().expect("an axis has at least one value");
        values.fold(first, |a, b| if b < a { b } else { a })
    }
}

/// The numbers a spec may hold: whole numbers (counts, epochs) and reals.
trait AxisNumber: Copy + Sized {
    const EXPECTING: &'static str;
    fn from_i64(v: i64) -> Result<Self, String>;
    fn from_f64(v: f64) -> Result<Self, String>;
}

impl AxisNumber for u32 {
    const EXPECTING: &'static str = "a whole number";

    fn from_i64(v: i64) -> Result<Self, String> {
        u32::try_from(v).map_err(|_| format!("{v} is not a whole number from 0 to {}", u32::MAX))
    }

    fn from_f64(v: f64) -> Result<Self, String> {
        Err(format!("{v} is not a whole number"))
    }
}

impl AxisNumber for f64 {
    const EXPECTING: &'static str = "a number";

    fn from_i64(v: i64) -> Result<Self, String> {
        Ok(v as f64)
    }

    fn from_f64(v: f64) -> Result<Self, String> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{v} is not a finite number"))
        }
    }
}

struct NumberVisitor<T>(PhantomData<T>);

impl<'de, T: AxisNumber> Visitor<'de> for NumberVisitor<T> {
    type Value = Axis<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or a list of them", T::EXPECTING)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::from_i64(v).map(Axis::One).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))?;
        self.visit_i64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v).map(Axis::One).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<Scalar<T>>()? {
            values.push(value.0);
        }
        match values.len() {
            0 => Err(de::Error::custom("an empty list gives no value to run")),
            1 => Ok(Axis::One(values[0])),
            _ => Ok(Axis::Many(values)),
        }
    }
}

/// One element of a list axis.
struct Scalar<T>(T);

impl<'de, T: AxisNumber> Deserialize<'de> for Scalar<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor<T>(PhantomData<T>);
        impl<'de, T: AxisNumber> Visitor<'de> for ScalarVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
                T::from_i64(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
                let v = i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))?;
                T::from_i64(v).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
                T::from_f64(v).map_err(E::custom)
            }
        }
        d.deserialize_any(ScalarVisitor(PhantomData)).map(Scalar)
    }
}

impl<'de, T: AxisNumber> Deserialize<'de> for Axis<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor(PhantomData))
    }
}
