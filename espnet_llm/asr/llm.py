"""Load a Hugging Face causal LM from a local directory, frozen, with LoRA adapters (peft), or fully trainable.

Only local directories are read (``local_files_only=True``): a name that is not a directory fails with an error
naming it instead of reaching for the Hub. ``trust_remote_code`` stays off unless asked for.

LoRA targets: by default (``target_modules: null``) peft's own choice for the architecture (its
``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``: ``q_proj``/``v_proj`` for Llama and Qwen2, ``c_attn`` for
GPT-2, ...), and every linear layer but the output head (peft's ``"all-linear"``) for an architecture peft does not
know; a YAML may still name them.

``llm_fingerprint`` names an LLM directory's identity (its config and its weight files), so that a speech LLM,
whose checkpoints hold only what it trained, is never resumed or decoded on another base LLM.
"""
import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch

TUNINGS = ("frozen", "lora", "full")
DEFAULT_LORA = dict(r=8, alpha=16, dropout=0.05, target_modules=None)
_BOOKKEEPING_KEYS = ("_name_or_path", "transformers_version", "architectures_version")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_EDGE_BYTES = 1 << 20

logger = logging.getLogger(__name__)


def check_llm_dir(name_or_path: Union[str, Path]) -> Path:
    """The directory as a Path; FileNotFoundError naming it if it is not a Hugging Face model directory."""
    path = Path(name_or_path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"LLM directory '{path}' does not exist (only local directories are read; "
            "prepare it first, e.g. with espnet_llm.bin.llm_prepare)"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"LLM directory '{path}' has no config.json: not a Hugging Face model directory")
    return path


def llm_fingerprint(name_or_path: Union[str, Path]) -> str:
    """sha256 (hex) of an LLM directory's identity: config.json (less bookkeeping keys such as ``_name_or_path``) and,
    per weight file, its name, size and first and last MiB. Cheap for any size, and different for another model,
    another checkpoint of one model or another precision."""
    path = check_llm_dir(name_or_path)
    digest = hashlib.sha256()
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RuntimeError(f"LLM directory '{path}': cannot read config.json: {e}") from e
    for key in _BOOKKEEPING_KEYS:
        config.pop(key, None)
    digest.update(json.dumps(config, sort_keys=True).encode())
    for weights in sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with open(weights, "rb") as f:
            digest.update(f.read(_EDGE_BYTES))
            if size > 2 * _EDGE_BYTES:
                f.seek(size - _EDGE_BYTES)
                digest.update(f.read(_EDGE_BYTES))
    return digest.hexdigest()


def lora_target_modules(model: torch.nn.Module, target_modules=None):
    """The YAML's targets if given, else peft's per-architecture choice, else peft's "all-linear"."""
    if target_modules:
        return target_modules if isinstance(target_modules, str) else list(target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(getattr(model.config, "model_type", None))
    return list(known) if known else "all-linear"


def load_tokenizer(name_or_path: Union[str, Path], trust_remote_code: bool = False):
    """The LLM's own tokenizer from its local directory."""
    from transformers import AutoTokenizer

    path = check_llm_dir(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers raises many types (OSError, ValueError, JSON errors)
        raise RuntimeError(f"cannot load the tokenizer of LLM directory '{path}': {e}") from e


def load_causal_lm(
    name_or_path: Union[str, Path],
    tuning: str = "frozen",
    lora_conf: Optional[Dict] = None,
    dtype: Union[str, torch.dtype] = "float32",
    trust_remote_code: bool = False,
) -> torch.nn.Module:
    """``AutoModelForCausalLM`` from a local directory, prepared for ``tuning``.

    Args:
        name_or_path: local Hugging Face model directory.
        tuning: "frozen" (no parameter trainable), "lora" (peft LoRA adapters only), "full" (all trainable).
        lora_conf: dict(r, alpha, dropout, target_modules); missing keys take ``DEFAULT_LORA``. Only for "lora".
            ``target_modules`` None: see ``lora_target_modules``.
        dtype: dtype the weights are loaded in ("float32", "bfloat16", ...).
        trust_remote_code: allow the directory's own modelling code (off unless asked).

    Returns:
        A transformers ``PreTrainedModel`` ("frozen", "full") or a peft ``PeftModel`` ("lora").
    """
    from transformers import AutoModelForCausalLM

    if tuning not in TUNINGS:
        raise ValueError(f"tuning must be one of {TUNINGS}, got '{tuning}'")
    if lora_conf and tuning != "lora":
        logger.warning(f"lora_conf is ignored with tuning='{tuning}'")
    path = check_llm_dir(name_or_path)
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except Exception as e:
        raise RuntimeError(f"cannot load a causal LM from LLM directory '{path}': {e}") from e

    if tuning == "frozen":
        model.requires_grad_(False)
    elif tuning == "full":
        model.requires_grad_(True)
    else:
        from peft import LoraConfig, get_peft_model

        conf = {**DEFAULT_LORA, **(lora_conf or {})}
        unknown = set(conf) - set(DEFAULT_LORA)
        if unknown:
            raise ValueError(f"unknown lora_conf keys {sorted(unknown)}; expected {sorted(DEFAULT_LORA)}")
        config = LoraConfig(
            r=conf["r"],
            lora_alpha=conf["alpha"],
            lora_dropout=conf["dropout"],
            target_modules=lora_target_modules(model, conf["target_modules"]),
            task_type="CAUSAL_LM",
        )
        logger.info(f"LoRA r={conf['r']} on {config.target_modules}")
        model = get_peft_model(model, config)  # freezes the base model, adapters trainable
    return model


def trainable_names(model: torch.nn.Module) -> Sequence[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def merge_lora_and_save(
    model: torch.nn.Module, out_dir: Union[str, Path], tokenizer_dir: Optional[Union[str, Path]] = None
) -> Path:
    """Save a plain Hugging Face directory (weights + config + tokenizer) with the LoRA adapters merged in.

    ``model`` is left untouched (the merge runs on a deep copy). A model without adapters is saved as it is.
    The tokenizer is copied from ``tokenizer_dir`` (default: the directory the model was loaded from).
    """
    from peft import PeftModel

    out_dir = Path(out_dir)
    if isinstance(model, PeftModel):
        merged = copy.deepcopy(model).merge_and_unload()
    else:
        merged = model
    source = tokenizer_dir or merged.config._name_or_path
    merged.save_pretrained(str(out_dir))
    load_tokenizer(source).save_pretrained(str(out_dir))
    return out_dir
