"""Tests of espnet_llm.corpora.an4 (Sphinx transcripts + FLAC -> rows) and corpora.write_datadir."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.corpora import an4, write_datadir

REAL_AN4 = Path(__file__).resolve().parents[3] / "shared" / "data" / "an4"

# sphinx id -> words; train uses the `<s> ... </s> (id)` form, test the bare `WORDS (id)` form, as AN4 does.
TRAIN = {
    "an251-fash-b": "YES", "an253-fash-b": "GO", "an254-fash-b": "ENTER SIX",
    "an1-fbbh-b": "ONE TWO", "an2-fbbh-b": "RUBOUT",
    "an31-mcen-b": "STOP", "an32-mcen-b": "H E L P",
    "an41-mjgw-b": "NINE", "an42-mjgw-b": "ERASE C Q",
}
TEST = {"an406-fcaw-b": "RUBOUT G M E F THREE NINE", "an407-fcaw-b": "ERASE C Q Q F SEVEN",
        "an440-mjxl-b": "B A O Z FIVE THREE"}


def make_an4(root: Path, train=TRAIN, test=TEST) -> Path:
    """A tiny AN4 tree: etc/an4_{train,test}.{transcription,fileids} and 0.1 s FLACs under audio/."""
    (root / "etc").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, subdir, utts in (("train", "an4_clstk", train), ("test", "an4test_clstk", test)):
        lines, fileids = [], []
        for sphinx_id, words in utts.items():
            lines.append(f"<s> {words} </s> ({sphinx_id})" if split == "train" else f"{words} ({sphinx_id})")
            fileid = f"{subdir}/{sphinx_id.split('-')[1]}/{sphinx_id}"
            fileids.append(fileid)
            flac = root / "audio" / f"{fileid}.flac"
            flac.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(flac, (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
        (root / "etc" / f"an4_{split}.transcription").write_text("\n".join(lines) + "\n")
        (root / "etc" / f"an4_{split}.fileids").write_text("\n".join(fileids) + "\n")
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_an4(tmp_path / "an4")


def test_parse_transcription_both_forms(tmp_path):
    path = tmp_path / "t.transcription"
    path.write_text("<s> YES </s> (an251-fash-b)\n\n  RUBOUT  G M   (an406-fcaw-b)  \n<s>ENTER SIX</s>(an254-fash-b)\n")
    assert an4.parse_transcription(path) == {
        "an251-fash-b": "YES", "an406-fcaw-b": "RUBOUT G M", "an254-fash-b": "ENTER SIX"}


def test_utt_id_puts_speaker_first():
    assert an4.utt_id("an251-fash-b") == "fash-an251-b"
    with pytest.raises(an4.CorpusError, match="unexpected AN4 utterance id 'an251fash' "):
        an4.utt_id("an251fash")


def test_read_split_rows_sorted_with_speakers_and_absolute_audio(corpus):
    rows = an4.read_split(corpus, "train")
    assert [r[0] for r in rows] == sorted(an4.utt_id(s) for s in TRAIN)
    assert rows[0] == ("fash-an251-b", "fash", str(corpus / "audio/an4_clstk/fash/an251-fash-b.flac"), "YES")
    assert all(uid.startswith(spk + "-") and Path(p).is_absolute() and Path(p).is_file() for uid, spk, p, _ in rows)
    test = an4.read_split(corpus, "test")
    assert [(r[0], r[3]) for r in test] == [("fcaw-an406-b", "RUBOUT G M E F THREE NINE"),
                                            ("fcaw-an407-b", "ERASE C Q Q F SEVEN"),
                                            ("mjxl-an440-b", "B A O Z FIVE THREE")]


def test_find_audio_falls_back_to_wav_dir(corpus):
    fileid = "an4_clstk/fash/an251-fash-b"
    (corpus / "audio" / f"{fileid}.flac").unlink()
    wav = corpus / "wav" / f"{fileid}.wav"
    wav.parent.mkdir(parents=True)
    soundfile.write(wav, np.zeros(800, np.float32), 16000)
    assert an4.find_audio(corpus, fileid) == wav


def test_dev_speakers_are_whole_speakers_spread_over_the_list(corpus):
    rows = an4.read_split(corpus, "train")  # fash 3, fbbh 2, mcen 2, mjgw 2 utterances
    assert an4.dev_speakers(rows, 2) == ["fash"]
    assert an4.dev_speakers(rows, 4) == ["fash", "mcen"]
    assert an4.dev_speakers(rows, 6) == ["fash", "fbbh", "mcen"]


@pytest.mark.parametrize("n_dev", [0, -3, 9, 20])
def test_dev_speakers_rejects_sizes_that_leave_no_dev_or_no_train(corpus, n_dev):
    rows = an4.read_split(corpus, "train")
    with pytest.raises(an4.CorpusError, match=f"n_dev={n_dev}"):
        an4.dev_speakers(rows, n_dev)


@pytest.mark.parametrize("line, message", [
    ("<s> YES </s> an999-fash-b", ":2: cannot parse transcription line '<s> YES </s> an999-fash-b'"),
    ("<s> YES </s> (an999-fash-b", ":2: cannot parse transcription line"),
    ("<s> </s> (an999-fash-b)", ":2: empty transcript for an999-fash-b"),
    ("(an999-fash-b)", ":2: empty transcript for an999-fash-b"),
    ("<s> NO </s> (an251-fash-b)", ":2: duplicate utterance id an251-fash-b"),
])
def test_bad_transcription_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "an4_train.transcription"
    path.write_text(f"<s> YES </s> (an251-fash-b)\n{line}\n")
    with pytest.raises(an4.CorpusError) as err:
        an4.parse_transcription(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_transcription_not_utf8_or_missing(tmp_path):
    path = tmp_path / "an4_train.transcription"
    with pytest.raises(an4.CorpusError, match="transcription file not found"):
        an4.parse_transcription(path)
    path.write_bytes(b"<s> CAF\xe9 </s> (an1-fash-b)\n")
    with pytest.raises(an4.CorpusError, match="not UTF-8"):
        an4.parse_transcription(path)


def test_missing_audio_names_the_fileid(corpus):
    (corpus / "audio/an4_clstk/mcen/an32-mcen-b.flac").unlink()
    with pytest.raises(an4.CorpusError) as err:
        an4.read_split(corpus, "train")
    assert str(err.value) == f"audio for an4_clstk/mcen/an32-mcen-b not found under {corpus}/audio or {corpus}/wav"


def test_fileids_and_transcriptions_must_match(corpus):
    fileids = corpus / "etc/an4_train.fileids"
    ids = fileids.read_text().split()
    fileids.write_text("\n".join(ids + ["an4_clstk/fash/an999-fash-b"]) + "\n")
    with pytest.raises(an4.CorpusError, match=f"^{fileids}:10: an999-fash-b has no transcription$"):
        an4.read_split(corpus, "train")
    fileids.write_text("\n".join(ids[1:]) + "\n")
    with pytest.raises(an4.CorpusError, match=r"transcriptions without audio id: \['an251-fash-b'\]"):
        an4.read_split(corpus, "train")
    fileids.write_text("\n".join(ids + ["an4_clstk/other/an251-fash-b"]) + "\n")
    with pytest.raises(an4.CorpusError) as err:
        an4.read_split(corpus, "train")
    assert str(err.value) == f"{fileids}:10: duplicate utterance id an251-fash-b (an4_clstk/other/an251-fash-b)"
    fileids.unlink()
    with pytest.raises(an4.CorpusError, match="fileids file not found"):
        an4.read_split(corpus, "train")


def test_write_datadir_sorts_and_validates(tmp_path):
    out = tmp_path / "data" / "train"
    write_datadir(out, wav_scp={"b-2": "/x/b2.flac", "a-1": "/x/a1.flac", "b-1": "/x/b1.flac"},
                  text={"b-1": "NO", "a-1": "YES", "b-2": "GO"}, utt2spk={"b-2": "b", "b-1": "b", "a-1": "a"})
    assert (out / "wav.scp").read_text() == "a-1 /x/a1.flac\nb-1 /x/b1.flac\nb-2 /x/b2.flac\n"
    assert (out / "text").read_text() == "a-1 YES\nb-1 NO\nb-2 GO\n"
    assert (out / "spk2utt").read_text() == "a a-1\nb b-1 b-2\n"
    with pytest.raises(datadir.DataDirError, match="empty transcript"):
        write_datadir(tmp_path / "bad", wav_scp={"a-1": "/x"}, text={"a-1": ""}, utt2spk={"a-1": "a"})


@pytest.mark.skipif(not (REAL_AN4 / "etc").is_dir(), reason=f"AN4 not at {REAL_AN4}")
def test_real_an4():
    train, test = an4.read_split(REAL_AN4, "train"), an4.read_split(REAL_AN4, "test")
    assert (len(train), len(test)) == (948, 130)
    # audio paths are absolute with symlinks resolved (../shared may be a link)
    assert train[0] == ("fash-an251-b", "fash", str((REAL_AN4 / "audio/an4_clstk/fash/an251-fash-b.flac").resolve()),
                        "YES")
    assert test[0][0] == "fcaw-an406-b" and test[0][3] == "RUBOUT G M E F THREE NINE"
    dev = an4.dev_speakers(train, 100)
    assert sum(r[1] in dev for r in train) == 100
    assert dev == ["fash", "fkdo", "ftal", "mcrt", "mema", "mjhp", "mmsh", "msct"]
