//! A stage-2 job's method with its settings, read from the jobs frame's `stage2` column.
//!
//! The frame holds the method as the proto's `Display` names it (`tau_norm(tau=1)`,
//! `crt(epochs=10,lr=0.1,bn=frozen)`, `ncm`, `none`), and an export read back holds nothing
//! more, so this is the one place that label is taken apart. Settings are kept as the text the
//! label shows: the report compares them, never computes with them, and a setting added to a
//! method later reads without a change here.

use std::fmt;

use ltsweep_domain::Stage2Kind;

/// `crt(epochs=10,lr=0.1)`: a method and its settings in the label's order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MethodLabel {
    pub(crate) kind: Stage2Kind,
    /// `(name, value)` pairs: `("epochs", "10")`, `("bn", "frozen")`.
    pub(crate) settings: Vec<(String, String)>,
}

impl MethodLabel {
    /// The method a label names; `None` for text no proto version writes (which would not
    /// print back the same).
    pub(crate) fn parse(label: &str) -> Option<MethodLabel> {
        let (kind, settings) = match label.split_once('(') {
            Some((kind, rest)) => (kind, rest.strip_suffix(')')?),
            None => (label, ""),
        };
        let settings = if settings.is_empty() {
            Vec::new()
        } else {
            settings
                .split(',')
                .map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    Some((name.to_owned(), value.to_owned()))
                })
                .collect::<Option<Vec<_>>>()?
        };
        let method = MethodLabel {
            kind: kind.parse().ok()?,
            settings,
        };
        (method.to_string() == label).then_some(method)
    }

    /// The label without the settings `left_out` names: `tau_norm` for `tau_norm(tau=1)`
    /// without `tau`.
    pub(crate) fn without(&self, left_out: impl Fn(&str, &str) -> bool) -> MethodLabel {
        MethodLabel {
            kind: self.kind,
            settings: self
                .settings
                .iter()
                .filter(|(name, value)| !left_out(name, value))
                .cloned()
                .collect(),
        }
    }
}

/// Whether a setting is a number (τ, epochs, a learning rate) rather than a word naming a
/// variant of the method (`bn=frozen`, `features=l2n`).
pub(crate) fn is_numeric(value: &str) -> bool {
    value.parse::<f64>().is_ok()
}

impl fmt::Display for MethodLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.settings.is_empty() {
            let settings: Vec<String> = self
                .settings
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            write!(f, "({})", settings.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_domain::{BnMode, NcmFeatures, Stage2Method, Stage2Sampler, TauBias};

    use super::*;

    #[test]
    fn labels_read_back_as_the_methods_print_them() {
        for method in [
            Stage2Method::crt(10, 0.1),
            Stage2Method::Crt {
                epochs: 10,
                lr: 0.1,
                bn: BnMode::Frozen,
                sampler: Stage2Sampler::ClassBalanced,
            },
            Stage2Method::TauNorm {
                tau: 1.5,
                bias: TauBias::Keep,
            },
            Stage2Method::PosthocLa { tau: 0.0 },
            Stage2Method::Ncm {
                features: NcmFeatures::default(),
            },
            Stage2Method::Ncm {
                features: NcmFeatures::L2n,
            },
        ] {
            let label = method.to_string();
            let read = MethodLabel::parse(&label).expect("a method's label");
            assert_eq!(read.kind, method.kind());
            assert_eq!(read.to_string(), label);
        }
        let read = MethodLabel::parse("crt(epochs=10,lr=0.1,bn=frozen)").expect("a label");
        assert_eq!(
            read.without(|_, value| is_numeric(value)).to_string(),
            "crt(bn=frozen)"
        );
        assert_eq!(
            MethodLabel::parse("none").map(|m| m.kind),
            Some(Stage2Kind::None)
        );
        for bad in [
            "decoupled",
            "crt(epochs=10",
            "crt(epochs)",
            "crt()",
            "tau_norm(tau=1)x",
        ] {
            assert_eq!(MethodLabel::parse(bad), None, "{bad}");
        }
    }
}
