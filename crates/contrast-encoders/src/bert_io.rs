//! Reading and writing BERT checkpoints in the Hugging Face layout (`config.json` +
//! `model.safetensors`), so that models move between `contrast`, `transformers` and
//! `sentence-transformers` unchanged.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use contrast_core::{EncoderConfig, Error};
use serde::Deserialize;

use crate::bert::{Bert, BertConfig, BertPooling};

/// Hugging Face names -> this crate's parameter paths, applied in order. Layer norms'
/// `weight`/`bias` -> `gamma`/`beta` and the linear layers' transposition are the adapter's.
const FROM_HF: [(&str, &str); 8] = [
    (r"^bert\.", ""),
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
        "encoder.layer.$1.$2.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
        "encoder.layer.$1.attention_output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
        "encoder.layer.$1.attention_norm.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.dense\.",
        "encoder.layer.$1.intermediate.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.dense\.",
        "encoder.layer.$1.output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.",
        "encoder.layer.$1.output_norm.",
    ),
];

/// This crate's parameter paths -> Hugging Face names (the inverse of [`FROM_HF`], without the
/// optional `bert.` prefix: `BertModel` checkpoints have none).
const TO_HF: [(&str, &str); 7] = [
    (r"^embeddings\.layer_norm\.", "embeddings.LayerNorm."),
    (
        r"^encoder\.layer\.(\d+)\.(query|key|value)\.",
        "encoder.layer.$1.attention.self.$2.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention_output\.",
        "encoder.layer.$1.attention.output.dense.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention_norm\.",
        "encoder.layer.$1.attention.output.LayerNorm.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.",
        "encoder.layer.$1.intermediate.dense.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.",
        "encoder.layer.$1.output.dense.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output_norm\.",
        "encoder.layer.$1.output.LayerNorm.",
    ),
];

/// The weight file of a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The `config.json` fields [`read_bert_config`] reads; everything else is ignored.
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "bert_eps")]
    layer_norm_eps: f64,
    #[serde(default = "tenth")]
    hidden_dropout_prob: f64,
    #[serde(default = "tenth")]
    attention_probs_dropout_prob: f64,
    #[serde(default = "gelu")]
    hidden_act: String,
    position_embedding_type: Option<String>,
}

fn two() -> usize {
    2
}
fn bert_eps() -> f64 {
    1e-12
}
fn tenth() -> f64 {
    0.1
}
fn gelu() -> String {
    "gelu".into()
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a checkpoint folder's `config.json` into a [`BertConfig`] with `pooling`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::InvalidFile`] when it is not JSON,
/// lacks a field, or describes another architecture (only BERT with exact GELU and absolute
/// positions is supported); [`Error::InvalidConfig`] for impossible values.
pub fn read_bert_config(dir: &Path, pooling: BertPooling) -> Result<BertConfig, Error> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let hf: HfConfig = serde_json::from_str(&text)
        .map_err(|e| invalid(&path, format!("not a BERT config: {e}")))?;
    let arch = hf
        .model_type
        .clone()
        .or_else(|| hf.architectures.as_ref().and_then(|a| a.first().cloned()))
        .unwrap_or_default();
    if !arch.to_ascii_lowercase().starts_with("bert") {
        return Err(invalid(
            &path,
            format!("architecture `{arch}` is not supported (model_type must be `bert`)"),
        ));
    }
    if hf.hidden_act != "gelu" {
        return Err(invalid(
            &path,
            format!(
                "hidden_act `{}` is not supported (only `gelu`)",
                hf.hidden_act
            ),
        ));
    }
    if let Some(p) = hf
        .position_embedding_type
        .as_deref()
        .filter(|&p| p != "absolute")
    {
        return Err(invalid(
            &path,
            format!("position_embedding_type `{p}` is not supported (only `absolute`)"),
        ));
    }
    let config = BertConfig::new(hf.vocab_size)
        .with_hidden_size(hf.hidden_size)
        .with_num_hidden_layers(hf.num_hidden_layers)
        .with_num_attention_heads(hf.num_attention_heads)
        .with_intermediate_size(hf.intermediate_size)
        .with_max_position_embeddings(hf.max_position_embeddings)
        .with_type_vocab_size(hf.type_vocab_size)
        .with_layer_norm_eps(hf.layer_norm_eps)
        .with_hidden_dropout_prob(hf.hidden_dropout_prob)
        .with_attention_probs_dropout_prob(hf.attention_probs_dropout_prob)
        .with_pooling(pooling);
    config.validate()?;
    Ok(config)
}

