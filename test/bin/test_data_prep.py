"""Tests of espnet_llm.bin.data_prep: AN4 layout -> validated Kaldi dirs data/{train,dev,test}."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.bin.data_prep import main

REPO = Path(__file__).resolve().parents[2]
REAL_AN4 = REPO.parent / "shared" / "data" / "an4"
TRAIN = {"an251-fash-b": "YES", "an253-fash-b": "GO", "an254-fash-b": "ENTER SIX", "an1-fbbh-b": "ONE TWO",
         "an2-fbbh-b": "RUBOUT", "an31-mcen-b": "STOP", "an32-mcen-b": "H E L P", "an41-mjgw-b": "NINE",
         "an42-mjgw-b": "ERASE C Q"}
TEST = {"an406-fcaw-b": "RUBOUT G M E F THREE NINE", "an440-mjxl-b": "B A O Z FIVE THREE"}


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A tiny AN4 tree: etc/an4_{train,test}.{transcription,fileids}, 0.1 s FLACs under audio/."""
    root = tmp_path / "an4"
    (root / "etc").mkdir(parents=True)
    for split, subdir, utts in (("train", "an4_clstk", TRAIN), ("test", "an4test_clstk", TEST)):
        fileids = [f"{subdir}/{s.split('-')[1]}/{s}" for s in utts]
        for fileid in fileids:
            (root / "audio" / fileid).parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(root / "audio" / f"{fileid}.flac", np.full(1600, 0.1, np.float32), 16000)
        (root / "etc" / f"an4_{split}.transcription").write_text(
            "".join(f"<s> {w} </s> ({s})\n" for s, w in utts.items()))
        (root / "etc" / f"an4_{split}.fileids").write_text("".join(f + "\n" for f in fileids))
    return root


def prep_error(root: Path, out: Path, *extra: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["--corpus", "an4", "--root", str(root), "--out_dir", str(out), *extra])
    assert not (out / "train").exists()
    return str(exit_info.value.code)


def test_writes_sorted_validated_dirs_with_dev_speakers_held_out(corpus, tmp_path):
    out = tmp_path / "data"
    main(["--corpus", "an4", "--root", str(corpus), "--out_dir", str(out), "--n_dev", "2"])
    audio = corpus / "audio" / "an4_clstk"
    assert (out / "dev" / "wav.scp").read_text() == "".join(
        f"fash-an{n}-b {audio}/fash/an{n}-fash-b.flac\n" for n in (251, 253, 254))
    assert (out / "dev" / "text").read_text() == "fash-an251-b YES\nfash-an253-b GO\nfash-an254-b ENTER SIX\n"
    assert (out / "dev" / "spk2utt").read_text() == "fash fash-an251-b fash-an253-b fash-an254-b\n"
    assert (out / "train" / "utt2spk").read_text() == (
        "fbbh-an1-b fbbh\nfbbh-an2-b fbbh\nmcen-an31-b mcen\nmcen-an32-b mcen\nmjgw-an41-b mjgw\nmjgw-an42-b mjgw\n")
    assert (out / "test" / "text").read_text() == (
        "fcaw-an406-b RUBOUT G M E F THREE NINE\nmjxl-an440-b B A O Z FIVE THREE\n")
    for name in ("train", "dev", "test"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["spk2utt", "text", "utt2spk", "wav.scp"]
        assert datadir.validate(out / name) == []  # no warnings: speakers are id prefixes
        ids = list(datadir.read_table(out / name / "wav.scp"))
        assert ids == sorted(ids)
        assert all(Path(p).is_file() for p in datadir.read_table(out / name / "wav.scp").values())


def test_rerun_replaces_the_dirs(corpus, tmp_path):
    out = tmp_path / "data"
    argv = ["--corpus", "an4", "--root", str(corpus), "--out_dir", str(out), "--n_dev", "4"]
    main(argv)
    first = {p: p.read_bytes() for p in sorted(out.glob("*/*"))}
    assert len(first) == 12
    (out / "train" / "text").write_text("stale\n")
    main(argv)
    assert {p: p.read_bytes() for p in sorted(out.glob("*/*"))} == first
    assert list(datadir.read_table(out / "dev" / "utt2spk").values()) == ["fash"] * 3 + ["mcen"] * 2


def test_missing_corpus_root_names_it_and_an4_root(tmp_path):
    root = tmp_path / "nowhere"
    assert prep_error(root, tmp_path / "data") == (
        f"data_prep: error: AN4 not found at {root} (no etc/ dir). Set AN4_ROOT in db.sh or pass --root.")


def test_command_line_exit_status_and_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "espnet_llm.bin.data_prep", "--corpus", "an4", "--root",
                             str(tmp_path / "nowhere"), "--out_dir", str(tmp_path / "data")],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("Set AN4_ROOT in db.sh or pass --root.")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("line, message", [
    ("<s> GO </s> an999-fash-b", ":2: cannot parse transcription line '<s> GO </s> an999-fash-b'"),
    ("<s> NO </s> (an251-fash-b)", ":2: duplicate utterance id an251-fash-b"),
    ("<s>  </s> (an999-fash-b)", ":2: empty transcript for an999-fash-b"),
])
def test_bad_transcription_line_names_file_and_line(corpus, tmp_path, line, message):
    path = corpus / "etc" / "an4_train.transcription"
    path.write_text(path.read_text().replace("<s> GO </s> (an253-fash-b)", line))
    assert prep_error(corpus, tmp_path / "data") == f"data_prep: error: {path}{message}"


