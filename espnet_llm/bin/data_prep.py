#!/usr/bin/env python3
"""Corpus -> Kaldi data dirs (`wav.scp`, `text`, `utt2spk`, `spk2utt`).

Usage:
    python -m espnet_llm.bin.data_prep --corpus an4 --root ../../../../shared/data/an4 --out_dir data
    python -m espnet_llm.bin.data_prep --corpus an4 --root /path/to/an4 --out_dir data --n_dev 100
    python -m espnet_llm.bin.data_prep --corpus librispeech --root /data/LibriSpeech --out_dir data
    python -m espnet_llm.bin.data_prep --corpus librispeech_100 --root /data/LibriSpeech --out_dir data
    python -m espnet_llm.bin.data_prep --corpus mls_german --root /data/mls --out_dir data
    python -m espnet_llm.bin.data_prep --corpus mls --root /data/mls --out_dir data
    python -m espnet_llm.bin.data_prep --corpus librivox --root ../../../../shared/data/librivox-clips --out_dir data

Writes `<out_dir>/{train,dev,test}/` for AN4 (dev = whole speakers held out of train, ~n_dev utts).
LibriSpeech: `train_960` (librispeech only), `train_clean_100`, `dev` (= dev_clean + dev_other), `dev_clean`,
`dev_other`, `test_clean`, `test_other`. MLS: `train`, `dev`, `test` of one language (`mls_<lang>`), or of all
eight with language-prefixed ids plus `dev_<lang>`, `test_<lang>` (`mls`). `--n_dev` is for AN4 only: the
other corpora have their own dev sets.
Every file is written atomically and the dirs are validated, so a rerun replaces them cleanly.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_llm import datadir
from espnet_llm.corpora import an4, librivox, librispeech, mls, write_datadir


def prepare_an4(root: Path, out_dir: Path, n_dev: int) -> None:
    if not (root / "etc").is_dir():
        raise an4.CorpusError(
            f"AN4 not found at {root} (no etc/ dir). Set AN4_ROOT in db.sh or pass --root."
        )
    train = an4.read_split(root, "train")
    test = an4.read_split(root, "test")
    dev_spk = set(an4.dev_speakers(train, n_dev))
    sets = {
        "train": [r for r in train if r[1] not in dev_spk],
        "dev": [r for r in train if r[1] in dev_spk],
        "test": test,
    }
    for name, rows in sets.items():
        write_datadir(
            out_dir / name,
            wav_scp={u: p for u, _, p, _ in rows},
            text={u: w for u, _, _, w in rows},
            utt2spk={u: s for u, s, _, _ in rows},
        )
        logging.info("%s: %d utterances, %d speakers", out_dir / name, len(rows), len({r[1] for r in rows}))


def prepare_librispeech(train_set: str):
    return lambda root, out_dir, n_dev: librispeech.prepare(root, out_dir, train_set)


def prepare_mls(langs):
    return lambda root, out_dir, n_dev: mls.prepare(root, out_dir, langs)


def prepare_librivox(root: Path, out_dir: Path, n_dev: int) -> None:
    """The clips as test-only sets `<out_dir>/librivox` and, when present, `<out_dir>/cards` (n_dev is unused)."""
    for subset in librivox.SUBSETS:
        if subset != "librivox" and not (root / subset).is_dir():
            continue
        rows = librivox.read_clips(root, subset)
        write_datadir(out_dir / subset, wav_scp={u: p for u, _, p, _ in rows},
                      text={u: w for u, _, _, w in rows}, utt2spk={u: s for u, s, _, _ in rows})
        logging.info("%s: %d utterances", out_dir / subset, len(rows))


CORPORA = {"an4": prepare_an4, "librivox": prepare_librivox}
CORPORA["librispeech"] = prepare_librispeech("train_960")
CORPORA["librispeech_100"] = prepare_librispeech("train_clean_100")
CORPORA["mls"] = prepare_mls(mls.LANGUAGES)
CORPORA.update({f"mls_{lang}": prepare_mls([lang]) for lang in mls.LANGUAGES})


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=sorted(CORPORA), required=True)
    parser.add_argument("--root", type=Path, required=True, help="corpus root directory")
    parser.add_argument("--out_dir", type=Path, required=True, help="where data/<set>/ dirs go")
    parser.add_argument("--n_dev", type=int, default=100, help="utterances held out of train for dev")
    return parser


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    try:
        CORPORA[args.corpus](args.root, args.out_dir, args.n_dev)
    except (an4.CorpusError, datadir.DataDirError) as e:
        sys.exit(f"data_prep: error: {e}")


if __name__ == "__main__":
    main()
