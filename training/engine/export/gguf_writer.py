"""A merged Llama-architecture model (or a GPT-2-style model pretrained in the lab)
written as GGUF with the ``gguf`` library.

What llama.cpp needs from the file, and where it comes from here:

- hyperparameters from ``config.json`` (context length, widths, heads, RoPE base, norm eps);
- tensors under llama.cpp's names (``gguf.TensorNameMap``); GPT-2's Conv1D projections
  transposed to (out, in) and its tied head written out as ``output`` (as llama.cpp's
  converter does); the Llama query and key projections
  reordered from the Hugging Face rotary layout (the two halves of each head) to the
  interleaved pairs llama.cpp's Llama graph rotates (the same reordering llama.cpp's
  converter applies);
- the BPE vocabulary: every token in id order, its type (normal, control for special
  added tokens, user-defined for other added tokens, unused for holes), the merges, the
  pre-tokenizer llama.cpp must split text with before BPE (read from ``tokenizer.json``,
  so that llama.cpp tokenizes exactly as the tokenizer the run trained with);
- bos/eos/unknown/padding ids, whether a BOS is added, and the chat template.

F16 and Q8_0/Q4_0 are written here (``gguf.quants``); a tensor whose rows are not a whole
number of quantization blocks stays F16 (as llama.cpp's converter does). Q4_0 keeps the
token embedding, which the tied output layer shares, at Q8_0. K-quants come from
llama.cpp's own quantizer (:mod:`.quantize`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np
from safetensors import safe_open

from training.engine.export.support import GgufExportError, gguf_config

GgufType = Literal["f16", "q8_0", "q4_0"]
FILE_TYPES = {
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
}
QUANT_TYPES = {
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
}
Progress = Callable[[float, str], None]


def _quiet(fraction: float, stage: str) -> None:
    pass


# -- tokenizer ------------------------------------------------------------------------


def _is_byte_level(step: dict) -> bool:
    return step.get("type") == "ByteLevel"


def pre_tokenizer_type(tokenizer_json: dict) -> str:
    """llama.cpp's name for the pre-tokenizer in ``tokenizer.json`` (``tokenizer.ggml.pre``).

    Recognized: GPT-2's byte-level split (``gpt-2``), single digits split off first and
    then GPT-2's split (``smollm``, as SmolLM's original tokenizer), and Llama 3's split
    regex (``llama-bpe``). Anything else raises: a wrong split would make llama.cpp
    tokenize differently from the model's training.
    """
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    if len(steps) == 1 and _is_byte_level(steps[0]) and steps[0].get("use_regex", True):
        return "gpt-2"
    if (
        len(steps) == 2
        and steps[0].get("type") == "Digits"
        and steps[0].get("individual_digits")
        and _is_byte_level(steps[1])
        and steps[1].get("use_regex", True)
    ):
        return "smollm"
    if (
        len(steps) == 2
        and steps[0].get("type") == "Split"
        and "(?i:'s|'t|'re|'ve|'m|'ll|'d)" in str(steps[0].get("pattern", {}).get("Regex", ""))
        and _is_byte_level(steps[1])
        and not steps[1].get("use_regex", True)
    ):
        return "llama-bpe"
    raise GgufExportError(
        "GGUF export does not know this tokenizer's pre-tokenizer "
        f"({json.dumps(pre)[:200]}); llama.cpp would split text differently"
    )


def vocabulary(model_dir: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """(tokens, token types) for ids 0 … vocab_size-1 from a byte-level BPE tokenizer.json."""
    data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise GgufExportError("GGUF export supports byte-level BPE tokenizers only")
    by_id: dict[int, tuple[str, int]] = {
        i: (text, gguf.TokenType.NORMAL) for text, i in model["vocab"].items()
    }
    for added in data.get("added_tokens", []):
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    if max(by_id) >= vocab_size:
        raise GgufExportError(
            f"the tokenizer has token id {max(by_id)} but the model only {vocab_size} embeddings"
        )
    tokens, types = [], []
    for i in range(vocab_size):
        text, kind = by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED))
        tokens.append(text)
        types.append(int(kind))
    return tokens, types


def _adds_bos(model_dir: Path, bos_id: int | None) -> bool:
    """Whether the tokenizer puts a BOS before a text (its post-processor says so)."""
    data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    post = data.get("post_processor") or {}
    steps = post.get("processors", [post])
    for step in steps:
        single = step.get("single") or []
        if single and "SpecialToken" in single[0]:
            return True
    config = _read_json(model_dir / "tokenizer_config.json")
    return bool(config.get("add_bos_token", False)) and bos_id is not None


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def add_tokenizer(writer: gguf.GGUFWriter, model_dir: Path, vocab_size: int) -> None:
    tokens, types = vocabulary(model_dir, vocab_size)
    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_type(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise GgufExportError("the tokenizer has no BPE merges")
    if "eos" not in special.special_token_ids:
        raise GgufExportError("the tokenizer has no end-of-sequence token")
    if special.chat_template is None:
        raise GgufExportError("the model folder has no chat template")
    special.add_special_token["bos"] = _adds_bos(model_dir, special.special_token_ids.get("bos"))
    special.add_special_token.setdefault("eos", False)
    special.add_to_gguf(writer, quiet=True)


# -- weights --------------------------------------------------------------------------


def rotary_to_interleaved(weight: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a query/key projection reordered per head from the Hugging Face rotary
    layout (first half of a head's dimensions paired with the second half) to
    llama.cpp's, which pairs neighbouring dimensions."""
    rows = weight.shape[0]
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _encode(name: str, data: np.ndarray, gguf_type: GgufType) -> tuple[np.ndarray, Any]:
    """(array, raw dtype) of one tensor in the file's type."""
    if data.ndim == 1:
        return data.astype(np.float32), None  # norms stay F32, as in llama.cpp
    qtype = QUANT_TYPES.get(gguf_type)
    if gguf_type == "q4_0" and name == "token_embd.weight":
        qtype = gguf.GGMLQuantizationType.Q8_0
    if qtype is not None:
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        if data.shape[-1] % block == 0:
            return gguf.quants.quantize(data.astype(np.float32), qtype), qtype
    return data.astype(np.float16), None


