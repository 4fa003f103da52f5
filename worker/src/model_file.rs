//! A finished job's final weights as a safetensors file: the model the coordinator keeps for
//! its stage-2 jobs, and what `ltsweep model` writes for PyTorch's `safetensors` package.
//!
//! Tensors are named as the network's variables, which are torchvision's names where the
//! architecture matches (`conv1.weight`, `bn1.running_mean`, `layer2.0.conv1.weight`,
//! `fc.weight` `[classes, 64]` and `fc.bias`; a cosine classifier's `fc.weight` is
//! `[64, classes]`, as Cao et al.'s `NormedLinear`). BatchNorm's `num_batches_tracked` is not
//! kept (libtorch's trainer does not count batches). The metadata says what the tensors alone do
//! not: the classifier and a cosine classifier's scale.

use std::borrow::Cow;
use std::collections::HashMap;

use safetensors::SafeTensorError;
use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

/// Metadata keys.
pub const CLASSIFIER: &str = "ltsweep.classifier";
pub const SCALE: &str = "ltsweep.scale";
pub const JOB: &str = "ltsweep.job";

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("not a safetensors file: {0}")]
    Format(String),
    #[error("tensor {name}: {problem}")]
    Tensor { name: String, problem: String },
}

/// A tensor's bytes, copied out of libtorch, as safetensors serialises them.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn owned(name: &str, tensor: &Tensor) -> Result<Owned, ModelFileError> {
    let bad = |problem: String| ModelFileError::Tensor {
        name: name.to_owned(),
        problem,
    };
    let tensor = tensor.to_device(Device::Cpu).contiguous();
    let dtype = match tensor.kind() {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        other => return Err(bad(format!("kind {other:?} is not kept"))),
    };
    let numel = tensor.numel();
    let mut bytes = vec![0u8; numel * tensor.kind().elt_size_in_bytes()];
    tensor
        .f_copy_data_u8(&mut bytes, numel)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Owned {
        dtype,
        shape: tensor.size().iter().map(|&d| d as usize).collect(),
        bytes,
    })
}

/// The named tensors and metadata as safetensors bytes.
pub fn encode(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, ModelFileError> {
    let owned: Vec<(String, Owned)> = tensors
        .iter()
        .map(|(name, tensor)| Ok((name.clone(), owned(name, tensor)?)))
        .collect::<Result<_, ModelFileError>>()?;
    safetensors::tensor::serialize(
        owned.iter().map(|(name, tensor)| (name.as_str(), tensor)),
        &Some(metadata),
    )
    .map_err(|e| ModelFileError::Format(e.to_string()))
}

/// What is wrong with a safetensors file, without quoting it: the JSON error a header may
/// carry quotes the values it found, so only its place is said; a tensor's name (what a
/// well-formed header holds) is cut to 200 characters.
pub fn describe(error: &SafeTensorError) -> String {
    let described = match error {
        SafeTensorError::JsonError(e) => {
            format!("JsonError at line {} column {}", e.line(), e.column())
        }
        other => format!("{other:?}"),
    };
    match described.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &described[..end]),
        None => described,
    }
}

/// The named tensors (on the CPU) and the metadata of safetensors bytes.
#[allow(clippy::type_complexity)]
pub fn decode(
    bytes: &[u8],
) -> Result<(Vec<(String, Tensor)>, HashMap<String, String>), ModelFileError> {
    let format = |e: SafeTensorError| ModelFileError::Format(describe(&e));
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(format)?;
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let tensor = Tensor::try_from(view).map_err(|e| ModelFileError::Tensor {
                name: name.clone(),
                problem: e.to_string(),
            })?;
            Ok((name, tensor))
        })
        .collect::<Result<_, ModelFileError>>()?;
    Ok((tensors, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_and_metadata_round_trip() {
        let a = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::from_slice(&[1.5f64, -2.0]);
        let tensors = vec![
            ("fc.weight".to_owned(), a.shallow_clone()),
            ("x".to_owned(), b.shallow_clone()),
        ];
        let metadata = HashMap::from([(CLASSIFIER.to_owned(), "linear".to_owned())]);
        let bytes = encode(&tensors, metadata.clone()).unwrap();
        let (back, meta) = decode(&bytes).unwrap();
        assert_eq!(meta, metadata);
        let back: HashMap<String, Tensor> = back.into_iter().collect();
        assert!(back["fc.weight"].equal(&a));
        assert!(back["x"].equal(&b));
        assert!(decode(b"not safetensors").is_err());
    }

    #[test]
    fn a_json_error_is_described_by_its_place_alone() {
        let json = serde_json::from_str::<u64>("\"tok3n-s3cret\"").unwrap_err();
        assert!(
            json.to_string().contains("tok3n"),
            "serde_json quotes: {json}"
        );
        let described = describe(&SafeTensorError::JsonError(json));
        assert_eq!(described, "JsonError at line 1 column 14");
        let long = SafeTensorError::TensorNotFound("n".repeat(1_000));
        assert_eq!(describe(&long).chars().count(), 203);
    }
}
