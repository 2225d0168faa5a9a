#!/usr/bin/env python3
"""The clips in ../shared/data/librivox-clips -> Kaldi data dirs `librivox` and `cards` (out-of-domain test sets).

Usage:
    python local/librivox_data_prep.py --root ../../../../shared/data/librivox-clips --out_dir data

Subsets: `librivox` (5 clips of *Sense and Sensibility*, read literature; required) and `cards` (5 clips of playing
cards, "eight of spades four of clubs": numbers as in AN4, other words and another recording; written when
`<root>/cards` exists). Layout read: `<root>/<subset>/{fileids,transcription}` or
`<root>/<subset>/<subset>.{fileids,transcription}` (Sphinx format, as AN4) + `<root>/<subset>/<fileid>.wav`.
Utterance ids are `<subset>-<fileid>` with speaker `<subset>`; transcripts are upper-cased (AN4's convention, which
scoring uses).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List

from an4_data_prep import parse_transcription  # the same Sphinx transcription format as AN4 (local/ beside this)

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError, Row, write_rows

SUBSETS = ("librivox", "cards")


def read_clips(root: Path, subset: str = "librivox") -> List[Row]:
    """-> sorted [(utt_id, speaker, wav path, WORDS)]."""
    folder = root / subset
    prefix = "" if (folder / "fileids").is_file() else f"{subset}."
    trans = parse_transcription(folder / f"{prefix}transcription")
    fileids_path = folder / f"{prefix}fileids"
    if not fileids_path.is_file():
        raise CorpusError(f"{fileids_path}: fileids file not found")
    rows = []
    for n, fileid in enumerate(fileids_path.read_text(encoding="utf-8").split(), 1):
        if fileid not in trans:
            raise CorpusError(f"{fileids_path}:{n}: {fileid} has no transcription")
        wav = folder / f"{fileid}.wav"
        if not wav.is_file():
            raise CorpusError(f"{fileids_path}:{n}: audio {wav} not found")
        rows.append((f"{subset}-{fileid}", subset, str(wav.resolve()), trans[fileid].upper()))
    return sorted(rows)


def prepare(root: Path, out_dir: Path) -> None:
    """`<out_dir>/librivox` and, when `<root>/cards` exists, `<out_dir>/cards`; every subset read before any write."""
    sets = {subset: read_clips(root, subset) for subset in SUBSETS if subset == "librivox" or (root / subset).is_dir()}
    for subset, rows in sets.items():
        write_rows(out_dir / subset, rows)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="holds librivox/ (and cards/)")
    parser.add_argument("--out_dir", type=Path, required=True, help="where the librivox/ and cards/ dirs go")
    args = parser.parse_args(argv)
    try:
        prepare(args.root, args.out_dir)
    except (CorpusError, datadir.DataDirError) as e:
        sys.exit(f"librivox_data_prep.py: error: {e}")


if __name__ == "__main__":
    main()
