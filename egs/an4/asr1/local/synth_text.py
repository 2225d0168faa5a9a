#!/usr/bin/env python3
"""Text for AN4's synthetic speech: LibriSpeech transcripts and Project Gutenberg books -> one Kaldi `text` file.

Usage:
    python local/synth_text.py --text ../../../../shared/data/text/librispeech-dev-clean --out data/local/synth_text
    python local/synth_text.py --text ../../../../shared/data/text/librispeech-dev-clean \
        ../../../../shared/data/text/gutenberg --exclude_books 'austen-*' 'shakespeare-*' --out data/local/synth_text

Then `python -m espnet_llm.bin.synth_speech --text data/local/synth_text --out_dir data/synth ...` speaks a seeded
draw of it (local/data.sh --synth_utts N). `--text` takes directories searched for LibriSpeech `*.trans.txt` files
(`<spk>-<chapter>-<utt> WORDS` lines), directories of Gutenberg books (`*.txt`, no `*.trans.txt`) and Kaldi text files;
their lines are combined (an id in two sources is an error), upper-cased and written sorted by id.

Gutenberg books (e.g. NLTK's selection in ../shared/data/text/gutenberg: `austen-emma.txt`, `chesterton-brown.txt`,
...) are read as UTF-8 or, failing that, ISO-8859-1 (the encoding of older Gutenberg etexts; logged) and normalised
as LibriSpeech transcripts (upper case, words and inner apostrophes only):
- the text is split into paragraphs at blank lines and paragraphs into sentences after `.`, `!`, `?` (and `;`,
  `:`, which end most of the long clauses of these books), not after the abbreviations Mr, Mrs, Dr, St, which are
  spelled out (MISTER, MISSUS, DOCTOR, SAINT) as LibriSpeech's readers say them;
- accents are dropped (`café` -> `CAFE`); hyphens, dashes and underscores become spaces (`blue-green` -> `BLUE GREEN`),
  other punctuation goes;
- a sentence with a digit is left out (LibriSpeech spells numbers; reading them is not this script's job), as is
  one with a word of one letter other than A, I and O that is not a spelt abbreviation (chapter numerals).
Sentence ids are `<book>-<nnnnnn>` (the book's file name without `.txt`, its sentences numbered from 0).
`--exclude_books` leaves books out (fnmatch patterns on the file name without `.txt`: AN4 leaves out Austen's, as
*Sense and Sensibility* is its LibriVox test's book, and Shakespeare's early modern spelling).
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import re
import sys
import unicodedata
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from espnet_llm import datadir, tts
from espnet_llm.corpus import CorpusError

ABBREVIATIONS = {"MR": "MISTER", "MRS": "MISSUS", "DR": "DOCTOR", "ST": "SAINT"}
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+")
_ABBREV_END = re.compile(r"\b(?:Mr|Mrs|Dr|St)\.$")
_NON_WORD = re.compile(r"[^A-Z' ]+")
_PUNCT_TO_ASCII = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2019": "'", "\u2018": "'", "\u201c": '"',
                                 "\u201d": '"'})


def normalize(sentence: str) -> str:
    """One sentence -> LibriSpeech-style words ('' when it is left out: a digit, or a stray single letter)."""
    if re.search(r"\d", sentence):
        return ""
    text = sentence.translate(_PUNCT_TO_ASCII)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[-_]+", " ", text.upper())
    text = _NON_WORD.sub(" ", text)
    words = []
    for word in text.split():
        word = word.strip("'")
        if not word:
            continue
        word = ABBREVIATIONS.get(word, word)
        if len(word) == 1 and word not in ("A", "I", "O"):
            return ""
        words.append(word)
    return " ".join(words)


def split_sentences(text: str) -> List[str]:
    """Paragraphs (blank-line separated) -> sentences, with line breaks inside a paragraph joined."""
    out: List[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        pending = ""
        for piece in _SENTENCE_END.split(para):
            pending = f"{pending} {piece}".strip()
            if _ABBREV_END.search(pending):  # "Mr. Dashwood": not a sentence end
                continue
            out.append(pending)
            pending = ""
        if pending:
            out.append(pending)
    return out


def read_book(path: Path) -> List[Tuple[str, str]]:
    """[(<book>-<nnnnnn>, WORDS)] of one book's kept sentences."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        logging.warning("%s: not UTF-8 (%s); read as ISO-8859-1", path, e)
        text = data.decode("latin-1")
    rows = []
    for n, sentence in enumerate(split_sentences(text)):
        words = normalize(sentence)
        if words:
            rows.append((f"{path.stem}-{n:06d}", words))
    return rows