def _hyperparameters(writer: gguf.GGUFWriter, config: dict, name: str, gguf_type: GgufType):
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(float(theta))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(FILE_TYPES[gguf_type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _gpt2_hyperparameters(writer: gguf.GGUFWriter, config: dict, name: str, gguf_type: GgufType):
    """GPT-2's keys, as llama.cpp's converter writes them (learned positions, LayerNorm)."""
    width = config["n_embd"]
    writer.add_name(name)
    writer.add_context_length(config["n_positions"])
    writer.add_embedding_length(width)
    writer.add_block_count(config["n_layer"])
    writer.add_feed_forward_length(config.get("n_inner") or 4 * width)
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config.get("layer_norm_epsilon", 1e-5))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(FILE_TYPES[gguf_type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


# Hugging Face's GPT-2 keeps these projections as Conv1D, (in, out): GGUF wants (out, in).
GPT2_CONV1D = (
    ".attn.c_attn.weight",
    ".attn.c_proj.weight",
    ".mlp.c_fc.weight",
    ".mlp.c_proj.weight",
)


def _tensors(model_dir: Path):
    """(key, float32 array) of every weight in the folder's safetensors files."""
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as tensors:
            for key in tensors.keys():  # noqa: SIM118 (safe_open has no __iter__)
                yield key, tensors.get_tensor(key).float().numpy()


def _count(model_dir: Path) -> int:
    count = 0
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as tensors:
            count += len(list(tensors.keys()))
    return count


def _write_gpt2(writer: gguf.GGUFWriter, model_dir: Path, config: dict, gguf_type, progress):
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config["n_layer"])
    count, done, head = _count(model_dir), 0, False
    embedding = None
    for key, data in _tensors(model_dir):
        done += 1
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers of old checkpoints, not weights
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise GgufExportError(f"no GGUF name for the tensor {key}")
        if key.endswith(GPT2_CONV1D):
            data = np.ascontiguousarray(data.T)
        if target == "token_embd.weight":
            embedding = data
        head = head or target == "output.weight"
        array, raw_dtype = _encode(target, data, gguf_type)
        writer.add_tensor(target, array, raw_dtype=raw_dtype)
        progress(0.8 * done / count, f"converting {target}")
    if not head and embedding is not None:  # a tied head: llama.cpp's GPT-2 reads output
        array, raw_dtype = _encode("output.weight", embedding, gguf_type)
        writer.add_tensor("output.weight", array, raw_dtype=raw_dtype)


def write_gguf(
    model_dir: Path,
    out_path: Path,
    gguf_type: GgufType,
    name: str = "",
    progress: Progress = _quiet,
) -> Path:
    """Write the Hugging Face model folder ``model_dir`` as ``out_path`` (F16/Q8_0/Q4_0)."""
    model_dir, out_path = Path(model_dir), Path(out_path)
    if gguf_type not in FILE_TYPES:
        raise GgufExportError(f"unknown GGUF type {gguf_type!r}: expected f16, q8_0 or q4_0")
    config = gguf_config(model_dir)
    if "GPT2LMHeadModel" in config.get("architectures", []):
        writer = gguf.GGUFWriter(out_path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
        _gpt2_hyperparameters(writer, config, name or model_dir.name, gguf_type)
        add_tokenizer(writer, model_dir, config["vocab_size"])
        _write_gpt2(writer, model_dir, config, gguf_type, progress)
        return _finish(writer, out_path, progress)
    blocks = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    writer = gguf.GGUFWriter(out_path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _hyperparameters(writer, config, name or model_dir.name, gguf_type)
    add_tokenizer(writer, model_dir, config["vocab_size"])
    files = sorted(model_dir.glob("*.safetensors"))
    count = 0
    for file in files:
        with safe_open(file, framework="pt") as tensors:
            count += len(list(tensors.keys()))
    tied = config.get("tie_word_embeddings", False)
    done = 0
    for file in files:
        with safe_open(file, framework="pt") as tensors:
            for key in tensors.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if tied and key == "lm_head.weight":
                    done += 1
                    continue
                target = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise GgufExportError(f"no GGUF name for the tensor {key}")
                data = tensors.get_tensor(key).float().numpy()
                if key.endswith("q_proj.weight"):
                    data = rotary_to_interleaved(data, heads)
                elif key.endswith("k_proj.weight"):
                    data = rotary_to_interleaved(data, kv_heads)
                array, raw_dtype = _encode(target, data, gguf_type)
                writer.add_tensor(target, array, raw_dtype=raw_dtype)
                done += 1
                progress(0.8 * done / count, f"converting {target}")
    return _finish(writer, out_path, progress)


def _finish(writer: gguf.GGUFWriter, out_path: Path, progress: Progress) -> Path:
    progress(0.85, "writing the GGUF file")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    progress(1.0, "GGUF written")
    return out_path


def read_metadata(path: Path) -> dict[str, Any]:
    """The GGUF file's key/values that describe its tokenizer and model (not the arrays)."""
    reader = gguf.GGUFReader(Path(path))
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            out[key] = len(field.data)
            continue
        try:
            out[key] = field.contents()
        except Exception:  # a type the reader cannot decode: not one we read
            continue
    out["tensor_types"] = sorted({t.tensor_type.name for t in reader.tensors})
    return out