/// Loads a BERT checkpoint folder (`config.json` + `model.safetensors`, from `transformers`
/// or `sentence-transformers`, with or without the `bert.` prefix) onto `device`.
///
/// Tensors the encoder does not use (the pretrained pooler, masked-LM heads) are ignored.
///
/// # Errors
/// As [`read_bert_config`]; [`Error::InvalidFile`] naming the first missing tensor, the first
/// tensor of the wrong shape, or why the weight file cannot be read.
pub fn load_bert<B: Backend>(
    dir: &Path,
    pooling: BertPooling,
    device: &B::Device,
) -> Result<(Bert<B>, BertConfig), Error> {
    let config = read_bert_config(dir, pooling)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(invalid(
            dir,
            format!("no {WEIGHTS_FILE} (only safetensors checkpoints are supported)"),
        ));
    }
    let mut bert = config.init::<B>(device);
    let mut store = SafetensorsStore::from_file(&weights)
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false);
    for (from, to) in FROM_HF {
        store = store.with_key_remapping(from, to);
    }
    let result = bert
        .load_from(&mut store)
        .map_err(|e| invalid(&weights, format!("cannot read tensors: {e}")))?;
    if let Some(e) = result.errors.first() {
        return Err(invalid(&weights, format!("{e}")));
    }
    if let Some((path, _)) = result.missing.first() {
        return Err(invalid(
            &weights,
            format!(
                "tensor for `{path}` is missing ({} missing in all)",
                result.missing.len()
            ),
        ));
    }
    Ok((bert, config))
}