def read_books(root: Path, exclude: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """Sentences of every `<root>/*.txt` book whose name (without .txt) matches none of the `exclude` patterns
    (fnmatch, e.g. `austen-*`), sorted by id."""
    if not root.is_dir():
        raise CorpusError(f"{root}: Gutenberg directory not found")
    all_books = sorted(root.glob("*.txt"))
    if not all_books:
        raise CorpusError(f"{root}: no *.txt books")
    unused = [pat for pat in exclude if not any(fnmatch.fnmatch(p.stem, pat) for p in all_books)]
    if unused:
        raise CorpusError(f"{root}: no book matches {', '.join(unused)} to exclude "
                          f"(patterns match file names without .txt: {' '.join(p.stem for p in all_books)})")
    books = [p for p in all_books if not any(fnmatch.fnmatch(p.stem, pat) for pat in exclude)]
    if not books:
        raise CorpusError(f"{root}: every book is excluded by {' '.join(exclude)}")
    rows: List[Tuple[str, str]] = []
    for book in books:
        rows.extend(read_book(book))
    return sorted(rows)


def read_text(source: Path, exclude_books: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """[(id, WORDS)] from a Kaldi text file, the `*.trans.txt` files under a directory, or the Gutenberg books
    (`*.txt`) of a directory, sorted by id."""
    if source.is_dir():
        files = sorted(source.rglob("*.trans.txt"))
        if not files:
            if any(source.glob("*.txt")):
                return read_books(source, exclude_books)
            raise CorpusError(f"{source}: no *.trans.txt files (LibriSpeech) or *.txt books (Gutenberg) here")
    elif source.is_file():
        files = [source]
    else:
        raise CorpusError(f"{source}: text not found (a Kaldi text file, or a directory of *.trans.txt or *.txt)")
    rows: Dict[str, str] = {}
    for path in files:
        for key, words in tts.read_text(path):  # the Kaldi text reader of synth_speech: same checks, same case
            if key in rows:
                raise CorpusError(f"{path}: duplicate utterance id {key}")
            rows[key] = words
    return sorted(rows.items())


def read_texts(sources: Sequence[Path], exclude_books: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """read_text of each source, combined and sorted by id; an id in two sources is an error."""
    rows: Dict[str, str] = {}
    origin: Dict[str, Path] = {}
    for source in sources:
        for utt, words in read_text(source, exclude_books):
            if utt in rows:
                raise CorpusError(f"utterance id {utt} is in both {origin[utt]} and {source}")
            rows[utt], origin[utt] = words, source
    return sorted(rows.items())


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, nargs="+", required=True,
                        help="dirs of LibriSpeech *.trans.txt or of Gutenberg *.txt books, or Kaldi text files")
    parser.add_argument("--exclude_books", nargs="*", default=[], metavar="PATTERN",
                        help="Gutenberg books left out (file names without .txt, fnmatch patterns: austen-*)")
    parser.add_argument("--out", type=Path, required=True, help="the Kaldi text file to write")
    args = parser.parse_args(argv)
    try:
        rows = read_texts(args.text, args.exclude_books)
    except CorpusError as e:
        sys.exit(f"synth_text.py: error: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    datadir.write_table(args.out, rows)
    logging.info("%s: %d lines from %s", args.out, len(rows), " ".join(map(str, args.text)))


if __name__ == "__main__":
    main()
