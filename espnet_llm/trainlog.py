"""Read what ESPnet's trainer logged: the `<N>epoch results:` lines of `exp/<x>/train*.log`.

A line looks like (one line, wrapped here)::

    [host] 2026-11-23 01:30:40,643 (trainer:394) INFO: 1epoch results: [train] iter_time=0.014, loss=49.328,
    acc=0.237, train_time=3.082, time=10 minutes and 7.26 seconds, total_count=197, [valid] loss=33.861, acc=0.372,
    time=1.53 seconds, total_count=8

A resumed run appends to a new log (run.pl keeps the old one as train.1.log ...); an epoch logged twice keeps the
last line read, the logs being read oldest first (train.<highest>.log ... train.1.log, train.log).
"""
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Union

EpochStats = Dict[str, Dict[str, Union[float, str]]]  # section ("train", "valid") -> key -> value

_EPOCH_LINE = re.compile(r"(\d+)epoch results: (.*)$")
_SECTION = re.compile(r"\[(\w+)\]\s*(.*?)(?=,?\s*\[\w+\]|$)")
_PAIR = re.compile(r"([\w/.-]+)=(.*?)(?=,\s*[\w/.-]+=|,?\s*$)")
_SPAN = re.compile(r"([\d.]+)\s*(millisecond|second|minute|hour|day|week|year)s?")
_UNIT_SECONDS = dict(millisecond=1e-3, second=1.0, minute=60.0, hour=3600.0, day=86400.0, week=604800.0,
                     year=31536000.0)


def timespan_seconds(text: str) -> float:
    """humanfriendly's `10 minutes and 7.26 seconds` (ESPnet's `time=`) -> 607.26."""
    parts = _SPAN.findall(text)
    if not parts:
        raise ValueError(f"not a time span: {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _value(key: str, text: str) -> Union[float, str]:
    text = text.strip()
    if key == "time":
        return timespan_seconds(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_epoch_line(line: str) -> Optional[tuple]:
    """(epoch, {"train": {...}, "valid": {...}}) of an `epoch results` line, else None; `time` in seconds."""
    match = _EPOCH_LINE.search(line.rstrip("\n"))
    if match is None:
        return None
    sections = {}
    for name, body in _SECTION.findall(match.group(2)):
        sections[name] = {key: _value(key, value) for key, value in _PAIR.findall(body)}
    return int(match.group(1)), sections


def train_logs(exp_dir: Union[str, Path]) -> List[Path]:
    """train.log and its rotated predecessors, oldest first."""
    exp_dir = Path(exp_dir)
    rotated = sorted(exp_dir.glob("train.*.log"), key=lambda p: int(p.name.split(".")[1])
                     if p.name.split(".")[1].isdigit() else -1, reverse=True)
    return [p for p in rotated if p.name.split(".")[1].isdigit()] + [p for p in [exp_dir / "train.log"] if p.is_file()]


def read_epoch_results(exp_dir: Union[str, Path]) -> Dict[int, EpochStats]:
    """{epoch: {"train": {...}, "valid": {...}}} from every train log of an exp dir, epochs sorted."""
    results: Dict[int, EpochStats] = {}
    for log in train_logs(exp_dir):
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                parsed = parse_epoch_line(line)
                if parsed is not None:
                    results[parsed[0]] = parsed[1]
    return dict(sorted(results.items()))


def train_seconds(exp_dir: Union[str, Path]) -> Optional[float]:
    """Training wall time: meta.json's `train_wall_s` if recorded, else the sum of the epochs' train + valid `time`."""
    meta = Path(exp_dir) / "meta.json"
    if meta.is_file():
        wall = json.loads(meta.read_text(encoding="utf-8")).get("train_wall_s")
        if wall is not None:
            return float(wall)
    epochs = read_epoch_results(exp_dir)
    if not epochs:
        return None
    return sum(float(s.get("time", 0.0)) for stats in epochs.values() for s in stats.values())
