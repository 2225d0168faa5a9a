"""egs/an4/asr1/local/an4_data_prep.py: the AN4 reader (Sphinx transcripts + FLAC -> rows, dev speakers) and its
command line (validated Kaldi dirs data/{train,dev,test}, errors that name the file and line), on a tiny AN4 tree
and on the shared copy when present."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "egs" / "an4" / "asr1"
REAL_AN4 = REPO.parent / "shared" / "data" / "an4"
if str(RECIPE / "local") not in sys.path:
    sys.path.insert(0, str(RECIPE / "local"))
import an4_data_prep  # noqa: E402  (a recipe script, imported from the recipe's local/)

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
    assert an4_data_prep.parse_transcription(path) == {
        "an251-fash-b": "YES", "an406-fcaw-b": "RUBOUT G M", "an254-fash-b": "ENTER SIX"}


def test_utt_id_puts_speaker_first():
    assert an4_data_prep.utt_id("an251-fash-b") == "fash-an251-b"
    with pytest.raises(CorpusError, match="unexpected AN4 utterance id 'an251fash' "):
        an4_data_prep.utt_id("an251fash")


def test_read_split_rows_sorted_with_speakers_and_absolute_audio(corpus):
    rows = an4_data_prep.read_split(corpus, "train")
    assert [r[0] for r in rows] == sorted(an4_data_prep.utt_id(s) for s in TRAIN)
    assert rows[0] == ("fash-an251-b", "fash", str(corpus / "audio/an4_clstk/fash/an251-fash-b.flac"), "YES")
    assert all(uid.startswith(spk + "-") and Path(p).is_absolute() and Path(p).is_file() for uid, spk, p, _ in rows)
    test = an4_data_prep.read_split(corpus, "test")
    assert [(r[0], r[3]) for r in test] == [("fcaw-an406-b", "RUBOUT G M E F THREE NINE"),
                                            ("fcaw-an407-b", "ERASE C Q Q F SEVEN"),
                                            ("mjxl-an440-b", "B A O Z FIVE THREE")]


def test_find_audio_falls_back_to_wav_dir(corpus):
    fileid = "an4_clstk/fash/an251-fash-b"
    (corpus / "audio" / f"{fileid}.flac").unlink()
    wav = corpus / "wav" / f"{fileid}.wav"
    wav.parent.mkdir(parents=True)
    soundfile.write(wav, np.zeros(800, np.float32), 16000)
    assert an4_data_prep.find_audio(corpus, fileid) == wav


def test_dev_speakers_are_whole_speakers_spread_over_the_list(corpus):
    rows = an4_data_prep.read_split(corpus, "train")  # fash 3, fbbh 2, mcen 2, mjgw 2 utterances
    assert an4_data_prep.dev_speakers(rows, 2) == ["fash"]
    assert an4_data_prep.dev_speakers(rows, 4) == ["fash", "mcen"]
    assert an4_data_prep.dev_speakers(rows, 6) == ["fash", "fbbh", "mcen"]


@pytest.mark.parametrize("n_dev", [0, -3, 9, 20])
def test_dev_speakers_rejects_sizes_that_leave_no_dev_or_no_train(corpus, n_dev):
    rows = an4_data_prep.read_split(corpus, "train")
    with pytest.raises(CorpusError, match=f"n_dev={n_dev}"):
        an4_data_prep.dev_speakers(rows, n_dev)


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
    with pytest.raises(CorpusError) as err:
        an4_data_prep.parse_transcription(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_transcription_not_utf8_or_missing(tmp_path):
    path = tmp_path / "an4_train.transcription"
    with pytest.raises(CorpusError, match="transcription file not found"):
        an4_data_prep.parse_transcription(path)
    path.write_bytes(b"<s> CAF\xe9 </s> (an1-fash-b)\n")
    with pytest.raises(CorpusError, match="not UTF-8"):
        an4_data_prep.parse_transcription(path)


def test_missing_audio_names_the_fileid(corpus):
    (corpus / "audio/an4_clstk/mcen/an32-mcen-b.flac").unlink()
    with pytest.raises(CorpusError) as err:
        an4_data_prep.read_split(corpus, "train")
    assert str(err.value) == f"audio for an4_clstk/mcen/an32-mcen-b not found under {corpus}/audio or {corpus}/wav"


def test_fileids_and_transcriptions_must_match(corpus):
    fileids = corpus / "etc/an4_train.fileids"
    ids = fileids.read_text().split()
    fileids.write_text("\n".join(ids + ["an4_clstk/fash/an999-fash-b"]) + "\n")
    with pytest.raises(CorpusError, match=f"^{fileids}:10: an999-fash-b has no transcription$"):
        an4_data_prep.read_split(corpus, "train")
    fileids.write_text("\n".join(ids[1:]) + "\n")
    with pytest.raises(CorpusError, match=r"transcriptions without audio id: \['an251-fash-b'\]"):
        an4_data_prep.read_split(corpus, "train")
    fileids.write_text("\n".join(ids + ["an4_clstk/other/an251-fash-b"]) + "\n")
    with pytest.raises(CorpusError) as err:
        an4_data_prep.read_split(corpus, "train")
    assert str(err.value) == f"{fileids}:10: duplicate utterance id an251-fash-b (an4_clstk/other/an251-fash-b)"
    fileids.unlink()
    with pytest.raises(CorpusError, match="fileids file not found"):
        an4_data_prep.read_split(corpus, "train")


@pytest.mark.skipif(not (REAL_AN4 / "etc").is_dir(), reason=f"AN4 not at {REAL_AN4}")
def test_real_an4_rows_and_dev_speakers():
    train, test = an4_data_prep.read_split(REAL_AN4, "train"), an4_data_prep.read_split(REAL_AN4, "test")
    assert (len(train), len(test)) == (948, 130)
    # audio paths are absolute with symlinks resolved (../shared may be a link)
    assert train[0] == ("fash-an251-b", "fash", str((REAL_AN4 / "audio/an4_clstk/fash/an251-fash-b.flac").resolve()),
                        "YES")
    assert test[0][0] == "fcaw-an406-b" and test[0][3] == "RUBOUT G M E F THREE NINE"
    dev = an4_data_prep.dev_speakers(train, 100)
    assert sum(r[1] in dev for r in train) == 100
    assert dev == ["fash", "fkdo", "ftal", "mcrt", "mema", "mjhp", "mmsh", "msct"]


def prep_error(root: Path, out: Path, *extra: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        an4_data_prep.main(["--root", str(root), "--out_dir", str(out), *extra])
    assert not (out / "train").exists()
    return str(exit_info.value.code)


def test_writes_sorted_validated_dirs_with_dev_speakers_held_out(corpus, tmp_path):
    out = tmp_path / "data"
    an4_data_prep.main(["--root", str(corpus), "--out_dir", str(out), "--n_dev", "2"])
    audio = corpus / "audio" / "an4_clstk"
    assert (out / "dev" / "wav.scp").read_text() == "".join(
        f"fash-an{n}-b {audio}/fash/an{n}-fash-b.flac\n" for n in (251, 253, 254))
    assert (out / "dev" / "text").read_text() == "fash-an251-b YES\nfash-an253-b GO\nfash-an254-b ENTER SIX\n"
    assert (out / "dev" / "spk2utt").read_text() == "fash fash-an251-b fash-an253-b fash-an254-b\n"
    assert (out / "train" / "utt2spk").read_text() == (
        "fbbh-an1-b fbbh\nfbbh-an2-b fbbh\nmcen-an31-b mcen\nmcen-an32-b mcen\nmjgw-an41-b mjgw\nmjgw-an42-b mjgw\n")
    assert (out / "test" / "text").read_text() == (
        "fcaw-an406-b RUBOUT G M E F THREE NINE\nfcaw-an407-b ERASE C Q Q F SEVEN\nmjxl-an440-b B A O Z FIVE THREE\n")
    for name in ("train", "dev", "test"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["spk2utt", "text", "utt2spk", "wav.scp"]
        assert datadir.validate(out / name) == []  # no warnings: speakers are id prefixes
        ids = list(datadir.read_table(out / name / "wav.scp"))
        assert ids == sorted(ids)
        assert all(Path(p).is_file() for p in datadir.read_table(out / name / "wav.scp").values())


def test_rerun_replaces_the_dirs(corpus, tmp_path):
    out = tmp_path / "data"
    argv = ["--root", str(corpus), "--out_dir", str(out), "--n_dev", "4"]
    an4_data_prep.main(argv)
    first = {p: p.read_bytes() for p in sorted(out.glob("*/*"))}
    assert len(first) == 12
    (out / "train" / "text").write_text("stale\n")
    an4_data_prep.main(argv)
    assert {p: p.read_bytes() for p in sorted(out.glob("*/*"))} == first
    assert list(datadir.read_table(out / "dev" / "utt2spk").values()) == ["fash"] * 3 + ["mcen"] * 2


def test_missing_corpus_root_names_it_and_an4_root(tmp_path):
    root = tmp_path / "nowhere"
    assert prep_error(root, tmp_path / "data") == (
        f"an4_data_prep.py: error: AN4 not found at {root} (no etc/ dir). Set AN4_ROOT in db.sh or pass --root.")


def test_command_line_exit_status_and_message(tmp_path):
    result = subprocess.run([sys.executable, "local/an4_data_prep.py", "--root", str(tmp_path / "nowhere"),
                             "--out_dir", str(tmp_path / "data")],
                            cwd=RECIPE, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("Set AN4_ROOT in db.sh or pass --root.")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("line, message", [
    ("<s> GO </s> an999-fash-b", ":2: cannot parse transcription line '<s> GO </s> an999-fash-b'"),
    ("<s> NO </s> (an251-fash-b)", ":2: duplicate utterance id an251-fash-b"),
    ("<s>  </s> (an999-fash-b)", ":2: empty transcript for an999-fash-b"),
])
def test_bad_transcription_line_stops_before_any_dir(corpus, tmp_path, line, message):
    path = corpus / "etc" / "an4_train.transcription"
    path.write_text(path.read_text().replace("<s> GO </s> (an253-fash-b)", line))
    assert prep_error(corpus, tmp_path / "data") == f"an4_data_prep.py: error: {path}{message}"


def test_missing_test_audio_stops_before_any_dir(corpus, tmp_path):
    (corpus / "audio" / "an4test_clstk" / "mjxl" / "an440-mjxl-b.flac").unlink()
    assert prep_error(corpus, tmp_path / "data") == ("an4_data_prep.py: error: audio for an4test_clstk/mjxl/an440-mjxl-b "
                                                     f"not found under {corpus}/audio or {corpus}/wav")


@pytest.mark.parametrize("n_dev", ["0", "9"])
def test_n_dev_that_empties_dev_or_train_is_an_error(corpus, tmp_path, n_dev):
    message = prep_error(corpus, tmp_path / "data", "--n_dev", n_dev)
    assert message.startswith(f"an4_data_prep.py: error: n_dev={n_dev}: ")


@pytest.mark.skipif(not (REAL_AN4 / "etc").is_dir(), reason=f"AN4 not at {REAL_AN4}")
def test_real_an4_dirs(tmp_path):
    out = tmp_path / "data"
    an4_data_prep.main(["--root", str(REAL_AN4), "--out_dir", str(out)])
    utt2spk = {name: datadir.read_table(out / name / "utt2spk") for name in ("train", "dev", "test")}
    assert {name: len(t) for name, t in utt2spk.items()} == {"train": 848, "dev": 100, "test": 130}
    assert not set(utt2spk["train"].values()) & set(utt2spk["dev"].values())
    assert (len(set(utt2spk["train"].values())), len(set(utt2spk["dev"].values()))) == (66, 8)
    assert datadir.read_table(out / "dev" / "text")["fash-an251-b"] == "YES"
    assert datadir.read_table(out / "test" / "wav.scp")["fcaw-an406-b"] == str(
        (REAL_AN4 / "audio" / "an4test_clstk" / "fcaw" / "an406-fcaw-b.flac").resolve())  # symlinks resolved
    for name in utt2spk:
        assert datadir.validate(out / name) == []
