"""egs/an4/asr1/local/synth_text.py: LibriSpeech transcripts and Gutenberg books -> the Kaldi text AN4's synthetic
speech draws from: reading the trees, the Gutenberg sentence normaliser (splitting, normalisation, encodings, book
exclusion), the errors that name the file, line, directory or pattern, and the command line."""
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_llm import datadir, tts
from espnet_llm.corpus import CorpusError

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "egs" / "an4" / "asr1"
SHARED_TEXT = REPO.parent / "shared" / "data" / "text"
if str(RECIPE / "local") not in sys.path:
    sys.path.insert(0, str(RECIPE / "local"))
import synth_text  # noqa: E402  (a recipe script, imported from the recipe's local/)

BOOK = """[The Wisdom of Father Brown by G. K. Chesterton 1914]


I. The Absence of Mr Glass


THE consulting-rooms of Dr. Orion Hood, the eminent criminologist,
lay along the sea-front.  Was it _very_ tidy?  Yes; it was!
\u201cDon\u2019t go\u2014please,\u201d said Mr. Hood at the caf\u00e9.
He had 3 clocks.
"""


def librispeech_text(root: Path) -> Path:
    chapter = root / "dev-clean" / "84" / "121550"
    chapter.mkdir(parents=True)
    (chapter / "84-121550.trans.txt").write_text(
        "84-121550-0000 HE WAS NOT AN ILL DISPOSED YOUNG MAN\n"
        "84-121550-0001 YES\n"
        "84-121550-0002 HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF\n"
        "84-121550-0003 I DON'T KNOW SAID SHAGGY\n")
    return root


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
    assert synth_text.normalize(sentence) == words


def test_split_sentences_joins_lines_and_keeps_abbreviations():
    assert synth_text.split_sentences("Mr. Hood came\nin.  He sat; then\n\nA new para") == [
        "Mr. Hood came in.", "He sat;", "then", "A new para"]


def test_read_books_ids_exclusion_and_latin1(tmp_path, caplog):
    (tmp_path / "chesterton-brown.txt").write_text(BOOK, encoding="utf-8")
    (tmp_path / "austen-sense.txt").write_bytes("Elinor smiled at the na\u00efve fianc\u00e9.\n".encode("latin-1"))
    rows = synth_text.read_books(tmp_path)
    assert ("austen-sense-000000", "ELINOR SMILED AT THE NAIVE FIANCE") in rows
    assert "ISO-8859-1" in caplog.text and "austen-sense.txt" in caplog.text
    brown = [w for u, w in rows if u.startswith("chesterton-brown-")]
    assert "YES" in brown and "DON'T GO PLEASE SAID MISTER HOOD AT THE CAFE" in brown
    assert not any("CLOCKS" in w for w in brown)
    assert [u for u, _ in rows] == sorted(u for u, _ in rows) and len({u for u, _ in rows}) == len(rows)
    assert not any(u.startswith("austen-") for u, _ in synth_text.read_books(tmp_path, exclude=["austen-*"]))
    with pytest.raises(CorpusError, match="no book matches melville-"):
        synth_text.read_books(tmp_path, exclude=["melville-*"])
    with pytest.raises(CorpusError, match="every book is excluded"):
        synth_text.read_books(tmp_path, exclude=["*"])
    with pytest.raises(CorpusError, match="Gutenberg directory not found"):
        synth_text.read_books(tmp_path / "none")


def test_read_text_from_a_librispeech_tree_and_from_a_kaldi_file(tmp_path):
    rows = synth_text.read_text(librispeech_text(tmp_path / "ls"))
    assert [u for u, _ in rows] == [f"84-121550-000{i}" for i in range(4)]
    kaldi = tmp_path / "text"
    kaldi.write_text("b  hello   there world\na good morning to you\n")
    assert synth_text.read_text(kaldi) == [("a", "GOOD MORNING TO YOU"), ("b", "HELLO THERE WORLD")]


