"""Guards of the directories that training and decoding write: one writer at a time, files written whole,
model files loaded as weights only, a damaged checkpoint replaced by the last good one.

``exclusive(dir, what)``: an exclusive ``flock`` on ``<dir>/.lock`` for the life of the process, holding the owner's
pid, host and command. A second trainer or decoder into the same dir stops with ``DirBusy`` naming the owner; the
kernel drops the lock when its owner dies (also on SIGKILL), so a rerun after a crash finds it free.

``atomic_torch_save()``: while active, ``torch.save(obj, path)`` writes ``.<name>.tmp.<pid>`` beside the path,
fsyncs it and renames it over the path, so a killed trainer leaves the old file or the new one, never half of one
(ESPnet's trainer saves ``checkpoint.pth`` in place). The replaced ``checkpoint.pth`` is kept as
``checkpoint.pth.prev``.

``weights_only_torch_load()``: while active, every ``torch.load`` unpickles with ``weights_only=True`` (tensors,
containers, numbers and numpy scalars only), so a hostile ``.pth`` given as ``--init_param`` or
``--asr_model_file`` cannot run code. ESPnet passes ``weights_only=False`` in its loaders.

``recover_checkpoint(output_dir)``: before resuming, check that ``checkpoint.pth`` loads; if not, move it to
``checkpoint.pth.corrupt`` and put in its place ``checkpoint.pth.prev`` or, failing that, a checkpoint built from
the newest ``<N>epoch.pth`` that loads (the model's weights, the epoch results ESPnet logged in ``train*.log``;
the optimizer and scheduler start afresh), with a warning saying which.

``mark_done(dir)`` / ``is_done(dir)``: a decoder writes ``<dir>/.done`` after its last output; the stage script
merges only splits that have it.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import re
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

__all__ = [
    "DirBusy", "atomic_torch_save", "exclusive", "guarded_training", "is_done", "mark_done", "recover_checkpoint",
    "weights_only_torch_load",
]

LOCK_NAME = ".lock"
DONE_NAME = ".done"


class DirBusy(RuntimeError):
    """Another live process writes into this directory."""


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``<directory>/.lock`` (created with the dir) while the block runs; ``DirBusy`` if a live process has it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 4096).decode("utf-8", "replace").strip()
        os.close(fd)
        raise DirBusy(
            f"{directory} is in use by {owner or 'another process'}; a second {what} into it would mix two runs' "
            "files: wait for that one to end or stop it, then run again"
        ) from None
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} "
                 f"({what}: {command})\n".encode())
    try:
        yield path
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock


def _replace_keeping_previous(tmp: Path, path: Path) -> None:
    if path.name == "checkpoint.pth" and path.exists():
        link = path.with_name(f".{path.name}.prev.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.link(path, link)  # checkpoint.pth stays in place until the new one replaces it
        os.replace(link, path.with_name(path.name + ".prev"))
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_torch_save() -> Iterator[None]:
    """``torch.save`` to a path writes a temporary file and renames it over the path (see the module doc)."""
    import torch

    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        path = Path(f)
        tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
        try:
            original(obj, tmp, *args, **kwargs)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            _replace_keeping_previous(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    torch.save = save
    try:
        yield
    finally:
        torch.save = original


def safe_globals() -> list:
    """The types of ESPnet's checkpoint.pth besides tensors (its reporter's numpy scalars, dtypes and timedelta):
    data, not code, allowed for ``weights_only=True`` loads."""
    import datetime

    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    safe = [np.dtype, multiarray.scalar, datetime.timedelta]
    return safe + [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """Every ``torch.load`` in the block unpickles with ``weights_only=True`` (see the module doc)."""
    import torch

    original = torch.load
    allowed = safe_globals()

    def load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        try:
            with torch.serialization.safe_globals(allowed):
                return original(f, *args, **kwargs)
        except Exception as e:
            if isinstance(e, pickle.UnpicklingError) and "weights_only" in str(e):
                raise RuntimeError(f"{f} holds Python objects that a model file should not (loaded with "
                                   f"weights_only=True, which refuses code): {str(e).splitlines()[0]}") from None
            raise

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def _loads(path: Path) -> bool:
    import torch

    try:
        with torch.serialization.safe_globals(safe_globals()):
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return True
    except Exception as e:  # truncated zip, bad pickle, I/O error
        logging.warning(f"{path} does not load: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return False


def _reporter_value(key: str, value):
    """A logged epoch result as ESPnet's Reporter keeps it: total_count an int, time a timedelta, else a float."""
    import datetime

    if key == "total_count":
        return int(value)
    if key == "time":
        return datetime.timedelta(seconds=float(value))
    return value