/// Files of a checkpoint folder that hold weights: [`save_bert`] writes its own and copies the
/// rest (configuration, tokenizer, sentence-transformers modules).
fn is_weight_file(name: &str) -> bool {
    [
        ".safetensors",
        ".bin",
        ".h5",
        ".msgpack",
        ".onnx",
        ".ot",
        ".pt",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            if name != "onnx" && name != "openvino" {
                copy_tree(&src, &dst)?;
            }
        } else if !is_weight_file(&name.to_string_lossy()) {
            std::fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

/// Writes `bert` as a Hugging Face checkpoint folder `out`: the weights as
/// `model.safetensors` (`BertModel` names, PyTorch layouts), and every other file of the
/// folder it was loaded from (`config.json`, tokenizer, sentence-transformers modules), so
/// that `transformers` and `sentence-transformers` load it unchanged.
///
/// The weights are written to a temporary file first and renamed into place, so an
/// interrupted export never leaves a truncated `model.safetensors`.
///
/// # Errors
/// [`Error::Io`] when a file cannot be written; [`Error::InvalidFile`] when `out` is `source`
/// (that would replace the original weights).
pub fn save_bert<B: Backend>(bert: &Bert<B>, source: &Path, out: &Path) -> Result<PathBuf, Error> {
    let same = matches!(
        (out.canonicalize(), source.canonicalize()),
        (Ok(a), Ok(b)) if a == b
    );
    if same {
        return Err(invalid(
            out,
            "export folder is the checkpoint it was loaded from; choose another",
        ));
    }
    copy_tree(source, out)?;
    let weights = out.join(WEIGHTS_FILE);
    let partial = out.join(format!("{WEIGHTS_FILE}.partial"));
    let mut store = SafetensorsStore::from_file(&partial)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("format", "pt");
    for (from, to) in TO_HF {
        store = store.with_key_remapping(from, to);
    }
    bert.save_into(&mut store)
        .map_err(|e| invalid(&partial, format!("cannot write tensors: {e}")))?;
    let source_weights = source.join(WEIGHTS_FILE);
    if source_weights.is_file() {
        carry_over(&source_weights, &partial)?;
    }
    std::fs::rename(&partial, &weights).map_err(|source| Error::Io {
        path: weights.clone(),
        source,
    })?;
    Ok(weights)
}

/// Adds to the weight file `into` the tensors of `source` that the encoder does not hold (the
/// pretrained pooler, buffers such as `position_ids`), unchanged, so that `transformers` finds
/// every tensor it expects and initialises nothing at random.
fn carry_over(source: &Path, into: &Path) -> Result<(), Error> {
    use safetensors::SafeTensors;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let (old, new) = (read(source)?, read(into)?);
    let old_tensors = SafeTensors::deserialize(&old)
        .map_err(|e| invalid(source, format!("not safetensors: {e}")))?;
    let new_tensors = SafeTensors::deserialize(&new)
        .map_err(|e| invalid(into, format!("not safetensors: {e}")))?;
    let ours: std::collections::HashSet<String> = new_tensors
        .names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut all = new_tensors.tensors();
    let before = all.len();
    all.extend(
        old_tensors
            .tensors()
            .into_iter()
            .filter_map(|(name, view)| {
                // Pre-training heads of `BertForPreTraining` checkpoints are not `BertModel`'s; their
                // encoder tensors carry a `bert.` prefix that `BertModel` names do not.
                if name.starts_with("cls.") {
                    return None;
                }
                let bare = name.strip_prefix("bert.").unwrap_or(&name).to_string();
                (!ours.contains(&bare)).then_some((bare, view))
            }),
    );
    if all.len() == before {
        return Ok(());
    }
    let (_, metadata) = SafeTensors::read_metadata(&new)
        .map_err(|e| invalid(into, format!("not safetensors: {e}")))?;
    let merged = into.with_extension("merged");
    safetensors::serialize_to_file(all, metadata.metadata().clone(), &merged)
        .map_err(|e| invalid(&merged, format!("cannot write tensors: {e}")))?;
    std::fs::rename(&merged, into).map_err(|source| Error::Io {
        path: into.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    // The plain backend: no autodiff, so dropout is off and embeddings are deterministic.
    use burn::backend::Flex;
    use contrast_core::testing::TempDir;
    use contrast_core::{Encoder, HostTokens, TokenBatch, to_vec_f32};

    fn config_json(model_type: &str) -> String {
        format!(
            r#"{{"model_type": "{model_type}", "vocab_size": 40, "hidden_size": 8,
                "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 10, "layer_norm_eps": 1e-12}}"#
        )
    }

    fn temp(name: &str) -> TempDir {
        TempDir::new(&format!("bert-{name}"))
    }

    fn batch(device: &burn::tensor::Device<Flex>) -> TokenBatch<Flex> {
        let host = HostTokens {
            ids: vec![1, 5, 7, 2, 1, 9, 2, 0],
            type_ids: vec![0; 8],
            mask: vec![1, 1, 1, 1, 1, 1, 1, 0],
            batch: 2,
            seq_len: 4,
            pad_id: 0,
        };
        TokenBatch::from_host(&host, device)
    }

    #[test]
    fn save_then_load_gives_the_same_embeddings_and_hugging_face_names() {
        let device = Default::default();
        let source = temp("source");
        std::fs::write(source.join("config.json"), config_json("bert")).unwrap();
        std::fs::write(source.join("vocab.txt"), "[PAD]\n").unwrap();
        let config = read_bert_config(&source, BertPooling::Mean).unwrap();
        let bert = config.init::<Flex>(&device);
        let out = temp("out");
        save_bert(&bert, &source, &out).unwrap();
        assert!(out.join("vocab.txt").is_file(), "other files are copied");
        let bytes = std::fs::read(out.join(WEIGHTS_FILE)).unwrap();
        let header = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_string();
        for name in [
            "embeddings.LayerNorm.weight",
            "encoder.layer.1.attention.self.query.weight",
            "encoder.layer.0.attention.output.dense.bias",
            "encoder.layer.0.output.LayerNorm.bias",
        ] {
            assert!(header.contains(name), "{name} not in the exported header");
        }
        let (loaded, _) = load_bert::<Flex>(&out, BertPooling::Mean, &device).unwrap();
        assert_eq!(
            to_vec_f32(bert.embed(batch(&device))),
            to_vec_f32(loaded.embed(batch(&device)))
        );
        assert!(
            save_bert(&bert, &out, &out).is_err(),
            "never overwrite the source"
        );
    }

    #[test]
    fn bad_checkpoints_give_one_line_errors() {
        let device = Default::default();
        let dir = temp("bad");
        let err = load_bert::<Flex>(&dir, BertPooling::Cls, &device).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(dir.join("config.json"), config_json("gpt2")).unwrap();
        let err = load_bert::<Flex>(&dir, BertPooling::Cls, &device).unwrap_err();
        assert!(err.to_string().contains("gpt2"), "{err}");
        std::fs::write(dir.join("config.json"), config_json("bert")).unwrap();
        let err = load_bert::<Flex>(&dir, BertPooling::Cls, &device).unwrap_err();
        assert!(err.to_string().contains("model.safetensors"), "{err}");
        std::fs::write(dir.join(WEIGHTS_FILE), b"not safetensors").unwrap();
        let err = load_bert::<Flex>(&dir, BertPooling::Cls, &device).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");

        // A checkpoint of a wider model: the first mis-shaped tensor is named.
        let wide = temp("wide");
        std::fs::write(
            wide.join("config.json"),
            config_json("bert").replace("\"hidden_size\": 8", "\"hidden_size\": 4"),
        )
        .unwrap();
        let small = read_bert_config(&wide, BertPooling::Cls).unwrap();
        save_bert(&small.init::<Flex>(&device), &wide, &dir).unwrap();
        std::fs::write(dir.join("config.json"), config_json("bert")).unwrap();
        let err = load_bert::<Flex>(&dir, BertPooling::Cls, &device).unwrap_err();
        assert!(err.to_string().to_lowercase().contains("shape"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
