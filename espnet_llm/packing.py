"""Packed models: one archive per trained system (speech LLM or ESPnet AM) that decodes from any directory.

The archive is ESPnet's own packing format (``espnet2.main_funcs.pack_funcs``): a zip or tar(.gz, .bz2, .xz)
written with ESPnet's ``Archiver``, with ``meta.yaml`` at its root naming the decoder's files as ESPnet does
(``yaml_files: {asr_train_config: config.yaml}``, ``files: {asr_model_file: <model>.pth}``). Every path in the
packed ``config.yaml`` is relative to the archive root::

    meta.yaml             ESPnet's keys, plus espnet_llm: {kind, llm, exp_dir, dropped}
    config.yaml           the training config; paths rewritten as below, training-only paths dropped
    valid.acc.ave.pth     the model file (its own name)
    llm/                  speech LLM: llm_conf.name_or_path. --llm copy: the base LLM dir as it is, the LoRA
                          weights stay in the model file; --llm merged: the LoRA adapters merged into a full
                          Hugging Face dir (llm_conf.tuning becomes frozen, the model file loses the LLM weights)
    encoder/              speech LLM: encoder_conf.model_dir (the Whisper encoder's Hugging Face dir)
    feats_stats.npz       normalize_conf.stats_file (global_mvn only)
    ctc_vocab.txt         speech LLM: ctc_vocab (the CTC head's LLM token ids)
    tokens.txt, bpe.model AM: token_list (when it is a file; ESPnet usually inlines the list), bpemodel
    non_linguistic_symbols.txt  AM: non_linguistic_symbols

Dropped (set to their empty value, the old values kept in meta.yaml): the training data, shape files, init_param,
output_dir, config, and the augmentation lists rir_scp / noise_scp (training only). A config that still names an
existing file or directory elsewhere is an error that names the key.

An AM archive is plain ESPnet: ``espnet2.main_funcs.pack_funcs.unpack(archive, out_dir)`` returns
``asr_train_config`` and ``asr_model_file`` for ``espnet2.bin.asr_inference.Speech2Text``. ESPnet's unpack only
rewrites file paths; the speech LLM's directories are resolved by ``locate`` (which unpacks into a cache dir
keyed by the archive's SHA-256, ``$ESPNET_LLM_CACHE`` or ``~/.cache/espnet_llm/packed``).

Experiment dirs hold paths relative to their recipe dir (``exp/llm/smollm2-135m``); ``locate`` resolves each
against the current directory, then against the recipe dir the exp dir lives in (the parent of ``exp/``).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import yaml

logger = logging.getLogger(__name__)

# model files an ESPnet exp dir may hold, in order of preference
MODEL_FILES = ("valid.acc.ave.pth", "valid.acc.best.pth", "valid.loss.ave.pth", "valid.loss.best.pth", "latest.pth")
KINDS = ("speech_llm", "asr")
LLM_MODES = ("copy", "merged")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz")
META = "meta.yaml"
CONFIG = "config.yaml"

# (key path in config.yaml, name in the archive) of every path a model's build reads
PATH_KEYS = {
    "speech_llm": (
        (("llm_conf", "name_or_path"), "llm"),
        (("encoder_conf", "model_dir"), "encoder"),
        (("normalize_conf", "stats_file"), "feats_stats.npz"),
        (("ctc_vocab",), "ctc_vocab.txt"),
    ),
    "asr": (
        (("token_list",), "tokens.txt"),
        (("bpemodel",), "bpe.model"),
        (("normalize_conf", "stats_file"), "feats_stats.npz"),
        (("non_linguistic_symbols",), "non_linguistic_symbols.txt"),
    ),
}
# training-only paths and the value a packed config gets instead
TRAINING_ONLY = {
    "config": None,
    "output_dir": None,
    "train_data_path_and_name_and_type": [],
    "valid_data_path_and_name_and_type": [],
    "train_shape_file": [],
    "valid_shape_file": [],
    "init_param": [],
    "rir_scp": None,
    "noise_scp": None,
}


class PackError(ValueError):
    """An exp dir or archive that cannot be packed or loaded; the message names the file."""


@dataclass
class ModelFiles:
    """A trained system found on disk: its config with every path it reads made absolute, and its model file."""

    kind: str  # one of KINDS
    config: dict  # resolved: the known path keys absolute
    config_file: Path  # where the config was read
    model_file: Path
    root: Path  # exp dir, or the unpacked archive
    meta: dict = field(default_factory=dict)  # meta.yaml of an archive, {} for an exp dir


def find_model_files(exp_dir: Union[str, Path]) -> Tuple[Path, Path]:
    """(config.yaml, model file) of an ESPnet experiment directory."""
    exp_dir = Path(exp_dir)
    config = exp_dir / CONFIG
    if not config.is_file():
        raise FileNotFoundError(f"{exp_dir} has no config.yaml: not a trained experiment directory")
    for name in MODEL_FILES:
        if (exp_dir / name).exists():
            return config, exp_dir / name
    raise FileNotFoundError(f"{exp_dir} has none of the model files {', '.join(MODEL_FILES)}")


def is_archive(path: Union[str, Path]) -> bool:
    name = Path(path).name
    return any(name.endswith(s) for s in ARCHIVE_SUFFIXES)


def read_config(path: Union[str, Path]) -> dict:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise PackError(f"cannot read {path}: {e}") from e
    if not isinstance(config, dict):
        raise PackError(f"{path} is not an ESPnet training config (a YAML mapping)")
    return config


def model_kind(config: dict, where: Union[str, Path]) -> str:
    """``speech_llm`` (LLMASRTask: has llm_conf) or ``asr`` (ESPnet's ASRTask: token_list, decoder)."""
    if "llm_conf" in config:
        return "speech_llm"
    if "token_list" in config and "decoder" in config:
        return "asr"
    raise PackError(f"{where}: neither a speech LLM config (no llm_conf) nor an ESPnet ASR config (no token_list)")


def recipe_dir(exp_dir: Union[str, Path]) -> Path:
    """The recipe dir an exp dir lives in: the parent of the nearest ``exp`` above it, else its grandparent."""
    exp_dir = Path(os.path.abspath(exp_dir))
    for parent in exp_dir.parents:
        if parent.name == "exp":
            return parent.parent
    return exp_dir.parent.parent


def _get(config: dict, keys: Sequence[str]):
    value = config
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _set(config: dict, keys: Sequence[str], value) -> None:
    for key in keys[:-1]:
        config = config[key]
    config[keys[-1]] = value


def used_path_keys(config: dict, kind: str) -> Iterator[Tuple[Tuple[str, ...], str, str]]:
    """(key path, archive name, value) of each path the model's build reads (a token list given inline is no path;
    stats_file only with global_mvn)."""
    for keys, name in PATH_KEYS[kind]:
        value = _get(config, keys)
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            continue
        if keys == ("normalize_conf", "stats_file") and config.get("normalize") != "global_mvn":
            continue
        yield keys, name, os.fspath(value)


def resolve_config(config: dict, kind: str, roots: Sequence[Optional[Path]], where: Union[str, Path]) -> dict:
    """A copy of ``config`` whose path keys are absolute: each relative path is taken from the first of ``roots``
    (None: the current directory) where it exists. A path found in none is a FileNotFoundError naming the key."""
    config = copy.deepcopy(config)
    for keys, _, value in used_path_keys(config, kind):
        if os.path.isabs(value):
            candidates = [Path(value)]
        else:
            candidates = [Path(os.path.abspath(value)) if root is None else root / value for root in roots]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            looked = ", ".join(str(c) for c in candidates)
            raise FileNotFoundError(f"{where}: {'.'.join(keys)} = {value} does not exist (looked for {looked})")
        _set(config, keys, str(found))
    return config


def locate(
    model: Optional[Union[str, Path]] = None,
    asr_train_config: Optional[Union[str, Path]] = None,
    asr_model_file: Optional[Union[str, Path]] = None,
    cache_dir: Optional[Union[str, Path]] = None,
) -> ModelFiles:
    """Find a trained system: ``model`` is an exp dir or a packed archive (``asr_model_file`` may then name another
    model file of the exp dir, or a path); or give ``asr_train_config`` and/or ``asr_model_file`` alone."""
    meta: dict = {}
    if model is not None:
        path = Path(model)
        if path.is_dir():
            config_file, model_file = find_model_files(path)
            if asr_model_file is not None:
                model_file = path / asr_model_file if (path / asr_model_file).exists() else Path(asr_model_file)
            root, roots = path, [None, recipe_dir(path)]
        elif path.is_file():
            root = unpack_archive(path, cache_dir)
            meta = read_config(root / META)
            try:
                config_file = root / meta["yaml_files"]["asr_train_config"]
                model_file = root / meta["files"]["asr_model_file"]
            except (KeyError, TypeError):
                raise PackError(f"{path}: meta.yaml names no asr_train_config / asr_model_file") from None
            roots = [root]
        else:
            raise FileNotFoundError(f"{path}: no such exp dir or packed model archive")
    else:
        if asr_model_file is None and asr_train_config is None:
            raise ValueError("give an exp dir or archive, or asr_train_config and asr_model_file")
        model_file = Path(asr_model_file) if asr_model_file is not None else None
        config_file = Path(asr_train_config) if asr_train_config is not None else model_file.parent / CONFIG
        if model_file is None:
            _, model_file = find_model_files(config_file.parent)
        root, roots = config_file.parent, [None, recipe_dir(config_file.parent)]
    if not model_file.is_file():
        raise FileNotFoundError(f"model file {model_file} does not exist")
    config = read_config(config_file)
    kind = model_kind(config, config_file)
    return ModelFiles(kind, resolve_config(config, kind, roots, config_file), config_file, model_file, root, meta)


def write_config(config: dict, path: Union[str, Path]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return Path(path)


# ----------------------------------------------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------------------------------------------
def _files_under(path: Path) -> List[Path]:
    """Regular files of a directory (links followed), hidden names left out, sorted; or the file itself."""
    if path.is_file():
        return [path]
    out = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def _leftover_paths(value, roots: Sequence[Optional[Path]], keys: Tuple[str, ...] = ()) -> Iterator[str]:
    """Key paths of strings that name an existing file or directory (from any of ``roots``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leftover_paths(v, roots, keys + (str(k),))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _leftover_paths(v, roots, keys + (str(i),))
    elif isinstance(value, str) and ("/" in value or os.sep in value):
        candidates = [Path(value)] if os.path.isabs(value) else [Path(value) if r is None else r / value for r in roots]
        if any(c.exists() for c in candidates):
            yield ".".join(keys)


def pack(
    exp_dir: Union[str, Path],
    out: Union[str, Path],
    model_file: Optional[Union[str, Path]] = None,
    llm: str = "copy",
) -> Path:
    """Write the archive ``out`` (zip, tar, tar.gz, ...; ESPnet's Archiver) of exp dir ``exp_dir``.

    ``model_file``: a model file name in the exp dir or a path (default: the first of MODEL_FILES there).
    ``llm`` (speech LLM only): ``copy`` ships the base LLM dir and keeps the LoRA weights in the model file;
    ``merged`` merges the LoRA adapters into a full Hugging Face dir (loads the model; needs torch).
    """
    from espnet2.main_funcs.pack_funcs import Archiver

    if llm not in LLM_MODES:
        raise ValueError(f"llm must be one of {LLM_MODES}, got {llm!r}")
    out = Path(out)
    if not is_archive(out):
        raise PackError(f"{out}: the archive name must end with one of {', '.join(ARCHIVE_SUFFIXES)}")
    files = locate(exp_dir, asr_model_file=model_file)
    kind, resolved = files.kind, files.config
    if kind == "asr" and llm != "copy":
        raise PackError(f"{exp_dir} is an ESPnet ASR exp dir: --llm {llm} applies to speech LLM exp dirs only")

    packed = copy.deepcopy(read_config(files.config_file))
    dropped = {}
    for key, empty in TRAINING_ONLY.items():
        if packed.get(key) not in (None, [], empty):
            dropped[key] = packed[key]
        if key in packed:
            packed[key] = empty
    if packed.get("normalize") != "global_mvn" and isinstance(packed.get("normalize_conf"), dict):
        stats = packed["normalize_conf"].pop("stats_file", None)
        if stats is not None:
            dropped["normalize_conf.stats_file"] = stats

    entries: List[Tuple[Path, str]] = []  # (source file, name in the archive)
    for keys, name, _ in used_path_keys(packed, kind):
        source = Path(_get(resolved, keys))
        _set(packed, keys, name)
        entries.extend((f, name if f == source else f"{name}/{f.relative_to(source).as_posix()}")
                       for f in _files_under(source))

    leftovers = list(_leftover_paths(packed, [None, recipe_dir(files.root)]))
    if leftovers:
        raise PackError(f"{files.config_file}: {', '.join(leftovers)} name(s) files that pack does not ship "
                        "(not a path a model build reads); remove them from the config")
    with tempfile.TemporaryDirectory(prefix="espnet_llm_pack_") as tmp:
        source_model = files.model_file
        if kind == "speech_llm" and llm == "merged":
            tuning = (resolved.get("llm_conf") or {}).get("tuning", "lora")
            if tuning == "frozen":
                logger.info("llm_conf.tuning is frozen: nothing to merge, the LLM dir is shipped as it is")
            else:
                llm_dir, source_model = merge_llm(resolved, files.model_file, Path(tmp))
                entries = [e for e in entries if not (e[1] == "llm" or e[1].startswith("llm/"))]
                entries.extend((f, f"llm/{f.relative_to(llm_dir).as_posix()}") for f in _files_under(llm_dir))
                packed["llm_conf"] = {**packed["llm_conf"], "tuning": "frozen"}
        model_name = files.model_file.name
        entries.append((source_model, model_name))
        meta = _meta(model_name, kind, llm if kind == "speech_llm" else None, files.root, dropped)
        _write_archive(Archiver, out, meta, packed, entries)
    return out


def merge_llm(resolved: dict, model_file: Path, tmp: Path) -> Tuple[Path, Path]:
    """(merged Hugging Face LLM dir, model file without LLM weights), both written under ``tmp``.

    The speech LLM is built as trained; its LLM (LoRA adapters merged in, or the fully tuned weights) is saved as a
    plain Hugging Face dir with the base LLM's tokenizer, and the model file keeps every other part, with the
    merged dir's ``llm_fingerprint``: built with ``llm_conf.tuning: frozen`` from that dir, the model is the
    trained one.
    """
    import torch

    from espnet_llm.asr.llm import llm_fingerprint, merge_lora_and_save
    from espnet_llm.tasks.llm_asr import LLMASRTask

    from espnet_llm.exp_dir import weights_only_torch_load

    config_file = write_config(resolved, tmp / CONFIG)
    with weights_only_torch_load():  # a model file is data: loading it runs no code
        model, _ = LLMASRTask.build_model_from_file(config_file, model_file, "cpu")
    llm_dir = merge_lora_and_save(model.llm, tmp / "llm", tokenizer_dir=resolved["llm_conf"]["name_or_path"])
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("llm.")}
    if "llm_fingerprint" in state:  # the model now belongs to the merged LLM (espnet_llm.asr.espnet_model)
        digest = bytes.fromhex(llm_fingerprint(llm_dir))
        state["llm_fingerprint"] = torch.tensor(list(digest), dtype=state["llm_fingerprint"].dtype)
    merged_model = tmp / model_file.name
    torch.save(state, merged_model)
    return llm_dir, merged_model


def _meta(model_name: str, kind: str, llm: Optional[str], exp_dir: Path, dropped: dict) -> dict:
    """ESPnet's meta.yaml (files, yaml_files, timestamp, python, torch, espnet) plus espnet_llm's own keys."""
    meta = dict(
        files=dict(asr_model_file=model_name),
        yaml_files=dict(asr_train_config=CONFIG),
        timestamp=datetime.now().timestamp(),
        python=sys.version,
    )
    for name in ("torch", "espnet"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        meta[name] = str(module.__version__)
    meta["espnet_llm"] = dict(kind=kind, llm=llm, exp_dir=str(Path(os.path.abspath(exp_dir))), dropped=dropped)
    return meta


def _write_archive(archiver_class, out: Path, meta: dict, config: dict, entries: List[Tuple[Path, str]]) -> None:
    """meta.yaml and config.yaml from memory, then the files; written beside ``out`` and renamed into place."""
    names = [name for _, name in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PackError(f"two files would have the same name in the archive: {', '.join(duplicates)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = max((s for s in ARCHIVE_SUFFIXES if out.name.endswith(s)), key=len)
    tmp = out.parent / f"tmp_pack_{os.getpid()}{suffix}"
    try:  # ESPnet's Archiver prints a line per file; a library call stays quiet
        with contextlib.redirect_stdout(io.StringIO()), archiver_class(tmp, mode="w") as archive:
            for name, text in ((META, yaml.safe_dump(meta)), (CONFIG, yaml.safe_dump(config, sort_keys=False))):
                data = io.BytesIO(text.encode("utf-8"))
                archive.addfile(archive.generate_info(name, data.getbuffer().nbytes), data)
            for source, name in entries:
                archive.add(str(source), arcname=name, recursive=False)
        os.replace(tmp, out)
        logger.info(f"wrote {out}: {len(entries) + 2} files")
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------------------------------------------
# Unpacking
# ----------------------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    if os.environ.get("ESPNET_LLM_CACHE"):
        return Path(os.environ["ESPNET_LLM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "espnet_llm" / "packed"


def file_sha256(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack_archive(archive: Union[str, Path], cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """The directory an archive is unpacked to, ``<cache_dir>/<name>-<sha256[:16]>`` (unpacked once: a dir that
    exists is complete, since it is unpacked beside it and renamed into place)."""
    from espnet2.main_funcs.pack_funcs import Archiver

    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"packed model {archive} does not exist")
    if not is_archive(archive):
        raise PackError(f"{archive}: not a packed model archive (expected one of {', '.join(ARCHIVE_SUFFIXES)})")
    stem = archive.name
    for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if stem.endswith(s):
            stem = stem[: -len(s)]
            break
    root = Path(cache_dir or default_cache_dir()) / f"{stem}-{file_sha256(archive)[:16]}"
    if (root / META).is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        try:
            with Archiver(archive) as packed:
                members = list(packed)
                names = [packed.get_name_from_info(m) for m in members]
                if META not in names:
                    raise PackError(f"{archive}: not a packed model (no {META} at its root)")
                for member, name in zip(members, names):
                    parts = Path(name).parts
                    if os.path.isabs(name) or ".." in parts or getattr(member, "issym", lambda: False)() \
                            or getattr(member, "islnk", lambda: False)():
                        raise PackError(f"{archive}: unsafe member {name!r} (absolute, '..' or a link)")
                    packed.extract(member, path=str(tmp))
        except PackError:
            raise
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, tarfile.TarError) as e:
            raise PackError(f"cannot unpack {archive}: corrupt or not an archive ({e})") from e
        try:
            os.rename(tmp, root)
        except OSError:  # unpacked meanwhile by another process
            if not (root / META).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"unpacked {archive} to {root}")
    return root
