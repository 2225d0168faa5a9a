"""Kaldi data directories: read, validate, fix, subset, combine and split.

A data dir holds one table per file, one ``<key> <value>`` line per entry, sorted by key in C-locale order:

    wav.scp          <recording-id> <path, or a shell command ending in "|">
    text             <utt-id> <transcript>
    utt2spk          <utt-id> <speaker-id>
    spk2utt          <speaker-id> <utt-id> <utt-id> ...
    feats.scp        <utt-id> <ark path:offset>            (optional)
    utt2num_frames   <utt-id> <int>                          (optional)
    utt2dur          <utt-id> <seconds>                      (optional)
    segments         <utt-id> <recording-id> <start> <end>   (optional; without it, recording id = utt id)

Python compares str by code point, which for UTF-8 is the byte order that ``LC_ALL=C sort`` uses, so plain
``sorted()`` gives Kaldi's order. Every write goes to a temporary file in the same directory and is then moved
over the target with ``os.replace``, so an interrupted run leaves each file either old or new, never half written.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

logger = logging.getLogger(__name__)

UTT_FILES = ("text", "utt2spk", "feats.scp", "utt2num_frames", "utt2dur", "segments")
"""Tables keyed by utterance id. ``wav.scp`` joins them when there is no ``segments``."""
ALL_FILES = ("wav.scp",) + UTT_FILES + ("spk2utt",)
MAX_REPORTED = 5
"""Problems of one kind listed in an error message before the rest are only counted."""


class DataDirError(ValueError):
    """A data dir (or one of its files) breaks Kaldi's rules. ``problems`` lists each one found."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.problems = list(problems) or [message]


@dataclass
class Line:
    """One table line: 1-based line number, key and the rest of the line after the key."""

    number: int
    key: str
    value: str


