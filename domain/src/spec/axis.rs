//! A numeric setting that is one value, a list of values (an axis of the grid), or a
//! distribution its values are drawn from (`[search] samples`).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A numeric setting: one value, a list of values that becomes an axis of the grid, or a
/// distribution sampled jointly with the spec's other sampled settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Axis<T> {
    One(T),
    Many(Vec<T>),
    /// `{ uniform = [low, high] }`, `{ log_uniform = [low, high] }` or `{ choice = [...] }`:
    /// `values` are the bounds or the choices.
    Sampled {
        distribution: Distribution,
        values: Vec<T>,
    },
}

/// How a sampled setting maps a point of [0, 1) to a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Uniform between the two bounds (a whole-number setting: each whole number from the low
    /// bound to the high one equally likely).
    Uniform,
    /// Uniform in the logarithm between the two positive bounds.
    LogUniform,
    /// One of the listed values, each equally likely.
    Choice,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::LogUniform => "log_uniform",
            Distribution::Choice => "choice",
        }
    }
}

impl<T: Copy> Axis<T> {
    /// The values a check of the setting's range sees: the value, the list, or a
    /// distribution's bounds or choices.
    pub fn values(&self) -> &[T] {
        match self {
            Axis::One(value) => std::slice::from_ref(value),
            Axis::Many(values) | Axis::Sampled { values, .. } => values,
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
    fn real(self) -> f64;
    fn from_i64(v: i64) -> Result<Self, String>;
    fn from_f64(v: f64) -> Result<Self, String>;
}

impl AxisNumber for u32 {
    const EXPECTING: &'static str = "a whole number";

    fn real(self) -> f64 {
        f64::from(self)
    }

    fn from_i64(v: i64) -> Result<Self, String> {
        u32::try_from(v).map_err(|_| format!("{v} is not a whole number from 0 to {}", u32::MAX))
    }

    fn from_f64(v: f64) -> Result<Self, String> {
        Err(format!("{v} is not a whole number"))
    }
}

impl AxisNumber for f64 {
    const EXPECTING: &'static str = "a number";

    fn real(self) -> f64 {
        self
    }

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
        write!(
            f,
            "{} or a list of them, or a distribution such as {{ log_uniform = [0.01, 0.5] }}",
            T::EXPECTING
        )
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

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "an empty table is no distribution: give uniform, log_uniform or choice",
            ));
        };
        let distribution = match name.as_str() {
            "uniform" => Distribution::Uniform,
            "log_uniform" => Distribution::LogUniform,
            "choice" => Distribution::Choice,
            other => {
                return Err(de::Error::custom(format!(
                    "unknown distribution `{other}`: give uniform, log_uniform or choice"
                )));
            }
        };
        let values: Vec<Scalar<T>> = map.next_value()?;
        let values: Vec<T> = values.into_iter().map(|v| v.0).collect();
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "a distribution is one of uniform, log_uniform or choice, not several",
            ));
        }
        check_distribution(distribution, &values).map_err(de::Error::custom)?;
        Ok(Axis::Sampled {
            distribution,
            values,
        })
    }
}

/// The most choices one sampled setting may list.
pub const MAX_CHOICES: usize = 1_000;

fn check_distribution<T: AxisNumber>(
    distribution: Distribution,
    values: &[T],
) -> Result<(), String> {
    let name = distribution.name();
    let reals: Vec<f64> = values.iter().map(|v| v.real()).collect();
    match distribution {
        Distribution::Uniform | Distribution::LogUniform => {
            let [low, high] = reals[..] else {
                return Err(format!(
                    "{name} takes two bounds, [low, high]; {} given",
                    reals.len()
                ));
            };
            if low >= high {
                return Err(format!(
                    "{name} = [{low}, {high}]: the low bound must be below the high one"
                ));
            }
            if distribution == Distribution::LogUniform && low <= 0.0 {
                return Err(format!(
                    "log_uniform = [{low}, {high}]: both bounds must be positive (it is uniform in their logarithm)"
                ));
            }
        }
        Distribution::Choice => {
            if reals.len() < 2 {
                return Err(
                    "choice lists at least two values (one value is a plain setting)".to_owned(),
                );
            }
            if reals.len() > MAX_CHOICES {
                return Err(format!(
                    "choice lists {} values, over the limit of {MAX_CHOICES}",
                    reals.len()
                ));
            }
            for (i, v) in reals.iter().enumerate() {
                if reals[..i].contains(v) {
                    return Err(format!("choice lists {v} twice"));
                }
            }
        }
    }
    Ok(())
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
