//! `[stage2.mislas]`'s checks, and the combinations MiSLAS refuses.

use super::{Invalid, check, no_repeats, positive_counts};
use crate::baseline::BaseKind;
use crate::stage2::Stage2Kind;

impl crate::spec::SweepSpec {
    pub(super) fn validate_mislas(&self) -> Result<(), Invalid> {
        let st = &self.stage2;
        if st.method.values().contains(&Stage2Kind::Mislas) {
            // Their classifier is a plain `nn.Linear`; re-training LDAM's cosine head would be
            // a method of its own, with LDAM's scale and margins left out or kept.
            check(
                !self.bases().contains(&BaseKind::LdamDrw),
                "stage2.method",
                "`mislas` re-trains a linear classifier with label-aware smoothing, and `ldam_drw` (losses.base) trains a cosine one whose scale and margins MiSLAS does not define. Run them in two specs",
            )?;
        }
        let Some(m) = &st.mislas else {
            return Ok(());
        };
        let key = |name: &str| format!("stage2.mislas.{name}");
        positive_counts(Some(&m.epochs), &key("epochs"))?;
        for (name, values) in [("lr", &m.lr), ("lr_factor", &m.lr_factor)] {
            for &value in values.values() {
                check(
                    value.is_finite() && value > 0.0,
                    &key(name),
                    &format!("{value} is not a positive number"),
                )?;
            }
        }
        for &decay in m.weight_decay.values() {
            check(
                decay.is_finite() && decay >= 0.0,
                &key("weight_decay"),
                &format!("{decay} is not a number of at least 0"),
            )?;
        }
        for (name, values) in [
            ("smooth_head", &m.smooth_head),
            ("smooth_tail", &m.smooth_tail),
        ] {
            for &value in values.values() {
                check(
                    (0.0..=1.0).contains(&value),
                    &key(name),
                    &format!(
                        "{value} is outside [0, 1] (a smoothing factor: 0 is cross entropy, 1 the uniform target alone)"
                    ),
                )?;
            }
        }
        no_repeats(m.epochs.values(), &key("epochs"))?;
        no_repeats(m.lr.values(), &key("lr"))?;
        no_repeats(m.lr_factor.values(), &key("lr_factor"))?;
        no_repeats(m.weight_decay.values(), &key("weight_decay"))?;
        no_repeats(m.smooth_head.values(), &key("smooth_head"))?;
        no_repeats(m.smooth_tail.values(), &key("smooth_tail"))?;
        no_repeats(m.shape.values(), &key("shape"))?;
        no_repeats(m.bn.values(), &key("bn"))?;
        no_repeats(m.classifier.values(), &key("classifier"))?;
        no_repeats(m.scaling.values(), &key("scaling"))
    }
}