@dataclass
class FixReport:
    """What ``fix`` did: ``dropped`` maps each removed utterance to the reasons it was removed."""

    dropped: dict[str, list[str]] = field(default_factory=dict)
    changed_files: list[str] = field(default_factory=list)
    backup_dir: Path | None = None

    def summary(self) -> str:
        if not self.dropped and not self.changed_files:
            return "nothing to fix"
        lines = [f"dropped {len(self.dropped)} utterance(s); rewrote {', '.join(self.changed_files) or 'nothing'}"]
        for utt, reasons in list(self.dropped.items())[:20]:
            lines.append(f"  {utt}: {'; '.join(reasons)}")
        if len(self.dropped) > 20:
            lines.append(f"  ... and {len(self.dropped) - 20} more")
        if self.backup_dir is not None:
            lines.append(f"originals of rewritten files are in {self.backup_dir}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- reading, writing


def read_lines(path: str | os.PathLike) -> list[Line]:
    """Parse a Kaldi table into lines, in file order, keeping duplicates and order problems for ``validate``.

    Raises DataDirError naming the file and line for bytes that are not UTF-8, empty lines and lines that start
    with whitespace (their key would be empty).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataDirError(f"{path}: no such file") from None
    if raw and not raw.endswith(b"\n"):
        raw += b"\n"
    lines = []
    for number, raw_line in enumerate(raw.split(b"\n")[:-1], start=1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataDirError(
                f"{path} line {number}: not valid UTF-8 (byte 0x{raw_line[err.start]:02x} at column {err.start + 1})"
            ) from None
        if line.endswith("\r"):
            raise DataDirError(f"{path} line {number}: ends with a carriage return (Windows line ending)")
        if not line.strip():
            raise DataDirError(f"{path} line {number}: empty line")
        if line[0].isspace():
            raise DataDirError(f"{path} line {number}: starts with whitespace, so its id is empty")
        key, value = _split_key(line)
        lines.append(Line(number, key, value))
    return lines


def text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) of a UTF-8 text file, read lazily; bytes that are not UTF-8
    raise DataDirError naming the file, the line and the byte (``UnicodeDecodeError`` names neither)."""
    with open(path, "rb") as f:
        for number, raw_line in enumerate(f, start=1):
            try:
                yield number, raw_line.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError as err:
                raise DataDirError(f"{path} line {number}: not valid UTF-8 (byte 0x{raw_line[err.start]:02x} at "
                                   f"column {err.start + 1}); convert it, e.g. iconv -f latin1 -t utf-8") from None


def _split_key(line: str) -> tuple[str, str]:
    parts = line.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def read_table(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi table as {key: value} in file order. Raises DataDirError on a duplicate key."""
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line in read_lines(path):
        if line.key in table:
            raise DataDirError(f"{path} line {line.number}: duplicate id {line.key} (first on line {first_line[line.key]})")
        table[line.key] = line.value
        first_line[line.key] = line.number
    return table


def write_table(path: str | os.PathLike, table: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Write {key: value} sorted by key (C locale), atomically."""
    write_text_atomic(path, format_table(table))


def format_table(table: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The text of a Kaldi table: ``key value`` lines sorted by key (C locale)."""
    items = table.items() if isinstance(table, Mapping) else table
    return "".join(f"{key} {value}\n" if value else f"{key}\n" for key, value in sorted(items))


def write_text_atomic(path: str | os.PathLike, content: str) -> None:
    """Write ``content`` to a temporary file next to ``path`` and move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """{utt: spk} -> {spk: [utt, ...]}, speakers and utterances sorted."""
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return dict(sorted(spk2utt.items()))


def spk2utt_to_utt2spk(spk2utt: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """{spk: [utt, ...]} -> {utt: spk}, sorted by utterance."""
    return dict(sorted((utt, spk) for spk, utts in spk2utt.items() for utt in utts))


def _format_spk2utt(spk2utt: Mapping[str, Sequence[str]]) -> dict[str, str]:
    return {spk: " ".join(utts) for spk, utts in spk2utt.items()}


# ---------------------------------------------------------------------------------------------- validate


def validate(
    data_dir: str | os.PathLike, no_feats: bool = True, no_text: bool = False, no_wav: bool = False
) -> list[str]:
    """Check ``data_dir`` against Kaldi's rules; return warnings, raise DataDirError listing every error.

    Required: ``utt2spk``, ``spk2utt``, plus ``text`` unless ``no_text``, ``wav.scp`` unless ``no_wav``,
    ``feats.scp`` unless ``no_feats`` (the default, as before feature extraction). Optional files are checked when
    present. Errors: missing required file, non-UTF-8 bytes, duplicate ids, ids out of C-locale order, empty
    transcript, ids in one file but not in ``utt2spk``, ``spk2utt`` that disagrees with ``utt2spk``.
    Warnings: a speaker id that is not a prefix of its utterance ids (Kaldi's sort order of utt2spk by speaker
    then differs from the order by utterance, which breaks per-speaker tools).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataDirError(f"{data_dir}: not a directory")
    errors: list[str] = []
    warnings: list[str] = []
    required = ["utt2spk", "spk2utt"]
    required += [] if no_text else ["text"]
    required += [] if no_wav else ["wav.scp"]
    required += [] if no_feats else ["feats.scp"]
    for name in required:
        if not (data_dir / name).is_file():
            errors.append(f"{data_dir / name}: required file is missing")

    tables: dict[str, list[Line]] = {}
    for name in ALL_FILES:
        path = data_dir / name
        if not path.is_file():
            continue
        try:
            tables[name] = read_lines(path)
        except DataDirError as err:
            errors.append(str(err))
            continue
        errors += _check_order(path, tables[name])

    if "text" in tables:
        empty = [f"{data_dir / 'text'} line {line.number}: utterance {line.key} has an empty transcript"
                 for line in tables["text"] if not line.value]
        errors += _capped(empty)
    for name in ("utt2spk", "wav.scp", "feats.scp", "utt2num_frames", "utt2dur", "segments", "spk2utt"):
        if name in tables:
            missing = [f"{data_dir / name} line {line.number}: id {line.key} has no value"
                       for line in tables[name] if not line.value]
            errors += _capped(missing)
    errors += _check_numbers(data_dir, tables)

    if "utt2spk" in tables:
        utt2spk = {line.key: line.value for line in tables["utt2spk"]}
        utts = set(utt2spk)
        for name in UTT_FILES:
            if name in tables and name != "utt2spk":
                errors += _check_same_ids(data_dir, "utt2spk", utts, name, tables[name], "utterance")
        if "wav.scp" in tables:
            recordings = {line.key for line in tables["wav.scp"]}
            if "segments" in tables:
                used = set()
                for line in tables["segments"]:
                    recording = line.value.split()[0] if line.value else ""
                    used.add(recording)
                    if recording and recording not in recordings:
                        errors.append(f"{data_dir / 'segments'} line {line.number}: recording {recording} of "
                                      f"utterance {line.key} is not in wav.scp")
                unused = sorted(recordings - used)
                if unused:
                    warnings.append(f"{data_dir / 'wav.scp'}: {len(unused)} recording(s) have no segment, e.g. {unused[0]}")
            else:
                errors += _check_same_ids(data_dir, "utt2spk", utts, "wav.scp", tables["wav.scp"], "utterance")
        if "spk2utt" in tables:
            errors += _check_spk2utt(data_dir, utt2spk, tables["spk2utt"])
        not_prefix = [f"{data_dir / 'utt2spk'}: speaker {spk} is not a prefix of utterance {utt}"
                      for utt, spk in utt2spk.items() if spk and not utt.startswith(spk)]
        warnings += _capped(not_prefix)
        if not_prefix and sorted(utt2spk) != [u for u, _ in sorted(utt2spk.items(), key=lambda kv: (kv[1], kv[0]))]:
            warnings.append(f"{data_dir / 'utt2spk'}: sorting by speaker changes the utterance order; "
                            "per-speaker tools (e.g. split_data.sh --per-spk) need speaker-prefixed utterance ids")

    if errors:
        raise DataDirError(f"{data_dir}: {len(errors)} problem(s):\n  " + "\n  ".join(errors), errors)
    for warning in warnings:
        logger.warning(warning)
    return warnings


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_REPORTED:
        return problems
    return problems[:MAX_REPORTED] + [f"... and {len(problems) - MAX_REPORTED} more like the above"]


def _check_order(path: Path, lines: list[Line]) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    duplicates = []
    for line in lines:
        if line.key in seen:
            duplicates.append(f"{path} line {line.number}: duplicate id {line.key} (first on line {seen[line.key]})")
        else:
            seen[line.key] = line.number
    problems += _capped(duplicates)
    for previous, line in zip(lines, lines[1:]):
        if line.key < previous.key:
            problems.append(f"{path} line {line.number}: not sorted: {line.key} comes after {previous.key} "
                            "(sort with LC_ALL=C sort, or run fix_data_dir.sh)")
            break
    return problems


def _check_numbers(data_dir: Path, tables: dict[str, list[Line]]) -> list[str]:
    problems = []
    for name, kind in (("utt2num_frames", int), ("utt2dur", float)):
        for line in tables.get(name, []):
            try:
                ok = kind(line.value) > 0
            except ValueError:
                ok = False
            if line.value and not ok:
                problems.append(f"{data_dir / name} line {line.number}: {line.key}: expected a positive "
                                f"{kind.__name__}, got {line.value!r}")
    for line in tables.get("segments", []):
        fields = line.value.split()
        try:
            ok = len(fields) == 3 and 0 <= float(fields[1]) < float(fields[2])
        except ValueError:
            ok = False
        if line.value and not ok:
            problems.append(f"{data_dir / 'segments'} line {line.number}: {line.key}: expected "
                            f"'<recording-id> <start> <end>' with 0 <= start < end, got {line.value!r}")
    return _capped(problems)


def _check_same_ids(data_dir: Path, ref_name: str, ref_ids: set[str], name: str, lines: list[Line], what: str) -> list[str]:
    ids = {line.key for line in lines}
    extra = [f"{data_dir / name} line {line.number}: {what} {line.key} is not in {ref_name}"
             for line in lines if line.key not in ref_ids]
    missing = sorted(ref_ids - ids)
    problems = _capped(extra)
    if missing:
        problems.append(f"{data_dir / name}: {len(missing)} {what}(s) of {ref_name} are missing, "
                        f"e.g. {', '.join(missing[:MAX_REPORTED])}")
    return problems


def _check_spk2utt(data_dir: Path, utt2spk: dict[str, str], lines: list[Line]) -> list[str]:
    path = data_dir / "spk2utt"
    expected = utt2spk_to_spk2utt(utt2spk)
    problems = []
    found = set()
    for line in lines:
        found.add(line.key)
        if line.key not in expected:
            problems.append(f"{path} line {line.number}: speaker {line.key} has no utterance in utt2spk")
            continue
        utts = line.value.split()
        if utts != expected[line.key]:
            wrong = sorted(set(utts) ^ set(expected[line.key]))
            detail = f"e.g. {wrong[0]}" if wrong else "utterances out of order"
            problems.append(f"{path} line {line.number}: speaker {line.key} disagrees with utt2spk ({detail}); "
                            "regenerate it with utt2spk_to_spk2utt.sh")
    missing = sorted(set(expected) - found)
    if missing:
        problems.append(f"{path}: {len(missing)} speaker(s) of utt2spk are missing, e.g. {', '.join(missing[:MAX_REPORTED])}")
    return _capped(problems)


# ---------------------------------------------------------------------------------------------- in-memory data dir


@dataclass
class _DataDir:
    """The tables of one data dir, keyed by file name. ``wav.scp`` is keyed by recording id."""

    path: Path
    tables: dict[str, dict[str, str]]

    @classmethod
    def load(cls, path: str | os.PathLike, merge_duplicates: bool = False) -> "_DataDir":
        """Read every table; ``merge_duplicates`` keeps the last of repeated ids instead of raising."""
        path = Path(path)
        if not path.is_dir():
            raise DataDirError(f"{path}: not a directory")
        if merge_duplicates:
            tables = {name: {line.key: line.value for line in read_lines(path / name)}
                      for name in ALL_FILES if (path / name).is_file()}
        else:
            tables = {name: read_table(path / name) for name in ALL_FILES if (path / name).is_file()}
        if "utt2spk" not in tables:
            if "spk2utt" not in tables:
                raise DataDirError(f"{path}: neither utt2spk nor spk2utt exists")
            tables["utt2spk"] = spk2utt_to_utt2spk({s: u.split() for s, u in tables["spk2utt"].items()})
        return cls(path, tables)

    @property
    def utts(self) -> list[str]:
        return sorted(self.tables["utt2spk"])

    def recording(self, utt: str) -> str:
        segments = self.tables.get("segments")
        return segments[utt].split()[0] if segments is not None else utt

    def select(self, utts: Iterable[str]) -> dict[str, dict[str, str]]:
        """Tables restricted to ``utts`` (and their recordings), spk2utt regenerated."""
        keep = set(utts)
        out = {name: {k: v for k, v in table.items() if k in keep}
               for name, table in self.tables.items() if name in UTT_FILES}
        if "wav.scp" in self.tables:
            recordings = {self.recording(utt) for utt in keep}
            out["wav.scp"] = {k: v for k, v in self.tables["wav.scp"].items() if k in recordings}
        out["spk2utt"] = _format_spk2utt(utt2spk_to_spk2utt(out["utt2spk"]))
        return out


def _write_tables(dst: Path, tables: Mapping[str, Mapping[str, str]]) -> None:
    for name in ALL_FILES:
        if name in tables:
            write_table(dst / name, tables[name])


# ---------------------------------------------------------------------------------------------- fix


def fix(data_dir: str | os.PathLike) -> FixReport:
    """Make ``data_dir`` valid: sort every file, drop utterances missing from any file or with an empty
    transcript, keep only recordings still used, regenerate spk2utt from utt2spk.

    The original of each rewritten file is copied to ``data_dir/.backup/`` first. Lines repeated verbatim are
    merged; an id repeated with different values is an error (there is no safe way to choose one).
    Non-UTF-8 bytes are an error too. Returns what was dropped and which files changed.
    """
    data_dir = Path(data_dir)
    originals = {name: (data_dir / name).read_bytes() for name in ALL_FILES if (data_dir / name).is_file()}
    for name in originals:
        _check_conflicting_duplicates(data_dir / name)
    data = _DataDir.load(data_dir, merge_duplicates=True)

    report = FixReport()
    candidates = set(data.tables["utt2spk"])
    if "segments" not in data.tables:
        candidates |= set(data.tables.get("wav.scp", {}))
    for name in UTT_FILES:
        if name in data.tables:
            candidates |= set(data.tables[name])

    def drop(utt: str, reason: str) -> None:
        report.dropped.setdefault(utt, []).append(reason)

    for utt in sorted(candidates):
        for name in UTT_FILES:
            if name in data.tables and utt not in data.tables[name]:
                drop(utt, f"missing from {name}")
        if "text" in data.tables and utt in data.tables["text"] and not data.tables["text"][utt]:
            drop(utt, "empty transcript")
        if "wav.scp" in data.tables and utt not in report.dropped:
            recording = data.recording(utt)
            if recording not in data.tables["wav.scp"]:
                drop(utt, f"recording {recording} missing from wav.scp" if "segments" in data.tables
                     else "missing from wav.scp")
    for name in ("utt2spk", "wav.scp", "feats.scp"):
        for key, value in data.tables.get(name, {}).items():
            if not value and (name != "wav.scp" or "segments" not in data.tables):
                drop(key, f"no value in {name}")

    keep = sorted(candidates - set(report.dropped))
    if not keep:
        utt, reasons = next(iter(report.dropped.items()))
        raise DataDirError(f"{data_dir}: fixing would drop every utterance, so nothing was changed; "
                           f"e.g. {utt}: {'; '.join(reasons)}")
    fixed = data.select(keep)
    backup = data_dir / ".backup"
    for name in ALL_FILES:
        if name not in fixed:
            continue
        if originals.get(name) == format_table(fixed[name]).encode("utf-8"):
            continue
        if name in originals:
            backup.mkdir(exist_ok=True)
            shutil.copy2(data_dir / name, backup / name)
            report.backup_dir = backup
        write_table(data_dir / name, fixed[name])
        report.changed_files.append(name)
    for utt, reasons in report.dropped.items():
        logger.info("fix %s: dropped %s: %s", data_dir, utt, "; ".join(reasons))
    return report


def _check_conflicting_duplicates(path: Path) -> None:
    seen: dict[str, Line] = {}
    for line in read_lines(path):
        first = seen.setdefault(line.key, line)
        if first.value != line.value:
            raise DataDirError(f"{path} line {line.number}: id {line.key} repeats line {first.number} with a different "
                               "value; remove one of them by hand")


# ---------------------------------------------------------------------------------------------- subset, combine


SUBSET_MODES = ("spread", "first", "last", "shuffle")


def subset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    n: int | None = None,
    mode: str = "spread",
    seed: int = 0,
    utt_list: Iterable[str] | None = None,
    spk_list: Iterable[str] | None = None,
) -> list[str]:
    """Copy part of ``src`` to ``dst`` and return the utterance ids kept (sorted).

    ``utt_list`` / ``spk_list`` keep those utterances / the utterances of those speakers (ids not in ``src`` are
    ignored, as Kaldi does). Then ``n`` utterances are picked: ``first``, ``last``, ``shuffle`` (random with
    ``seed``, reproducible) or ``spread`` (evenly spaced over the sorted ids, Kaldi's default).
    """
    if mode not in SUBSET_MODES:
        raise ValueError(f"mode must be one of {SUBSET_MODES}, got {mode!r}")
    data = _DataDir.load(src)
    utts = data.utts
    if utt_list is not None:
        wanted = set(utt_list)
        utts = [u for u in utts if u in wanted]
    if spk_list is not None:
        speakers = set(spk_list)
        utts = [u for u in utts if data.tables["utt2spk"][u] in speakers]
    if n is not None:
        if n <= 0 or n > len(utts):
            raise DataDirError(f"{src}: cannot take {n} utterance(s) out of {len(utts)}")
        if mode == "first":
            utts = utts[:n]
        elif mode == "last":
            utts = utts[-n:]
        elif mode == "shuffle":
            utts = sorted(random.Random(seed).sample(utts, n))
        else:
            utts = [utts[i * len(utts) // n] for i in range(n)]
    if not utts:
        raise DataDirError(f"{src}: the subset is empty")
    if Path(dst).resolve() == Path(src).resolve():
        raise DataDirError(f"{dst}: the destination must differ from the source")
    Path(dst).mkdir(parents=True, exist_ok=True)
    _write_tables(Path(dst), data.select(utts))
    return utts


def resample(src: str | os.PathLike, dst: str | os.PathLike, fs: int = 16000) -> int:
    """Copy ``src`` to ``dst`` with every recording of its wav.scp at ``fs`` Hz, mono, as 16-bit FLAC files under
    ``dst/audio/`` (channels averaged, scipy's polyphase resampling: ``espnet_llm.audio.load_audio``); other
    tables are copied. Recordings already written are kept, so an interrupted run resumes. Returns the count."""
    import soundfile as sf

    from espnet_llm.audio import load_audio

    data = _DataDir.load(src)
    if "wav.scp" not in data.tables:
        raise DataDirError(f"{src}: no wav.scp to resample")
    dst = Path(dst)
    if dst.resolve() == Path(src).resolve():
        raise DataDirError(f"{dst}: the destination must differ from the source")
    audio_dir = (dst / "audio").resolve()
    audio_dir.mkdir(parents=True, exist_ok=True)
    wav_scp = {}
    for rec, entry in data.tables["wav.scp"].items():
        out = audio_dir / f"{rec}.flac"
        if not out.is_file():
            tmp = out.with_name(f".{out.name}.tmp")
            sf.write(tmp, load_audio(entry, fs, utt_id=rec), fs, format="FLAC", subtype="PCM_16")
            os.replace(tmp, out)
        wav_scp[rec] = str(out)
    tables = data.select(data.utts)
    tables["wav.scp"] = wav_scp
    _write_tables(dst, tables)
    return len(wav_scp)


def concat_speakers(src: str | os.PathLike, dst: str | os.PathLike, pause: float = 1.0, fs: int = 16000,
                    single: bool = False) -> int:
    """One long recording per speaker of ``src``: its utterances in order, ``pause`` seconds of silence between
    them (16-bit FLAC under ``dst/audio/``, id ``<spk>-long``), its text their texts joined; with ``single``, one
    recording ``all-long`` of every utterance, speaker by speaker. ``dst/reference_segments``
    (Kaldi ``segments``: ``<utt> <recording> <start> <end>``) says where each utterance lies, so that the long-form
    decoding can be compared with decoding the reference segments one by one. Returns the number of recordings."""
    import numpy as np
    import soundfile as sf

    from espnet_llm.audio import load_audio

    data = _DataDir.load(src)
    for name in ("wav.scp", "text"):
        if name not in data.tables:
            raise DataDirError(f"{src}: no {name} to concatenate")
    audio_dir = (Path(dst) / "audio").resolve()
    audio_dir.mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(round(pause * fs)), np.float32)
    wav_scp, text, utt2spk, segments = {}, {}, {}, {}
    groups = sorted(utt2spk_to_spk2utt(data.tables["utt2spk"]).items())
    if single:
        groups = [("all", [u for _, utts in groups for u in utts])]
    for spk, utts in groups:
        rec = f"{spk}-long"
        pieces, at = [], 0
        for utt in utts:
            wav = load_audio(data.tables["wav.scp"][utt], fs, utt_id=utt)
            segments[utt] = f"{rec} {at / fs:.3f} {(at + len(wav)) / fs:.3f}"
            pieces += [wav, gap]
            at += len(wav) + len(gap)
        out = audio_dir / f"{rec}.flac"
        tmp = out.with_name(f".{out.name}.tmp")
        sf.write(tmp, np.concatenate(pieces[:-1]), fs, format="FLAC", subtype="PCM_16")
        os.replace(tmp, out)
        wav_scp[rec], utt2spk[rec] = str(out), spk
        text[rec] = " ".join(data.tables["text"][u] for u in utts if data.tables["text"].get(u))
    _write_tables(Path(dst), {"wav.scp": wav_scp, "text": text, "utt2spk": utt2spk,
                              "spk2utt": _format_spk2utt(utt2spk_to_spk2utt(utt2spk))})
    write_table(Path(dst) / "reference_segments", segments)
    return len(wav_scp)


def combine(dst: str | os.PathLike, srcs: Sequence[str | os.PathLike]) -> list[str]:
    """Merge the data dirs ``srcs`` into ``dst``; return warnings about files left out.

    A file is written only when every source has it (Kaldi's combine_data.sh does the same). An utterance id in
    two sources is an error, and so is a recording id of wav.scp that two sources map to different audio.
    """
    if not srcs:
        raise DataDirError("combine: no source data dirs given")
    dirs = [_DataDir.load(src) for src in srcs]
    has_segments = {"segments" in d.tables for d in dirs}
    if len(has_segments) > 1:
        raise DataDirError("combine: some sources have a segments file and some do not: "
                           + ", ".join(f"{d.path} ({'segments' if 'segments' in d.tables else 'none'})" for d in dirs))
    warnings = []
    names = [name for name in ALL_FILES if name != "spk2utt"]
    common = [name for name in names if all(name in d.tables for d in dirs)]
    for name in names:
        have = [str(d.path) for d in dirs if name in d.tables]
        if have and name not in common:
            warnings.append(f"combine: {name} is left out: only {', '.join(have)} have it")
    owner: dict[str, Path] = {}
    for d in dirs:
        for utt in d.tables["utt2spk"]:
            if utt in owner:
                raise DataDirError(f"combine: utterance id {utt} is in both {owner[utt]} and {d.path}")
            owner[utt] = d.path
    merged: dict[str, dict[str, str]] = {name: {} for name in common}
    for d in dirs:
        for name in common:
            for key, value in d.tables[name].items():
                if name == "wav.scp" and key in merged[name] and merged[name][key] != value:
                    raise DataDirError(f"combine: recording id {key} of {d.path / 'wav.scp'} is also in another "
                                       "source with different audio")
                merged[name][key] = value
    merged["spk2utt"] = _format_spk2utt(utt2spk_to_spk2utt(merged["utt2spk"]))
    Path(dst).mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        if name not in merged and (Path(dst) / name).is_file():
            (Path(dst) / name).unlink()
    _write_tables(Path(dst), merged)
    for warning in warnings:
        logger.warning(warning)
    return warnings


# ---------------------------------------------------------------------------------------------- split


def split(data_dir: str | os.PathLike, nj: int, by_speaker: bool = False) -> list[Path]:
    """Split ``data_dir`` into ``data_dir/split{nj}/{1..nj}`` like Kaldi's split_data.sh; return the part dirs.

    Each part gets a contiguous run of the sorted utterance ids, sizes differing by at most one; with
    ``by_speaker`` every speaker stays whole in one part and parts are balanced by utterance count. The parts
    are not rewritten when the source files and the options have not changed since the last split (a stamp
    file records a hash of them), so reruns are free.
    """
    data_dir = Path(data_dir)
    if nj < 1:
        raise DataDirError(f"split: nj must be >= 1, got {nj}")
    out = data_dir / f"split{nj}"
    parts = [out / str(i) for i in range(1, nj + 1)]
    stamp = _split_stamp(data_dir, nj, by_speaker)
    stamp_path = out / ".split_stamp"
    if stamp_path.is_file() and stamp_path.read_text() == stamp and all(p.is_dir() for p in parts):
        return parts

    data = _DataDir.load(data_dir)
    utts = data.utts
    if by_speaker:
        spk2utt = utt2spk_to_spk2utt(data.tables["utt2spk"])
        if nj > len(spk2utt):
            raise DataDirError(f"split: cannot split {len(spk2utt)} speaker(s) of {data_dir} into {nj} parts")
        groups = _balanced_groups([len(u) for u in spk2utt.values()], nj)
        speakers = list(spk2utt)
        chunks = [[u for s in speakers[a:b] for u in spk2utt[s]] for a, b in groups]
    else:
        if nj > len(utts):
            raise DataDirError(f"split: cannot split {len(utts)} utterance(s) of {data_dir} into {nj} parts")
        chunks = [utts[len(utts) * i // nj:len(utts) * (i + 1) // nj] for i in range(nj)]
    for part, chunk in zip(parts, chunks):
        part.mkdir(parents=True, exist_ok=True)
        _write_tables(part, data.select(chunk))
    write_text_atomic(stamp_path, stamp)
    return parts


def files_stamp(data_dir: str | os.PathLike, names: Iterable[str], options: str) -> str:
    """A hash of ``options`` and the named files of a data dir that exist: what an output made from them depends on."""
    digest = hashlib.sha1(f"{options}\n".encode())
    for name in names:
        path = Path(data_dir) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest() + "\n"


def _split_stamp(data_dir: Path, nj: int, by_speaker: bool) -> str:
    return files_stamp(data_dir, ALL_FILES, f"nj={nj} by_speaker={by_speaker}")


def _balanced_groups(sizes: list[int], nj: int) -> list[tuple[int, int]]:
    """Cut ``sizes`` into ``nj`` non-empty contiguous runs whose sums are close to total / nj."""
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    total = prefix[-1]
    bounds = [0]
    for j in range(1, nj):
        target = total * j / nj
        low, high = bounds[-1] + 1, len(sizes) - (nj - j)
        bounds.append(min(range(low, high + 1), key=lambda k: (abs(prefix[k] - target), k)))
    bounds.append(len(sizes))
    return list(zip(bounds, bounds[1:]))
