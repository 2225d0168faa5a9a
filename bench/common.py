"""What both benchmarks share: peak-memory sampling, device/thread setup, the table printer."""
import resource
import threading
import time
from typing import List, Optional, Sequence

import torch


def current_rss_gib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class PeakMemory:
    """Peak resident memory (sampled every `interval` s) and, on CUDA, peak allocated GPU memory, inside `with`."""

    def __init__(self, device: str = "cpu", interval: float = 0.005):
        self.device, self.interval = device, interval
        self.rss_gib = 0.0
        self.gpu_gib: Optional[float] = None
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.rss_gib = max(self.rss_gib, current_rss_gib())
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.rss_gib = current_rss_gib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.gpu_gib = torch.cuda.max_memory_allocated() / 2**30
        self._stop.set()
        self._thread.join()
        self.rss_gib = max(self.rss_gib, current_rss_gib())
        return False


def setup(device: str, threads: int) -> str:
    """torch threads and the device ('cuda' falls back to an error when no GPU is there)."""
    torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    return device


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str):
    """(result, wall seconds) of fn(), with CUDA synchronised around it."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def table(header: Sequence[str], rows: List[Sequence[object]]) -> str:
    """A Markdown table; floats with 3 significant digits."""
    def cell(v):
        if v is None:
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["|" + "|".join(header) + "|", "|" + "---|" * len(header)]
    lines += ["|" + "|".join(cell(v) for v in row) + "|" for row in rows]
    return "\n".join(lines)
