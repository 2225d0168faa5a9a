"""Gutenberg books -> LibriSpeech-style sentences (espnet_llm.corpora.gutenberg): sentence splitting, normalisation,
encodings, book exclusion, and the errors that name the directory or pattern."""
import pytest

from espnet_llm.corpora import gutenberg, tts
from espnet_llm.corpora.an4 import CorpusError

BOOK = """[The Wisdom of Father Brown by G. K. Chesterton 1914]


I. The Absence of Mr Glass


THE consulting-rooms of Dr. Orion Hood, the eminent criminologist,
lay along the sea-front.  Was it _very_ tidy?  Yes; it was!
\u201cDon\u2019t go\u2014please,\u201d said Mr. Hood at the caf\u00e9.
He had 3 clocks.
"""


@pytest.mark.parametrize("sentence, words", [
    ("The consulting-rooms of Dr. Orion Hood, the eminent criminologist,", "THE CONSULTING ROOMS OF DOCTOR ORION HOOD THE EMINENT CRIMINOLOGIST"),
    ("Was it _very_ tidy?", "WAS IT VERY TIDY"),
    ("\u201cDon\u2019t go\u2014please,\u201d said Mrs. Hood.", "DON'T GO PLEASE SAID MISSUS HOOD"),
    ("the caf\u00e9 of St. Paul's", "THE CAFE OF SAINT PAUL'S"),
    ("He had 3 clocks.", ""),           # digits: left out
    ("I. The Absence", "I THE ABSENCE"),  # I is a word
    ("IV. The Absence", "IV THE ABSENCE"),
    ("Chapter V.", ""),                 # a stray letter: a numeral
])
def test_normalize(sentence, words):
    assert gutenberg.normalize(sentence) == words


def test_split_sentences_joins_lines_and_keeps_abbreviations():
    assert gutenberg.split_sentences("Mr. Hood came\nin.  He sat; then\n\nA new para") == [
        "Mr. Hood came in.", "He sat;", "then", "A new para"]


def test_read_books_ids_exclusion_and_latin1(tmp_path, caplog):
    (tmp_path / "chesterton-brown.txt").write_text(BOOK, encoding="utf-8")
    (tmp_path / "austen-sense.txt").write_bytes("Elinor smiled at the na\u00efve fianc\u00e9.\n".encode("latin-1"))
    rows = gutenberg.read_books(tmp_path)
    assert ("austen-sense-000000", "ELINOR SMILED AT THE NAIVE FIANCE") in rows
    assert "ISO-8859-1" in caplog.text and "austen-sense.txt" in caplog.text
    brown = [w for u, w in rows if u.startswith("chesterton-brown-")]
    assert "YES" in brown and "DON'T GO PLEASE SAID MISTER HOOD AT THE CAFE" in brown
    assert not any("CLOCKS" in w for w in brown)
    assert [u for u, _ in rows] == sorted(u for u, _ in rows) and len({u for u, _ in rows}) == len(rows)
    assert not any(u.startswith("austen-") for u, _ in gutenberg.read_books(tmp_path, exclude=["austen-*"]))
    with pytest.raises(CorpusError, match="no book matches melville-"):
        gutenberg.read_books(tmp_path, exclude=["melville-*"])
    with pytest.raises(CorpusError, match="every book is excluded"):
        gutenberg.read_books(tmp_path, exclude=["*"])
    with pytest.raises(CorpusError, match="Gutenberg directory not found"):
        gutenberg.read_books(tmp_path / "none")


def test_tts_reads_a_gutenberg_dir_beside_librispeech_text(tmp_path):
    books = tmp_path / "gutenberg"
    books.mkdir()
    (books / "chesterton-brown.txt").write_text(BOOK, encoding="utf-8")
    kaldi = tmp_path / "text"
    kaldi.write_text("ls-1 he was not an ill disposed young man\n")
    rows = tts.read_texts([kaldi, books])
    assert rows[-1] == ("ls-1", "HE WAS NOT AN ILL DISPOSED YOUNG MAN")
    assert any(u.startswith("chesterton-brown-") for u, _ in rows)
    with pytest.raises(CorpusError, match="ls-1 is in both"):
        tts.read_texts([kaldi, kaldi])


def test_shared_gutenberg_selection_if_present():
    """The shared copy: ~1 M words; without Austen and Shakespeare (the LibriVox book; early modern spelling)
    there is still plenty of prose."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "text" / "gutenberg"
    if not root.is_dir():
        pytest.skip(f"{root} not here")
    rows = gutenberg.read_books(root, exclude=["austen-*", "shakespeare-*"])
    assert not any(u.startswith(("austen-", "shakespeare-")) for u, _ in rows)
    assert sum(len(w.split()) for _, w in rows) > 400_000
    assert all(w == w.upper() and not any(c.isdigit() for c in w) for _, w in rows)
