//! Initial weights from a safetensors file (`[model] init`), such as a torchvision model's
//! `state_dict` saved by PyTorch with `safetensors.torch.save_file`.
//!
//! As strict as PyTorch's `load_state_dict(strict=True)`: every variable of the network must be
//! in the file with its exact shape, and every tensor of the file must be a variable of the
//! network, except PyTorch's BatchNorm counters (`*.num_batches_tracked`, which ltsweep's
//! BatchNorm does not keep) and what `init_skip` names. A skipped variable keeps the fresh
//! initialisation of the job's seed: that is how a classifier of another class count (an
//! ImageNet checkpoint's 1,000 classes for Places-LT's 365) is left out. Everything is checked
//! before any variable is written, so a refused file leaves the network as it was.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ltsweep_domain::spec::MAX_INIT_BYTES;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use tch::{Kind, Tensor, nn};

use ltsweep_data::DataError;
use ltsweep_data::root::{DataRoot, Limit};

const INIT_LIMIT: Limit = Limit {
    bytes: MAX_INIT_BYTES,
    what: "a weights file",
};

/// A weights file that cannot initialise the network. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Missing, unreadable, outside the data root, no regular file, or over the size limit.
    #[error(transparent)]
    File(#[from] DataError),
    #[error("{}: not a complete safetensors file ({detail}); write it again with safetensors.torch.save_file", .path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error("{}: tensor `{name}` has shape {found:?}, the model's has {expected:?}{hint}", .path.display())]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
        hint: String,
    },
    #[error("{}: tensor `{name}` is {dtype:?}; weights must be floating point (F16, BF16, F32, F64)", .path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: Dtype,
    },
    #[error("{}: the model's `{name}` is not in the file ({count} of {total} variables missing); is it a checkpoint of another architecture?", .path.display())]
    MissingTensor {
        path: PathBuf,
        name: String,
        count: usize,
        total: usize,
    },
    #[error("{}: tensor `{name}` is no variable of the model ({count} such); is it a checkpoint of another architecture?", .path.display())]
    Unexpected {
        path: PathBuf,
        name: String,
        count: usize,
    },
    #[error(
        "model.init_skip: `{prefix}` names no variable of the model (e.g. \"fc\" for the classifier)"
    )]
    SkipMatchesNothing { prefix: String },
}

/// What a load did, for the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Variables set from the file.
    pub loaded: usize,
    /// Variables left at their fresh initialisation (`init_skip`).
    pub skipped: Vec<String>,
}

/// Whether `name` is `prefix` or lies under it (`fc` covers `fc.weight`, not `fc2.weight`).
fn covered(name: &str, prefix: &str) -> bool {
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        Dtype::F32 => Some(Kind::Float),
        Dtype::F64 => Some(Kind::Double),
        _ => None,
    }
}

/// Sets the variables of `vs` from the safetensors file `init` (`model.init`, relative to
/// `root`), leaving those under the `skip` prefixes as they are.
pub fn load(
    vs: &nn::VarStore,
    root: &DataRoot,
    init: &str,
    skip: &[String],
) -> Result<Loaded, InitError> {
    let path = root.spec_path(root.path(), "model.init", init)?;
    let bytes = root.read(
        &path,
        INIT_LIMIT,
        "model.init is read relative to the worker's --data-root",
    )?;
    apply(vs, &path, &bytes, skip)
}

