#!/usr/bin/env python3
"""Synthetic training speech with eSpeak NG: a text corpus -> 16 kHz FLAC + a Kaldi data dir.

Usage:
    python -m espnet_llm.bin.synth_speech --text ../../../../shared/data/text/librispeech-dev-clean \
        --out_dir data/synth --max_utts 600
    python -m espnet_llm.bin.synth_speech --text data/train/text --out_dir data/train_espeak --max_utts 100 \
        --voices en-us en-gb --min_words 1 --max_words 30 --seed 1

`--text` is a Kaldi text file or a directory searched for LibriSpeech `*.trans.txt` files. See
espnet_llm.corpora.espeak for what is drawn and how each utterance is voiced; a rerun keeps the audio already
written (an interrupted run resumes) and rewrites the data dir. Needs the `espeak-ng` program
(apt-get install espeak-ng; tools/install.sh installs it when run as root).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_llm import datadir
from espnet_llm.corpora import espeak
from espnet_llm.corpora.an4 import CorpusError


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, required=True, help="Kaldi text file or dir of *.trans.txt")
    parser.add_argument("--out_dir", type=Path, required=True, help="data dir to write (audio in <out_dir>/audio)")
    parser.add_argument("--max_utts", type=int, default=600, help="utterances to synthesise")
    parser.add_argument("--min_words", type=int, default=3, help="shortest transcript drawn, in words")
    parser.add_argument("--max_words", type=int, default=16, help="longest transcript drawn, in words")
    parser.add_argument("--voices", nargs="+", default=list(espeak.DEFAULT_VOICES), help="eSpeak NG voices")
    parser.add_argument("--rate", type=int, nargs=2, default=[140, 190], metavar=("MIN", "MAX"),
                        help="speaking rate range, words per minute")
    parser.add_argument("--pitch", type=int, nargs=2, default=[30, 70], metavar=("MIN", "MAX"),
                        help="pitch range (0-99)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    try:
        utts = espeak.prepare(args.text, args.out_dir, args.max_utts, voices=args.voices,
                              min_words=args.min_words, max_words=args.max_words, rate=tuple(args.rate),
                              pitch=tuple(args.pitch), seed=args.seed)
    except (CorpusError, datadir.DataDirError) as e:
        sys.exit(f"synth_speech: error: {e}")
    seconds = sum(int(n) for n in datadir.read_table(args.out_dir / "utt2num_samples").values()) / espeak.FS
    logging.info("%s: %d utterances, %d voices, %.1f min of speech", args.out_dir, len(utts),
                 len({u.voice for u in utts}), seconds / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