@pytest.mark.parametrize("content, message", [
    (b"84-121550-0000 hello world\n84-121550-0000 again here\n", "line 2: duplicate utterance id 84-121550-0000"),
    (b"84-121550-0000 hello world\n84-121550-0001\n", "line 2: empty transcript for 84-121550-0001"),
    (b"84-121550-0000 caf\xe9 au lait\n", "line 1: not valid UTF-8"),
    (b"84-121550-0000 hello world\n\n84-121550-0001 there\n", "line 2: empty line"),
])
def test_bad_librispeech_transcript_names_the_file_and_line(tmp_path, content, message):
    trans = librispeech_text(tmp_path / "ls") / "dev-clean" / "84" / "121550" / "84-121550.trans.txt"
    trans.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as err:
        synth_text.read_text(tmp_path / "ls")
    assert str(err.value).startswith(str(trans))


def test_missing_text_and_empty_tree_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="text not found"):
        synth_text.read_text(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="no \\*.trans.txt"):
        synth_text.read_text(tmp_path)


def test_reads_a_gutenberg_dir_beside_librispeech_text(tmp_path):
    books = tmp_path / "gutenberg"
    books.mkdir()
    (books / "chesterton-brown.txt").write_text(BOOK, encoding="utf-8")
    kaldi = tmp_path / "text"
    kaldi.write_text("ls-1 he was not an ill disposed young man\n")
    rows = synth_text.read_texts([kaldi, books])
    assert rows[-1] == ("ls-1", "HE WAS NOT AN ILL DISPOSED YOUNG MAN")
    assert any(u.startswith("chesterton-brown-") for u, _ in rows)
    with pytest.raises(CorpusError, match="ls-1 is in both"):
        synth_text.read_texts([kaldi, kaldi])


def test_command_line_writes_a_kaldi_text_that_synth_speech_reads(tmp_path):
    books = tmp_path / "gutenberg"
    books.mkdir()
    (books / "chesterton-brown.txt").write_text(BOOK, encoding="utf-8")
    (books / "austen-sense.txt").write_text("Elinor smiled.\n", encoding="utf-8")
    out = tmp_path / "data" / "local" / "synth_text"
    librispeech = librispeech_text(tmp_path / "ls")
    run = lambda *books_opts: subprocess.run(  # noqa: E731
        [sys.executable, "local/synth_text.py", "--text", str(librispeech), str(books), *books_opts, "--out", str(out)],
        cwd=RECIPE, capture_output=True, text=True, timeout=60, check=False)
    result = run("--exclude_books", "austen-*")
    assert result.returncode == 0, result.stderr
    rows = tts.read_text(out)  # the Kaldi text file espnet_llm.bin.synth_speech speaks
    assert rows == sorted(datadir.read_table(out).items())
    assert ("84-121550-0003", "I DON'T KNOW SAID SHAGGY") in rows and not any(u.startswith("austen-") for u, _ in rows)
    assert ("chesterton-brown-000007", "YES") in rows
    result = run("--exclude_books", "melville-*")
    assert result.returncode == 1 and result.stderr.strip().startswith(
        f"synth_text.py: error: {books}: no book matches melville-* to exclude")


def test_shared_gutenberg_selection_if_present():
    """The shared copy: ~1 M words; without Austen and Shakespeare (the LibriVox book; early modern spelling)
    there is still plenty of prose."""
    root = SHARED_TEXT / "gutenberg"
    if not root.is_dir():
        pytest.skip(f"{root} not here")
    rows = synth_text.read_books(root, exclude=["austen-*", "shakespeare-*"])
    assert not any(u.startswith(("austen-", "shakespeare-")) for u, _ in rows)
    assert sum(len(w.split()) for _, w in rows) > 400_000
    assert all(w == w.upper() and not any(c.isdigit() for c in w) for _, w in rows)
