#!/usr/bin/env python3
"""Multilingual LibriSpeech (MLS, OpenSLR 94): per-language transcripts + FLAC or Opus -> Kaldi data dirs.

Usage:
    python local/mls_data_prep.py --root /data/mls --out_dir data --lang german
    python local/mls_data_prep.py --root /data/mls --out_dir data --lang all
    python local/mls_data_prep.py --root /data/mls --out_dir data --lang german dutch

Layout read (one extracted tarball per language, `mls_<lang>` or the Opus release's `mls_<lang>_opus`):
    <root>/mls_<lang>/{train,dev,test}/transcripts.txt      `<spk>_<book>_<utt>\\t<text>` per line
    <root>/mls_<lang>/{train,dev,test}/audio/<spk>/<book>/<spk>_<book>_<utt>.flac   (.opus in the Opus release)
Opus files are read by soundfile when its libsndfile (>= 1.0.29) has the Opus codec; otherwise data prep stops
with an error saying so.

Utterance ids are the corpus ids with `-` for `_` (`10148-10119-0000`): with `-`, sorting by utterance id
and by speaker id agree (Kaldi's rule). The speaker is `<spk>`. One language writes `train`, `dev`, `test`;
several write the same three sets combined, with language-prefixed ids (`german-10148-10119-0000`, speaker
`german-10148`), plus `dev_<lang>` and `test_<lang>` for per-language scoring (`--lang all`: the eight languages).
Every split is read and checked before anything is written, so a broken corpus leaves `--out_dir` as it was.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import soundfile

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError, Row, write_rows

LANGUAGES = ("english", "german", "dutch", "french", "spanish", "italian", "portuguese", "polish")
SPLITS = ("train", "dev", "test")
AUDIO_EXTENSIONS = (".flac", ".opus")
_ID = re.compile(r"^(?P<spk>\d+)_(?P<book>\d+)_(?P<utt>\d+)$")


def language_dir(root: Path, lang: str) -> Path:
    """`<root>/mls_<lang>` (FLAC release) or `<root>/mls_<lang>_opus` (Opus release)."""
    if lang not in LANGUAGES:
        raise CorpusError(f"unknown MLS language {lang!r} (one of {', '.join(LANGUAGES)})")
    for cand in (root / f"mls_{lang}", root / f"mls_{lang}_opus"):
        if cand.is_dir():
            return cand
    raise CorpusError(f"MLS {lang} not found: neither {root / f'mls_{lang}'} nor {root / f'mls_{lang}_opus'} "
                      "is a directory. Set MLS in db.sh or pass --root.")


def opus_supported() -> bool:
    return "OPUS" in soundfile.available_subtypes("OGG")


def find_audio(split_dir: Path, spk: str, book: str, corpus_id: str) -> Optional[Path]:
    for ext in AUDIO_EXTENSIONS:
        cand = split_dir / "audio" / spk / book / f"{corpus_id}{ext}"
        if cand.is_file():
            return cand
    return None


def read_split(root: Path, lang: str, split: str, prefix: str = "") -> List[Row]:
    """-> sorted rows of `mls_<lang>/<split>`; ids and speakers get `prefix` (e.g. `german-`)."""
    if split not in SPLITS:
        raise CorpusError(f"unknown MLS split {split!r} (one of {', '.join(SPLITS)})")
    split_dir = language_dir(root, lang) / split
    trans = split_dir / "transcripts.txt"
    if not trans.is_file():
        raise CorpusError(f"{trans}: transcript file not found")
    try:
        lines = trans.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CorpusError(f"{trans}: not UTF-8 ({e})") from None
    rows: Dict[str, Row] = {}
    checked_opus = False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        corpus_id, tab, text = line.partition("\t")
        m = _ID.match(corpus_id.strip())
        if not tab or m is None:
            raise CorpusError(f"{trans}:{n}: cannot parse {line[:80]!r} (want '<spk>_<book>_<utt>\\t<text>')")
        words = " ".join(text.split())
        if not words:
            raise CorpusError(f"{trans}:{n}: empty transcript for {corpus_id}")
        utt = prefix + corpus_id.strip().replace("_", "-")
        if utt in rows:
            raise CorpusError(f"{trans}:{n}: duplicate utterance id {corpus_id}")
        audio = find_audio(split_dir, m.group("spk"), m.group("book"), corpus_id.strip())
        if audio is None:
            raise CorpusError(f"{trans}:{n}: audio of {corpus_id} not found "
                              f"({split_dir}/audio/{m.group('spk')}/{m.group('book')}/{corpus_id}.flac or .opus)")
        if audio.suffix == ".opus" and not checked_opus:
            if not opus_supported():
                raise CorpusError(f"{audio}: Opus audio, but soundfile's libsndfile "
                                  f"{soundfile.__libsndfile_version__} cannot decode Opus (needs libsndfile >= "
                                  "1.0.29 built with Opus); use the FLAC release of MLS or convert the files")
            checked_opus = True
        rows[utt] = (utt, prefix + m.group("spk"), str(audio.resolve()), words)
    if not rows:
        raise CorpusError(f"{trans}: no utterances")
    return sorted(rows.values())


def prepare(root: Path, out_dir: Path, langs: Sequence[str]) -> None:
    """Write `<out_dir>/{train,dev,test}` (one language) or those combined plus `{dev,test}_<lang>` (several).

    Every split is read and checked before anything is written, so a broken corpus leaves `out_dir` as it was.
    """
    langs = list(dict.fromkeys(langs))
    if not langs:
        raise CorpusError("no MLS language given")
    multilingual = len(langs) > 1
    per_lang = {(lang, split): read_split(root, lang, split, f"{lang}-" if multilingual else "")
                for lang in langs for split in SPLITS}
    sets = {split: sorted(row for lang in langs for row in per_lang[lang, split]) for split in SPLITS}
    if multilingual:
        sets.update({f"{split}_{lang}": per_lang[lang, split] for lang in langs for split in ("dev", "test")})
    for name, rows in sets.items():
        write_rows(out_dir / name, rows)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="holds mls_<lang>/ (or mls_<lang>_opus/)")
    parser.add_argument("--out_dir", type=Path, required=True, help="where the data/<set>/ dirs go")
    parser.add_argument("--lang", nargs="+", required=True, choices=LANGUAGES + ("all",),
                        help="one language, several (combined, language-prefixed ids), or all eight")
    args = parser.parse_args(argv)
    langs = LANGUAGES if "all" in args.lang else args.lang
    try:
        prepare(args.root, args.out_dir, langs)
    except (CorpusError, datadir.DataDirError) as e:
        sys.exit(f"mls_data_prep.py: error: {e}")


if __name__ == "__main__":
    main()
