//! `[stage2.weight_balancing]`'s checks, and the base losses weight balancing can follow.

use super::{Invalid, check, no_repeats, positive_counts};
use crate::baseline::BaseKind;
use crate::stage2::Stage2Kind;

impl crate::spec::SweepSpec {
    pub(super) fn validate_weight_balancing(&self) -> Result<(), Invalid> {
        let st = &self.stage2;
        if st.method.values().contains(&Stage2Kind::WeightBalancing) {
            // MaxNorm and the weight decay act on the norms of the class weight vectors, which
            // a cosine classifier divides out in its forward pass.
            check(
                !self.bases().contains(&BaseKind::LdamDrw),
                "stage2.method",
                "`weight_balancing` re-trains a linear classifier, and `ldam_drw` (losses.base) trains a cosine one, whose forward pass normalises each class's weight vector: MaxNorm and weight decay on those norms would change nothing. Run them in two specs",
            )?;
        }
        let Some(wb) = &st.weight_balancing else {
            return Ok(());
        };
        let key = |name: &str| format!("stage2.weight_balancing.{name}");
        positive_counts(Some(&wb.epochs), &key("epochs"))?;
        for &lr in wb.lr.values() {
            check(
                lr.is_finite() && lr > 0.0,
                &key("lr"),
                &format!("{lr} is not a positive number"),
            )?;
        }
        for &decay in wb.weight_decay.values() {
            check(
                decay.is_finite() && decay >= 0.0,
                &key("weight_decay"),
                &format!("{decay} is not a number of at least 0"),
            )?;
        }
        for &beta in wb.cb_beta.values() {
            check(
                (0.0..1.0).contains(&beta),
                &key("cb_beta"),
                &format!(
                    "{beta} is outside [0, 1) (0 weighs every class alike; Alshammari et al. use 0.9999)"
                ),
            )?;
        }
        for &max_norm in wb.max_norm.values() {
            check(
                (0.0..=1.0).contains(&max_norm),
                &key("max_norm"),
                &format!(
                    "{max_norm} is outside [0, 1] (0 caps every class at the smallest stage-1 norm, 1 at the largest)"
                ),
            )?;
        }
        no_repeats(wb.epochs.values(), &key("epochs"))?;
        no_repeats(wb.lr.values(), &key("lr"))?;
        no_repeats(wb.weight_decay.values(), &key("weight_decay"))?;
        no_repeats(wb.cb_beta.values(), &key("cb_beta"))?;
        no_repeats(wb.max_norm.values(), &key("max_norm"))?;
        no_repeats(wb.bn.values(), &key("bn"))?;
        no_repeats(wb.max_norm_every.values(), &key("max_norm_every"))
    }
}
