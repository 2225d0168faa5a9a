"""What a run cost: wall time and peak memory, merged into `<output_dir>/meta.json` for RESULTS.md."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import time
from pathlib import Path
from typing import Iterator


def update_meta(output_dir: str | os.PathLike, **fields) -> dict:
    """Merge `fields` into `<output_dir>/meta.json` (written atomically) and return the result."""
    path = Path(output_dir) / "meta.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    meta.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return meta


def peak_rss_gib() -> float:
    """Peak resident memory of this process and its waited-for children, in GiB (Linux: ru_maxrss is KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 2**20


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def record_run(output_dir: str | os.PathLike, prefix: str, **fields) -> Iterator[None]:
    """Add this run's wall seconds to `<prefix>_wall_s` (summed over resumed runs), keep the max peak RSS."""
    start = time.time()
    if int(os.environ.get("RANK", "0")) != 0:  # one writer under DDP (torchrun sets RANK)
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a killed (then resumed) run still counts
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        path = Path(output_dir) / "meta.json"
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        update_meta(
            output_dir,
            **fields,
            **{
                f"{prefix}_wall_s": round(old.get(f"{prefix}_wall_s", 0.0) + time.time() - start, 1),
                f"{prefix}_peak_rss_gib": round(max(old.get(f"{prefix}_peak_rss_gib", 0.0), peak_rss_gib()), 2),
                "nproc": os.cpu_count(),
            },
        )


@contextlib.contextmanager
def record_decode(output_dir: str | os.PathLike) -> Iterator[dict]:
    """Time one decoding into `<output_dir>/meta.json` (replacing an earlier decoding's figures), when it ends cleanly.

    Yields a dict; the decoder sets `loaded` to time.time() once its models are built, so that `decode_s` (wall
    seconds of the decoding loop, for the RTF) leaves out `load_s`. Also records the peak RSS and torch's threads."""
    import torch

    start = time.time()
    cost: dict = {}
    yield cost
    end = time.time()
    loaded = cost.get("loaded", start)
    update_meta(output_dir, load_s=round(loaded - start, 2), decode_s=round(end - loaded, 2),
                decode_peak_rss_gib=round(peak_rss_gib(), 2), decode_threads=torch.get_num_threads())
