"""What the benchmarks share: peak-memory sampling, device/thread setup, the table printer, the JSON results file
and the Markdown report (one `## <title>` section per run, rewritten in place by a rerun with the same title)."""
import json
import os
import re
import resource
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

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


REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT_HEADER = "# Decoding benchmarks"


def append_result(out: Optional[Path], entry: dict) -> Path:
    """Append `entry` to the JSON list in `out` (default: bench/results/<date>.json); returns the file."""
    out = Path(out) if out is not None else REPO_ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(out.read_text()) if out.is_file() else []
    runs.append(entry)
    out.write_text(json.dumps(runs, indent=1) + "\n")
    return out


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command that ran, to paste: `cd <cwd relative to the repo root> && OMP_NUM_THREADS=.. python <argv>`
    (no `cd` from the repo root itself, an absolute one from outside it; OMP_NUM_THREADS only when it was set)."""
    argv = list(sys.argv if argv is None else argv)
    cwd = Path(os.getcwd()).resolve()
    try:
        where = cwd.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        where = str(cwd)
    words = [] if where == "." else ["cd", shlex.quote(where), "&&"]
    if os.environ.get("OMP_NUM_THREADS"):
        words.append(f"OMP_NUM_THREADS={shlex.quote(os.environ['OMP_NUM_THREADS'])}")
    return " ".join(words + ["python"] + [shlex.quote(a) for a in argv])


def cpu_model() -> str:
    """The CPU's "model name" from /proc/cpuinfo (and the number of cores the process may use)."""
    name = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if name is None:
        import platform

        name = platform.processor() or platform.machine() or "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({cores} cores usable)"


def run_facts(device: str, utts: int, audio_s: float, argv: Optional[Sequence[str]] = None,
              extra: Sequence[str] = ()) -> str:
    """The top of a report section: the command in a code block, then date, machine, threads and data as a list."""
    machine = f"CPU {cpu_model()}"
    if device.startswith("cuda") and torch.cuda.is_available():
        machine += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    lines = ["```sh", command_line(argv), "```", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
             f"- machine: {machine}; device {device}, torch threads {torch.get_num_threads()}",
             f"- data: {utts} utterances, {audio_s:.1f} s of audio"]
    return "\n".join(lines + [f"- {line}" for line in extra])


def _sections(text: str):
    """(text before the first section, [(title, section text)]): a section starts at a `## ` line outside ``` fences."""
    head, sections, fence = [], [], False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            sections.append([line[3:].strip(), [line]])
        elif sections:
            sections[-1][1].append(line)
        else:
            head.append(line)
    return "".join(head), [(title, "".join(lines)) for title, lines in sections]


def write_report_section(path: Path, title: str, body: str) -> None:
    """Put `## title` + `body` into the Markdown file `path`: in place of the section of that title (the others are
    kept as they are), else at the end; a missing file starts with a `# Decoding benchmarks` line."""
    title = " ".join(title.split())
    if not title:
        raise ValueError("the report title is empty")
    path = Path(path)
    head, sections = _sections(path.read_text(encoding="utf-8")) if path.is_file() else (REPORT_HEADER + "\n", [])
    new, parts, placed = f"## {title}\n\n{body.strip()}\n", [], False
    for old_title, text in sections:
        if old_title == title:
            if not placed:  # a duplicate of the title (hand-edited file) goes
                parts.append(new)
            placed = True
        else:
            parts.append(text)
    if not placed:
        parts.append(new)
    text = "\n\n".join(p.strip("\n") for p in [head, *parts] if p.strip()) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


TARGET = re.compile(r"^([A-Za-z_]+)(<=|>=|<|>)([-+0-9.eE]+)$")


def parse_targets(spec: str, keys: Sequence[str]) -> List[tuple]:
    """'rtf<=0.5 wer<=10' -> [(text, key, op, value)]; keys are the rows' figures (an unknown one is an error)."""
    targets = []
    for word in spec.split():
        m = TARGET.match(word)
        if m is None or m.group(1).lower() not in keys:
            raise SystemExit(f"--targets: {word!r} is not <figure><op><number> with a figure of {', '.join(keys)}")
        targets.append((word, m.group(1).lower(), m.group(2), float(m.group(3))))
    return targets


def targets_line(rows: Sequence[Dict], targets: Sequence[tuple], name: str = "mode") -> str:
    """Which rows meet each target, and which meet them all (a missing figure meets none)."""
    ops = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}

    def meets(row, target):
        value = row.get(target[1])
        return value is not None and ops[target[2]](value, target[3])

    def names(selected):
        return ", ".join(r[name] for r in selected) or "none"

    parts = [f"`{t[0]}`: {names([r for r in rows if meets(r, t)])}" for t in targets]
    parts.append(f"all: {names([r for r in rows if all(meets(r, t) for t in targets)])}")
    return "targets met: " + "; ".join(parts)
