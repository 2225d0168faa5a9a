#!/usr/bin/env python3
"""CMU AN4: Sphinx-format transcripts + FLAC audio -> Kaldi data dirs train / dev / test.

Usage:
    python local/an4_data_prep.py --root ../../../../shared/data/an4 --out_dir data
    python local/an4_data_prep.py --root /path/to/an4 --out_dir data --n_dev 100

Layout read (as in ../shared/data/an4 and the CMU tarball once converted to FLAC or kept as WAV/SPH):
    etc/an4_{train,test}.transcription    `<s> WORDS </s> (an251-fash-b)` or `WORDS (an406-fcaw-b)`
    etc/an4_{train,test}.fileids          `an4_clstk/fash/an251-fash-b`
    audio/<fileid>.flac (or wav/<fileid>.wav)

Utterance ids are `<spk>-<utt>` (e.g. `fash-an251-b`) so that the speaker is a prefix, as Kaldi requires.
The dev set is held out of train by speaker (whole speakers, about `--n_dev` utterances), so dev
measures speaker generalisation as test does; ESPnet's recipe holds out the last 100 ids instead.
Every file is written atomically and the dirs are validated, so a rerun replaces them cleanly; a broken corpus
is reported (file and line) before anything is written.
"""
from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from pathlib import Path
from typing import Dict, List

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError, Row, write_rows

_TRANS = re.compile(r"^(?:<s>\s*)?(?P<words>.*?)(?:\s*</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def parse_transcription(path: Path) -> Dict[str, str]:
    """`<s> WORDS </s> (an251-fash-b)` lines -> {sphinx id: WORDS}."""
    out: Dict[str, str] = {}
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except FileNotFoundError:
        raise CorpusError(f"{path}: transcription file not found") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _TRANS.match(line.strip())
        if m is None:
            raise CorpusError(f"{path}:{n}: cannot parse transcription line {line!r}")
        words = " ".join(m.group("words").split())
        if not words:
            raise CorpusError(f"{path}:{n}: empty transcript for {m.group('id')}")
        if m.group("id") in out:
            raise CorpusError(f"{path}:{n}: duplicate utterance id {m.group('id')}")
        out[m.group("id")] = words
    return out


def utt_id(sphinx_id: str) -> str:
    """`an251-fash-b` -> `fash-an251-b` (speaker first)."""
    parts = sphinx_id.split("-")
    if len(parts) != 3:
        raise CorpusError(f"unexpected AN4 utterance id {sphinx_id!r} (want e.g. an251-fash-b)")
    return f"{parts[1]}-{parts[0]}-{parts[2]}"


def find_audio(root: Path, fileid: str) -> Path:
    for cand in (root / "audio" / f"{fileid}.flac", root / "wav" / f"{fileid}.wav",
                 root / "wav" / f"{fileid}.sph", root / "audio" / f"{fileid}.wav"):
        if cand.is_file():
            return cand
    raise CorpusError(f"audio for {fileid} not found under {root}/audio or {root}/wav")


def read_split(root: Path, split: str) -> List[Row]:
    """-> sorted [(utt_id, speaker, audio path, words)] of `train` or `test`."""
    trans = parse_transcription(root / "etc" / f"an4_{split}.transcription")
    fileids_path = root / "etc" / f"an4_{split}.fileids"
    if not fileids_path.is_file():
        raise CorpusError(f"{fileids_path}: fileids file not found")
    rows, seen = [], set()
    for n, fileid in enumerate(fileids_path.read_text(encoding="utf-8").split(), 1):
        sphinx_id = Path(fileid).name
        if sphinx_id in seen:
            raise CorpusError(f"{fileids_path}:{n}: duplicate utterance id {sphinx_id} ({fileid})")
        seen.add(sphinx_id)
        if sphinx_id not in trans:
            raise CorpusError(f"{fileids_path}:{n}: {sphinx_id} has no transcription")
        uid = utt_id(sphinx_id)
        rows.append((uid, uid.split("-")[0], str(find_audio(root, fileid).resolve()), trans[sphinx_id]))
    if len(rows) != len(trans):
        missing = sorted(set(trans) - {Path(f).name for f in fileids_path.read_text().split()})
        raise CorpusError(f"{fileids_path}: transcriptions without audio id: {missing[:5]}")
    return sorted(rows)


def dev_speakers(rows: List[Row], n_dev: int) -> List[str]:
    """Whole speakers, picked evenly over the sorted speaker list, until >= n_dev utterances."""
    if not 0 < n_dev < len(rows):
        raise CorpusError(f"n_dev={n_dev}: dev needs 1 to {len(rows) - 1} of the {len(rows)} training utterances")
    counts: Dict[str, int] = {}
    for _, spk, _, _ in rows:
        counts[spk] = counts.get(spk, 0) + 1
    speakers = sorted(counts)
    per_speaker = sum(counts.values()) / len(speakers)
    step = max(1, int(len(speakers) // math.ceil(n_dev / per_speaker)))
    order = [spk for offset in range(step) for spk in speakers[offset::step]]
    picked, total = [], 0
    for spk in order:
        if total >= n_dev:
            break
        picked.append(spk)
        total += counts[spk]
    if len(picked) == len(speakers):
        raise CorpusError(f"n_dev={n_dev}: dev would take every training speaker; use a smaller n_dev")
    return sorted(picked)


def prepare(root: Path, out_dir: Path, n_dev: int) -> None:
    """Write `<out_dir>/{train,dev,test}` (dev = whole speakers held out of train, ~n_dev utterances)."""
    if not (root / "etc").is_dir():
        raise CorpusError(f"AN4 not found at {root} (no etc/ dir). Set AN4_ROOT in db.sh or pass --root.")
    train = read_split(root, "train")
    test = read_split(root, "test")
    dev_spk = set(dev_speakers(train, n_dev))
    sets = {"train": [r for r in train if r[1] not in dev_spk], "dev": [r for r in train if r[1] in dev_spk],
            "test": test}
    for name, rows in sets.items():
        write_rows(out_dir / name, rows)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="AN4 root (holds etc/ and audio/ or wav/)")
    parser.add_argument("--out_dir", type=Path, required=True, help="where the train/, dev/, test/ dirs go")
    parser.add_argument("--n_dev", type=int, default=100, help="utterances held out of train for dev")
    return parser


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    try:
        prepare(args.root, args.out_dir, args.n_dev)
    except (CorpusError, datadir.DataDirError) as e:
        sys.exit(f"an4_data_prep.py: error: {e}")


if __name__ == "__main__":
    main()