def recover_checkpoint(output_dir: str | os.PathLike) -> Optional[str]:
    """Make ``<output_dir>/checkpoint.pth`` loadable before ESPnet resumes from it; returns what was done, or None
    when there is nothing to do (no checkpoint, or a good one)."""
    import torch

    from espnet_llm.trainlog import read_epoch_results

    output_dir = Path(output_dir)
    checkpoint = output_dir / "checkpoint.pth"
    if not checkpoint.exists() or _loads(checkpoint):
        return None
    corrupt = checkpoint.with_name("checkpoint.pth.corrupt")
    os.replace(checkpoint, corrupt)
    previous = checkpoint.with_name("checkpoint.pth.prev")
    if previous.exists() and _loads(previous):
        tmp = checkpoint.with_name(".checkpoint.pth.recover")
        shutil.copyfile(previous, tmp)
        os.replace(tmp, checkpoint)
        message = (f"{checkpoint} does not load (kept as {corrupt}); resuming from the checkpoint before it "
                   f"({previous.name})")
        logging.warning(message)
        return message
    epochs = sorted((int(m.group(1)), p) for p in output_dir.glob("*epoch.pth")
                    if (m := re.fullmatch(r"(\d+)epoch\.pth", p.name)))
    for epoch, path in reversed(epochs):
        if not _loads(path):
            continue
        stats = {e: {section: {k: _reporter_value(k, v) for k, v in values.items()}
                     for section, values in sections.items()}
                 for e, sections in read_epoch_results(output_dir).items() if e <= epoch}
        state = {"model": torch.load(path, map_location="cpu", weights_only=True), "optimizers": [],
                 "reporter": {"epoch": epoch, "stats": stats}, "schedulers": [], "scaler": None}
        with atomic_torch_save():
            torch.save(state, checkpoint)
        message = (f"{checkpoint} does not load (kept as {corrupt}); resuming after epoch {epoch} from {path.name} "
                   "with a fresh optimizer and scheduler state")
        logging.warning(message)
        return message
    message = f"{checkpoint} does not load (kept as {corrupt}) and no epoch file does: training starts again"
    logging.warning(message)
    return message


@contextlib.contextmanager
def guarded_training(output_dir: str | os.PathLike, what: str = "training") -> Iterator[None]:
    """A training run's guards: the dir's lock, checkpoint recovery, atomic saves, weights-only loads."""
    if int(os.environ.get("RANK", "0")) != 0:  # DDP ranks > 0: rank 0 holds the guards
        with atomic_torch_save(), weights_only_torch_load():
            yield
        return
    with exclusive(output_dir, what):
        recover_checkpoint(output_dir)
        with atomic_torch_save(), weights_only_torch_load():
            yield


def mark_done(directory: str | os.PathLike) -> None:
    """Record that every output in ``directory`` is complete (written last, atomically)."""
    path = Path(directory) / DONE_NAME
    tmp = path.with_name(f".done.tmp.{os.getpid()}")
    tmp.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"), encoding="utf-8")
    os.replace(tmp, path)


def clear_done(directory: str | os.PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(directory) / DONE_NAME).unlink()


def is_done(directory: str | os.PathLike) -> bool:
    return (Path(directory) / DONE_NAME).is_file()
