#!/usr/bin/env python3
"""Wall time of `python -m espnet_llm.bin.<module> --help` for every entry point: how fast a user gets an answer.

Usage:
    python bench/bench_help.py                       # every module of espnet_llm/bin, 3 runs each
    python bench/bench_help.py --runs 5 --out bench/help_times.tsv
    python bench/bench_help.py --modules pack transcribe llm_asr_inference

Each module runs in a fresh interpreter (the same Python as this script) after one untimed warm-up run, so the
figure is the warm-cache time a second `--help` takes. Prints a table (median and max of the runs, exit status)
and writes it as TSV to --out. Run it on an otherwise idle machine: the figures are wall times.
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BIN = TOP / "espnet_llm" / "bin"


def entry_points() -> list:
    return sorted(p.stem for p in BIN.glob("*.py") if not p.stem.startswith("_"))


def time_help(module: str, runs: int) -> tuple:
    """(median s, max s, exit status of the last run) of `python -m espnet_llm.bin.<module> --help`."""
    cmd = [sys.executable, "-m", f"espnet_llm.bin.{module}", "--help"]
    subprocess.run(cmd, capture_output=True, cwd=TOP, check=False)  # warm-up: page cache, .pyc files
    times, rc = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        rc = subprocess.run(cmd, capture_output=True, cwd=TOP, check=False).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times), rc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="*", default=None, help="module names (default: all of espnet_llm/bin)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per module")
    parser.add_argument("--out", type=Path, default=TOP / "bench" / "help_times.tsv")
    args = parser.parse_args(argv)
    rows = []
    print("|module|median s|max s|exit|")
    print("|---|---|---|---|")
    for module in args.modules or entry_points():
        median, worst, rc = time_help(module, args.runs)
        rows.append((module, median, worst, rc))
        print(f"|{module}|{median:.2f}|{worst:.2f}|{rc}|", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("module\tmedian_s\tmax_s\texit\n")
        f.writelines(f"{m}\t{a:.3f}\t{b:.3f}\t{rc}\n" for m, a, b, rc in rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
