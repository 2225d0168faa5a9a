"""RESULTS.md from scored decodings, like ESPnet's show_asr_result.sh plus the commands that made each row.

Read layout (every file but result.json/result.txt is optional):

    exp/<x>/command.txt (else exp/<x>/run.sh)   the training command
    exp/<x>/meta.json                           {"encoder": ..., "llm_tuning": ..., "train_time": ...}
    exp/<x>/decode_<tag>/command.txt            the decoding command
    exp/<x>/decode_<tag>/meta.json              {"decoding_mode": ..., ...}; its keys win over exp/<x>/meta.json
    exp/<x>/decode_<tag>/<test_set>/score_wer/result.json (else result.txt, sclite `-o all`)
    exp/<x>/decode_<tag>/<test_set>/score_cer/result.json (else result.txt)

One system = one exp dir + one decode dir. Everything above the marker line of an existing RESULTS.md
is kept, so a hand-written introduction survives regeneration.
"""
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet_llm import trainlog
from espnet_llm.scoring import SCORE_KEYS, read_result, read_trn, significance_test

MARKER = "<!-- generated below -->"
SCORE_DIRS = {"WER": "score_wer", "CER": "score_cer"}
PACKAGES = ("torch", "espnet", "transformers", "peft")


@dataclass
class System:
    exp_dir: Path
    decode_dir: Path
    commands: Dict[str, str] = field(default_factory=dict)  # "train" / "decode" -> command text
    meta: Dict[str, object] = field(default_factory=dict)
    scores: Dict[str, Dict[str, dict]] = field(default_factory=dict)  # "WER"/"CER" -> test set -> result
    verdicts: Dict[str, str] = field(default_factory=dict)  # test set -> significance against the baseline
    is_baseline: bool = False

    @property
    def name(self) -> str:
        return f"{self.exp_dir.as_posix()}/{self.decode_dir.name}"

    @property
    def decode_tag(self) -> str:
        return self.decode_dir.name[len("decode_"):]

    @property
    def test_sets(self) -> List[str]:
        return sorted({test_set for per_set in self.scores.values() for test_set in per_set})


def _read_command(directory: Path, names: Sequence[str]) -> Optional[str]:
    for name in names:
        if (directory / name).is_file():
            return (directory / name).read_text(encoding="utf-8").strip()
    return None


def _read_meta(directory: Path) -> dict:
    path = directory / "meta.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _training_summary(exp_dir: Path) -> dict:
    """Epochs trained and minutes spent in them (train + valid), from ESPnet's `Nepoch results` log lines."""
    epochs = trainlog.read_epoch_results(exp_dir)
    seconds = sum(float(s.get("time", 0.0)) for stats in epochs.values() for s in stats.values())
    return {"epochs": len(epochs), "train_time_min": round(seconds / 60, 1)} if epochs else {}


def collect_systems(exp_dir_patterns: Sequence[str]) -> List[System]:
    """Systems with at least one scored test set, sorted by exp dir then decode dir."""
    exp_dirs = sorted({Path(p) for pattern in exp_dir_patterns for p in (glob.glob(pattern) or [pattern])})
    systems = []
    for exp_dir in exp_dirs:
        for decode_dir in sorted(exp_dir.glob("decode_*")):
            if not decode_dir.is_dir():
                continue
            system = System(exp_dir, decode_dir)
            for metric, score_dir_name in SCORE_DIRS.items():
                for score_dir in sorted(decode_dir.glob(f"*/{score_dir_name}")):
                    if (score_dir / "result.json").is_file() or (score_dir / "result.txt").is_file():
                        system.scores.setdefault(metric, {})[score_dir.parent.name] = read_result(score_dir)
            if not system.scores:
                continue
            for role, directory, names in (("train", exp_dir, ("command.txt", "run.sh")),
                                           ("decode", decode_dir, ("command.txt",))):
                command = _read_command(directory, names)
                if command:
                    system.commands[role] = command
            system.meta = {**_training_summary(exp_dir), **_read_meta(exp_dir), **_read_meta(decode_dir)}
            # A resumed run's meta.json counts only the invocations that ended cleanly; the epoch times in
            # the ESPnet logs cover them all, so they are what the report gives as the training time.
            system.meta.pop("train_wall_s", None)
            systems.append(system)
    return systems


