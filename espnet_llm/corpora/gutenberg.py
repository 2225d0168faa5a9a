"""Project Gutenberg books (plain text) -> sentences normalised as LibriSpeech transcripts, as a Kaldi `text`.

Layout read: `<root>/<book>.txt` (e.g. NLTK's Gutenberg selection in ../shared/data/text/gutenberg: `austen-emma.txt`,
`chesterton-brown.txt`, ...), UTF-8 or, failing that, ISO-8859-1 (the encoding of older Gutenberg etexts; logged). Used for out-of-domain training text: the transcripts of synthetic speech
(espnet_llm.corpora.tts) and text LLM training.

Normalisation, the LibriSpeech convention (upper case, words and inner apostrophes only):
- the text is split into paragraphs at blank lines and paragraphs into sentences after `.`, `!`, `?` (and `;`,
  `:`, which end most of the long clauses of these books), not after the abbreviations Mr, Mrs, Dr, St, which are
  spelled out (MISTER, MISSUS, DOCTOR, SAINT) as LibriSpeech's readers say them;
- accents are dropped (`café` -> `CAFE`); hyphens, dashes and underscores become spaces (`blue-green` -> `BLUE GREEN`), other punctuation goes;
- a sentence with a digit is left out (LibriSpeech spells numbers; reading them is not this module's job), as is
  one with a word of one letter other than A, I and O that is not a spelt abbreviation (chapter numerals).
Sentence ids are `<book>-<nnnnnn>` (the book's file name without `.txt`, its sentences numbered from 0).
"""
from __future__ import annotations

import fnmatch
import logging
import re
import unicodedata
from pathlib import Path
from typing import List, Sequence, Tuple

from espnet_llm.corpora.an4 import CorpusError

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
