#!/usr/bin/env python3
"""LibriSpeech: `<spk>-<chapter>.trans.txt` + FLAC per chapter -> Kaldi data dirs.

Usage:
    python local/librispeech_data_prep.py --root /data/LibriSpeech --out_dir data
    python local/librispeech_data_prep.py --root /data/LibriSpeech --out_dir data --train_set train_clean_100

Layout read (the OpenSLR tarballs, extracted into `<root>` or `<root>/LibriSpeech`):
    <subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt     `<spk>-<chapter>-<utt> WORDS` per line
    <subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac
Subsets: train-clean-100, train-clean-360, train-other-500, dev-clean, dev-other, test-clean, test-other.

Data dirs written (as ESPnet's egs2/librispeech): `dev_clean`, `dev_other`, `test_clean`, `test_other`,
`dev` (= dev_clean + dev_other), `train_clean_100`, and with `--train_set train_960` (the default) also `train_960`
(the three training subsets combined; `train_clean_100` needs only its own subset and the dev/test ones).
Utterance ids are the corpus's own; the speaker is `<spk>-<chapter>`, as in Kaldi's recipe. Every subset is read and
checked before anything is written, so a broken corpus leaves `--out_dir` as it was.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Sequence

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError, Row, write_rows

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
           "test-other")
TRAIN_SETS = {"train_clean_100": SUBSETS[:1], "train_960": SUBSETS[:3]}
EVAL_SETS = {"dev_clean": ("dev-clean",), "dev_other": ("dev-other",), "test_clean": ("test-clean",),
             "test_other": ("test-other",), "dev": ("dev-clean", "dev-other")}


def subset_dir(root: Path, subset: str) -> Path:
    """`<root>/<subset>`, or `<root>/LibriSpeech/<subset>` as the tarballs extract."""
    for cand in (root / subset, root / "LibriSpeech" / subset):
        if cand.is_dir():
            return cand
    raise CorpusError(f"LibriSpeech subset {subset} not found: neither {root / subset} nor "
                      f"{root / 'LibriSpeech' / subset} is a directory. Set LIBRISPEECH in db.sh or pass --root.")


def read_chapter(chapter_dir: Path, spk: str, chapter: str) -> List[Row]:
    trans = chapter_dir / f"{spk}-{chapter}.trans.txt"
    if not trans.is_file():
        raise CorpusError(f"{trans}: transcript file not found")
    try:
        lines = trans.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CorpusError(f"{trans}: not UTF-8 ({e})") from None
    rows: Dict[str, Row] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        utt, _, words = line.strip().partition(" ")
        words = " ".join(words.split())
        if not utt.startswith(f"{spk}-{chapter}-"):
            raise CorpusError(f"{trans}:{n}: utterance id {utt!r} is not of chapter {spk}-{chapter}")
        if not words:
            raise CorpusError(f"{trans}:{n}: empty transcript for {utt}")
        if utt in rows:
            raise CorpusError(f"{trans}:{n}: duplicate utterance id {utt}")
        flac = chapter_dir / f"{utt}.flac"
        if not flac.is_file():
            raise CorpusError(f"{trans}:{n}: audio of {utt} not found ({flac})")
        rows[utt] = (utt, f"{spk}-{chapter}", str(flac.resolve()), words)
    untranscribed = sorted(p.name for p in chapter_dir.glob("*.flac") if p.stem not in rows)
    if untranscribed:
        raise CorpusError(f"{trans}: no transcript for {len(untranscribed)} audio file(s), e.g. {untranscribed[0]}")
    return list(rows.values())


def read_subset(root: Path, subset: str) -> List[Row]:
    """-> sorted rows of one subset, e.g. `dev-clean`."""
    if subset not in SUBSETS:
        raise CorpusError(f"unknown LibriSpeech subset {subset!r} (one of {', '.join(SUBSETS)})")
    base = subset_dir(root, subset)
    rows: List[Row] = []
    for spk_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for chapter_dir in sorted(p for p in spk_dir.iterdir() if p.is_dir()):
            rows += read_chapter(chapter_dir, spk_dir.name, chapter_dir.name)
    if not rows:
        raise CorpusError(f"{base}: no <spk>/<chapter>/*.trans.txt found: not a LibriSpeech subset")
    return sorted(rows)


def combine(rows_by_subset: Dict[str, List[Row]], subsets: Sequence[str]) -> List[Row]:
    """Rows of several subsets, sorted; an utterance id in two of them is an error."""
    owner: Dict[str, str] = {}
    for subset in subsets:
        for row in rows_by_subset[subset]:
            if row[0] in owner:
                raise CorpusError(f"utterance {row[0]} is in both {owner[row[0]]} and {subset}")
            owner[row[0]] = subset
    return sorted(row for subset in subsets for row in rows_by_subset[subset])


def prepare(root: Path, out_dir: Path, train_set: str = "train_960") -> None:
    """Write `<out_dir>/{train_clean_100[,train_960],dev,dev_clean,dev_other,test_clean,test_other}`.

    Every subset is read and checked before anything is written, so a broken corpus leaves `out_dir` as it was.
    """
    if train_set not in TRAIN_SETS:
        raise CorpusError(f"unknown LibriSpeech training set {train_set!r} (one of {', '.join(TRAIN_SETS)})")
    names = {**EVAL_SETS, "train_clean_100": TRAIN_SETS["train_clean_100"], train_set: TRAIN_SETS[train_set]}
    rows_by_subset = {s: read_subset(root, s) for s in dict.fromkeys(s for ss in names.values() for s in ss)}
    sets = {name: combine(rows_by_subset, subsets) for name, subsets in names.items()}
    for name, rows in sets.items():
        write_rows(out_dir / name, rows)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="holds the extracted subsets (or LibriSpeech/)")
    parser.add_argument("--out_dir", type=Path, required=True, help="where the data/<set>/ dirs go")
    parser.add_argument("--train_set", choices=sorted(TRAIN_SETS), default="train_960",
                        help="training set: all 960 h, or the 100 h subset alone")
    args = parser.parse_args(argv)
    try:
        prepare(args.root, args.out_dir, args.train_set)
    except (CorpusError, datadir.DataDirError) as e:
        sys.exit(f"librispeech_data_prep.py: error: {e}")


if __name__ == "__main__":
    main()