def _run(cmd: Sequence[str], cwd: Optional[Path] = None) -> Optional[str]:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(repo_dir: Optional[Path] = None) -> Dict[str, str]:
    """What ESPnet's show_asr_result.sh records, plus the LLM stack and the machine; git of repo_dir (or cwd)."""
    env = {"date": datetime.datetime.now().astimezone().strftime("%a %b %d %H:%M:%S %Z %Y"),
           "python version": sys.version.replace("\n", " ")}
    for package in PACKAGES:
        try:
            env[f"{package} version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[f"{package} version"] = "not installed"
    commit = _run(["git", "rev-parse", "HEAD"], repo_dir)
    if commit:
        env["Git hash"] = commit
        env["Commit date"] = _run(["git", "log", "-1", "--format=%cd"], repo_dir) or "unknown"
        dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo_dir)
        env["Git dirty"] = "unknown" if dirty is None else ("yes" if dirty else "no")
    else:
        env["Git hash"] = "unknown (not a git checkout)"
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env["machine"] = f"nproc {nproc}, {_cpu_model()}"
    return env


def _pct(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _meta_line(meta: dict) -> str:
    return "; ".join(f"{key}: {value}" for key, value in meta.items())


SIGNIFICANCE_DIR = "significance_vs_baseline"


def compare_to_baseline(systems: Sequence[System], baseline: Path) -> Optional[System]:
    """Fill each system's `verdicts` with sc_stats' MAPSSWE and sign tests of its WER against `baseline` (a decode
    dir among `systems`) on every test set both scored with the same reference. The sc_stats files go to
    <decode_dir>/<test_set>/significance_vs_baseline/. Returns the baseline system (None if not among them)."""
    base = next((s for s in systems if s.decode_dir.resolve() == Path(baseline).resolve()), None)
    if base is None:
        return None
    base.is_baseline = True
    for system in systems:
        if system is base:
            continue
        for test_set in system.test_sets:
            ours, theirs = system.decode_dir / test_set / "score_wer", base.decode_dir / test_set / "score_wer"
            if not all((d / f).is_file() for d in (ours, theirs) for f in ("ref.trn", "hyp.trn")):
                continue
            if read_trn(ours / "ref.trn") != read_trn(theirs / "ref.trn"):
                system.verdicts[test_set] = "other reference"
                continue
            result = significance_test(theirs / "ref.trn", [theirs / "hyp.trn", ours / "hyp.trn"],
                                       ["baseline", "system"], system.decode_dir / test_set / SIGNIFICANCE_DIR)
            system.verdicts[test_set] = "; ".join(
                f"{t['test']}: " + ("n.s." if not t["significant"] else "better" if t["better"] == "system" else "worse")
                + f" (p{t['p_text']})" for t in result["tests"])
    return base


def render(systems: Sequence[System], env: Dict[str, str]) -> str:
    """Markdown: environment, summary table, then one section per system."""
    lines = ["# RESULTS", "", "## Environments"]
    for key, value in env.items():
        lines.append(f"- {key}: `{value}`")
    base = next((s for s in systems if s.is_baseline), None)
    compared = base is not None
    lines += ["", "## Summary", "",
              "WER/CER/Ins in %, #Ins = inserted words (hallucinations show up here)."]
    if compared:
        lines += ["", f"vs baseline: the WER against `{base.name}` on the same utterances, sclite's sc_stats "
                      "matched-pair sentence-segment (MP) and sign (SI, utterance pairs) tests at p=0.05 "
                      f"(files in `<decode dir>/<set>/{SIGNIFICANCE_DIR}/`)."]
    header = "|system|decode|dataset|WER|CER|Ins|#Ins|" + ("vs baseline|" if compared else "")
    lines += ["", header, "|" + "---|" * (header.count("|") - 1)]
    for system in systems:
        for test_set in system.test_sets:
            wer = system.scores.get("WER", {}).get(test_set, {})
            cer = system.scores.get("CER", {}).get(test_set, {})
            row = (f"|{system.exp_dir.name}|{system.decode_tag}|{test_set}|{_pct(wer.get('Err'))}|"
                   f"{_pct(cer.get('Err'))}|{_pct(wer.get('Ins'))}|{wer.get('counts', {}).get('Ins', '-')}|")
            if compared:
                row += ("baseline" if system.is_baseline else system.verdicts.get(test_set, "-")) + "|"
            lines.append(row)
    for system in systems:
        lines += ["", f"## {system.name}"]
        if system.meta:
            lines += ["", f"- {_meta_line(system.meta)}"]
        for role in ("train", "decode"):
            if role in system.commands:
                lines += ["", f"{role.capitalize()} command:", "", "```bash", system.commands[role], "```"]
        for metric in ("WER", "CER"):
            per_set = system.scores.get(metric)
            if not per_set:
                continue
            lines += ["", f"### {metric}", "",
                      "|dataset|Snt|Wrd|" + "|".join(SCORE_KEYS) + "|#Ins|",
                      "|---|---|---|" + "---|" * (len(SCORE_KEYS) + 1)]
            for test_set in sorted(per_set):
                result = per_set[test_set]
                lines.append(f"|{test_set}|{result['Snt']}|{result['Wrd']}|"
                             + "|".join(_pct(result[key]) for key in SCORE_KEYS)
                             + f"|{result['counts']['Ins']}|")
    return "\n".join(lines) + "\n"


KEPT_NOTE = "- kept from an earlier RESULTS.md: its decode dir was not among this run's exp dirs"


def _split_generated(text: str):
    """A generated part -> (lines up to the summary table's separator, {key: summary rows}, {key: section text}).

    key = (exp dir name, decode tag), what a summary row's first two cells and a section's `## <exp>/decode_<tag>`
    both name."""
    lines = text.split("\n")
    head, rows, sections = [], {}, {}
    i = 0
    while i < len(lines) and not lines[i].startswith("|---"):
        head.append(lines[i])
        i += 1
    head.append(lines[i] if i < len(lines) else "")
    i += 1
    while i < len(lines) and lines[i].startswith("|"):
        cells = lines[i].split("|")
        rows.setdefault((cells[1], cells[2]), []).append(lines[i])
        i += 1
    starts = [j for j in range(i, len(lines)) if lines[j].startswith("## ")] + [len(lines)]
    for a, b in zip(starts, starts[1:]):
        name = Path(lines[a][3:].strip())
        key = (name.parent.name, name.name[len("decode_"):])
        sections[key] = "\n".join(lines[a:b]).rstrip("\n")
    return head, rows, sections


def _fit_row(row: str, columns: int) -> str:
    """A kept summary row with as many cells as the new table (the baseline column may come or go)."""
    cells = row.strip("|").split("|")
    cells = (cells + ["-"] * columns)[:columns]
    return "|" + "|".join(cells) + "|"


def merge_generated(new: str, old: str) -> str:
    """The new generated part plus the systems of `old` it does not have, in name order: a rerun in a checkout
    that lacks earlier exp dirs (a fresh clone, a pruned exp/) adds its rows and loses none."""
    head, rows, sections = _split_generated(new)
    old_head, old_rows, old_sections = _split_generated(old)
    columns = head[-1].count("|") - 1
    kept = [key for key in old_sections if key not in sections]
    if kept and old_head[-1].count("|") - 1 > columns and "## Summary" in head and "## Summary" in old_head:
        # the kept rows carry a column this run has not (vs baseline: no baseline decode here): keep it, "-" for ours
        head = head[:head.index("## Summary")] + old_head[old_head.index("## Summary"):]
        columns = head[-1].count("|") - 1
        rows = {key: [_fit_row(row, columns) for row in key_rows] for key, key_rows in rows.items()}
    for key in kept:
        section = old_sections[key]
        if KEPT_NOTE not in section:
            title, _, rest = section.partition("\n")
            section = f"{title}\n\n{KEPT_NOTE}{rest}" if rest.startswith("\n") else f"{title}\n\n{KEPT_NOTE}\n{rest}"
        sections[key] = section
        rows[key] = [_fit_row(row, columns) for row in old_rows.get(key, [])]
    ordered = sorted(sections)
    body = [row for key in sorted(rows) for row in sorted(rows[key], key=lambda r: r.split("|")[3])]
    return "\n".join(head + body) + "\n\n" + "\n\n".join(sections[k] for k in ordered) + "\n"


def write_results(systems: Sequence[System], out: Path, env: Optional[Dict[str, str]] = None,
                  keep_missing: bool = True) -> str:
    """Write out: the kept header (everything above MARKER in an existing file), MARKER, the generated part.

    With `keep_missing`, systems of the existing generated part that `systems` lacks are kept (marked so), so
    regenerating from fewer exp dirs never drops rows; the environment block is this run's."""
    out = Path(out)
    header, old = "", ""
    if out.is_file():
        existing = out.read_text(encoding="utf-8")
        if MARKER in existing:
            header, old = existing[:existing.index(MARKER)], existing[existing.index(MARKER) + len(MARKER) + 1:]
    generated = render(systems, env if env is not None else environment())
    if keep_missing and old.strip():
        generated = merge_generated(generated, old)
    text = header + MARKER + "\n" + generated
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text