def test_missing_audio_names_the_fileid(corpus, tmp_path):
    (corpus / "audio" / "an4test_clstk" / "mjxl" / "an440-mjxl-b.flac").unlink()
    assert prep_error(corpus, tmp_path / "data") == (
        f"data_prep: error: audio for an4test_clstk/mjxl/an440-mjxl-b not found under {corpus}/audio or {corpus}/wav")


@pytest.mark.parametrize("n_dev", ["0", "9"])
def test_n_dev_that_empties_dev_or_train_is_an_error(corpus, tmp_path, n_dev):
    assert prep_error(corpus, tmp_path / "data", "--n_dev", n_dev).startswith(f"data_prep: error: n_dev={n_dev}: ")


@pytest.mark.skipif(not (REAL_AN4 / "etc").is_dir(), reason=f"AN4 not at {REAL_AN4}")
def test_real_an4(tmp_path):
    out = tmp_path / "data"
    main(["--corpus", "an4", "--root", str(REAL_AN4), "--out_dir", str(out)])
    utt2spk = {name: datadir.read_table(out / name / "utt2spk") for name in ("train", "dev", "test")}
    assert {name: len(t) for name, t in utt2spk.items()} == {"train": 848, "dev": 100, "test": 130}
    assert not set(utt2spk["train"].values()) & set(utt2spk["dev"].values())
    assert (len(set(utt2spk["train"].values())), len(set(utt2spk["dev"].values()))) == (66, 8)
    assert datadir.read_table(out / "dev" / "text")["fash-an251-b"] == "YES"
    assert datadir.read_table(out / "test" / "wav.scp")["fcaw-an406-b"] == str(
        (REAL_AN4 / "audio" / "an4test_clstk" / "fcaw" / "an406-fcaw-b.flac").resolve())  # symlinks resolved
    for name in utt2spk:
        assert datadir.validate(out / name) == []


def test_librivox_clips_give_a_dir_per_subset(tmp_path):
    root = tmp_path / "clips"
    for subset, prefix, text in (("librivox", "", "he was not an ill disposed man"), ("cards", "cards.", "ten of clubs")):
        (root / subset).mkdir(parents=True)
        (root / subset / f"{prefix}fileids").write_text("c1\n")
        (root / subset / f"{prefix}transcription").write_text(f"<s> {text} </s> (c1)\n")
        soundfile.write(root / subset / "c1.wav", np.zeros(1600, dtype=np.float32), 16000)
    main(["--corpus", "librivox", "--root", str(root), "--out_dir", str(tmp_path / "data")])
    assert datadir.read_table(tmp_path / "data" / "cards" / "text") == {"cards-c1": "TEN OF CLUBS"}
    assert datadir.read_table(tmp_path / "data" / "librivox" / "text") == {
        "librivox-c1": "HE WAS NOT AN ILL DISPOSED MAN"}