/// Sets the variables of `vs` from the safetensors `bytes` read from `path`.
fn apply(
    vs: &nn::VarStore,
    path: &Path,
    bytes: &[u8],
    skip: &[String],
) -> Result<Loaded, InitError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| InitError::Malformed {
        path: path.to_owned(),
        detail: crate::model_file::describe(&e),
    })?;
    let variables = vs.variables();
    for prefix in skip {
        if !variables.keys().any(|name| covered(name, prefix)) {
            return Err(InitError::SkipMatchesNothing {
                prefix: prefix.clone(),
            });
        }
    }
    let skipped = |name: &str| skip.iter().any(|prefix| covered(name, prefix));

    // Every check first: a refused file changes nothing.
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut chosen = Vec::new();
    let mut unexpected = Vec::new();
    for (name, view) in &tensors {
        if name.ends_with(".num_batches_tracked") || skipped(name) {
            continue;
        }
        let Some(variable) = variables.get(name) else {
            unexpected.push(name.clone());
            continue;
        };
        let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let expected = variable.size();
        if found != expected {
            let classifier = name.starts_with("fc.");
            return Err(InitError::Shape {
                path: path.to_owned(),
                name: name.clone(),
                found,
                expected,
                hint: if classifier {
                    "; add init_skip = [\"fc\"] to [model] to start this job's classifier afresh"
                        .to_owned()
                } else {
                    String::new()
                },
            });
        }
        let kind = kind_of(view.dtype()).ok_or_else(|| InitError::Dtype {
            path: path.to_owned(),
            name: name.clone(),
            dtype: view.dtype(),
        })?;
        chosen.push((variable, view, found, kind));
    }
    if let Some(name) = unexpected.first() {
        return Err(InitError::Unexpected {
            path: path.to_owned(),
            name: name.clone(),
            count: unexpected.len(),
        });
    }
    let in_file: BTreeSet<&str> = tensors.iter().map(|(name, _)| name.as_str()).collect();
    let missing: Vec<&String> = {
        let mut names: Vec<&String> = variables
            .keys()
            .filter(|name| !skipped(name) && !in_file.contains(name.as_str()))
            .collect();
        names.sort();
        names
    };
    if let Some(name) = missing.first() {
        return Err(InitError::MissingTensor {
            path: path.to_owned(),
            name: (*name).clone(),
            count: missing.len(),
            total: variables.len(),
        });
    }

    tch::no_grad(|| {
        for (variable, view, shape, kind) in &chosen {
            let tensor = Tensor::from_data_size(view.data(), shape, *kind);
            let mut variable = variable.shallow_clone();
            variable.copy_(&tensor);
        }
    });
    let mut skipped: Vec<String> = variables
        .keys()
        .filter(|name| skipped(name))
        .cloned()
        .collect();
    skipped.sort();
    Ok(Loaded {
        loaded: chosen.len(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn net(classes: i64, seed: i64) -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        crate::train::with_seed(seed, || {
            crate::cifar_resnet::ResNet::new(&vs.root(), 8, 3, classes)
        });
        vs
    }

    fn save(vs: &nn::VarStore, path: &Path, extra: &[(&str, Tensor)]) {
        let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        tensors.extend(
            extra
                .iter()
                .map(|(n, t)| ((*n).to_owned(), t.shallow_clone())),
        );
        Tensor::write_safetensors(&tensors, path).unwrap();
    }

    /// [`load`] of the file at `path`, its folder as the root.
    fn load_file(vs: &nn::VarStore, path: &Path, skip: &[String]) -> Result<Loaded, InitError> {
        let name = path.file_name().unwrap().to_str().unwrap();
        load(vs, &DataRoot::new(path.parent().unwrap()), name, skip)
    }

    fn equal(a: &nn::VarStore, b: &nn::VarStore, name: &str) -> bool {
        a.variables()[name].equal(&b.variables()[name])
    }

    #[test]
    fn a_file_sets_every_variable_and_skips_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let source = net(10, 1);
        let counter = Tensor::from_slice(&[7i64]);
        save(&source, &path, &[("bn1.num_batches_tracked", counter)]);

        let target = net(10, 2);
        let loaded = load_file(&target, &path, &[]).unwrap();
        assert_eq!(loaded.loaded, source.variables().len());
        for name in source.variables().keys() {
            assert!(equal(&source, &target, name), "{name}");
        }

        // Another class count: the classifier is refused, named with both shapes ...
        let other = net(5, 3);
        let before = other.variables()["conv1.weight"].copy();
        let err = load_file(&other, &path, &[]).unwrap_err().to_string();
        assert!(err.contains("w.safetensors: tensor `fc.bias` has shape [10], the model's has [5]; add init_skip = [\"fc\"]"), "{err}");
        // ... and nothing was written.
        assert!(other.variables()["conv1.weight"].equal(&before));
        // ... unless skipped: then it keeps its own draw.
        let fc = other.variables()["fc.weight"].copy();
        let loaded = load_file(&other, &path, &["fc".to_owned()]).unwrap();
        assert_eq!(loaded.skipped, ["fc.bias", "fc.weight"]);
        assert!(other.variables()["fc.weight"].equal(&fc));
        assert!(equal(&source, &other, "conv1.weight"));
    }

    #[test]
    fn a_wrong_shape_inside_the_network_is_refused_naming_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let source = net(10, 1);
        let mut tensors: Vec<(String, Tensor)> = source.variables().into_iter().collect();
        for (name, t) in &mut tensors {
            if name == "layer2.0.conv1.weight" {
                *t = t.narrow(0, 0, 16).contiguous();
            }
        }
        Tensor::write_safetensors(&tensors, &path).unwrap();
        let err = load_file(&net(10, 2), &path, &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: tensor `layer2.0.conv1.weight` has shape [16, 16, 3, 3], the model's has [32, 16, 3, 3]",
                path.display()
            )
        );
    }

    #[test]
    fn missing_extra_truncated_and_absent_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let source = net(10, 1);
        let target = net(10, 2);

        let err = load_file(&target, &dir.path().join("none.safetensors"), &[]).unwrap_err();
        assert!(matches!(err, InitError::File(DataError::Missing { .. })));
        assert!(
            err.to_string().contains("none.safetensors: not found"),
            "{err}"
        );

        save(
            &source,
            &path,
            &[("head.extra", Tensor::zeros([2], (Kind::Float, Device::Cpu)))],
        );
        let err = load_file(&target, &path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("tensor `head.extra` is no variable of the model (1 such)"),
            "{err}"
        );

        let mut tensors: Vec<(String, Tensor)> = source.variables().into_iter().collect();
        tensors.retain(|(name, _)| name != "bn1.running_var");
        Tensor::write_safetensors(&tensors, &path).unwrap();
        let err = load_file(&target, &path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("the model's `bn1.running_var` is not in the file (1 of"),
            "{err}"
        );

        save(&source, &path, &[]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let err = load_file(&target, &path, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: not a complete safetensors file",
                path.display()
            )),
            "{err}"
        );
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(matches!(
            load_file(&target, &path, &[]),
            Err(InitError::Malformed { .. })
        ));

        save(&source, &path, &[]);
        let err = load_file(&target, &path, &["fc2".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`fc2` names no variable"), "{err}");
    }

    #[test]
    fn prefixes_end_at_a_dot() {
        assert!(covered("fc.weight", "fc"));
        assert!(covered("fc.weight", "fc.weight"));
        assert!(!covered("fc2.weight", "fc"));
        assert!(covered("layer4.2.conv1.weight", "layer4"));
        assert!(!covered("layer40.conv1.weight", "layer4"));
    }
}
