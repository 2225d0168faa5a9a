"""egs/mls/asr1/local/mls_data_prep.py on tiny trees in the real Multilingual LibriSpeech layout (FLAC and Opus):
one language, several combined, the errors that name the transcript line or file, and the command line."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.audio import read_audio
from espnet_llm.corpus import CorpusError

RECIPE = Path(__file__).resolve().parents[3] / "egs" / "mls" / "asr1"
if str(RECIPE / "local") not in sys.path:
    sys.path.insert(0, str(RECIPE / "local"))
import mls_data_prep as mls  # noqa: E402  (a recipe script, imported from the recipe's local/)

# lang -> split -> {corpus id: text}; speaker 10 and 100 check that `-` ids sort like their speakers
CORPUS = {
    "german": {
        "train": {"100_1_0000": "ich bin", "10_2_0001": "guten tag", "10_2_0000": "ja"},
        "dev": {"3_4_0000": "nein danke"},
        "test": {"5_6_0000": "auf wiedersehen"},
    },
    "dutch": {
        "train": {"7_8_0000": "goedemorgen"},
        "dev": {"7_9_0000": "dank u"},
        "test": {"11_12_0000": "tot ziens"},
    },
}


def make_mls(root: Path, corpus=CORPUS, ext=".flac", suffix="") -> Path:
    """`mls_<lang>/<split>/transcripts.txt` + `audio/<spk>/<book>/<id><ext>` (0.1 s at 16 kHz)."""
    rng = np.random.default_rng(0)
    for lang, splits in corpus.items():
        for split, utts in splits.items():
            d = root / f"mls_{lang}{suffix}" / split
            d.mkdir(parents=True)
            (d / "transcripts.txt").write_text("".join(f"{u}\t{t}\n" for u, t in utts.items()))
            for corpus_id in utts:
                spk, book, _ = corpus_id.split("_")
                path = d / "audio" / spk / book / f"{corpus_id}{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                samples = (0.1 * rng.standard_normal(1600)).astype(np.float32)
                if ext == ".opus":
                    soundfile.write(path, samples, 16000, format="OGG", subtype="OPUS")
                else:
                    soundfile.write(path, samples, 16000)
    return root


def test_one_language_keeps_corpus_ids_with_dashes(tmp_path):
    root = make_mls(tmp_path / "mls")
    out = tmp_path / "data"
    mls.main(["--root", str(root), "--out_dir", str(out), "--lang", "german"])
    assert sorted(p.name for p in out.iterdir()) == ["dev", "test", "train"]
    for name in ("train", "dev", "test"):
        datadir.validate(out / name)
    assert datadir.read_table(out / "train" / "text") == {
        "10-2-0000": "ja", "10-2-0001": "guten tag", "100-1-0000": "ich bin"}
    assert list(datadir.read_table(out / "train" / "spk2utt")) == ["10", "100"]
    assert datadir.read_table(out / "dev" / "wav.scp") == {
        "3-4-0000": str(root / "mls_german" / "dev" / "audio" / "3" / "4" / "3_4_0000.flac")}


def test_multilingual_combines_with_language_prefixed_ids(tmp_path):
    root = make_mls(tmp_path / "mls")
    out = tmp_path / "data"
    mls.main(["--root", str(root), "--out_dir", str(out), "--lang", "german", "dutch"])
    assert sorted(p.name for p in out.iterdir()) == [
        "dev", "dev_dutch", "dev_german", "test", "test_dutch", "test_german", "train"]
    for d in out.iterdir():
        datadir.validate(d)
    assert list(datadir.read_table(out / "train" / "utt2spk").items()) == [
        ("dutch-7-8-0000", "dutch-7"), ("german-10-2-0000", "german-10"), ("german-10-2-0001", "german-10"),
        ("german-100-1-0000", "german-100")]
    assert datadir.read_table(out / "test" / "text") == {"dutch-11-12-0000": "tot ziens",
                                                         "german-5-6-0000": "auf wiedersehen"}
    assert datadir.read_table(out / "dev_dutch" / "text") == {"dutch-7-9-0000": "dank u"}


def test_opus_release_is_read_through_soundfile(tmp_path):
    assert mls.opus_supported()  # libsndfile >= 1.0.29 with Opus, as in the project's venv
    root = make_mls(tmp_path / "mls", {"polish": CORPUS["dutch"]}, ext=".opus", suffix="_opus")
    rows = mls.read_split(root, "polish", "train")
    assert [r[0] for r in rows] == ["7-8-0000"] and rows[0][2].endswith("mls_polish_opus/train/audio/7/8/7_8_0000.opus")
    audio = read_audio(rows[0][2], utt_id=rows[0][0])
    assert audio.dtype == np.float32 and audio.shape == (1600,) and np.abs(audio).max() > 0.01


def test_all_languages_must_be_present_for_mls(tmp_path):
    root = make_mls(tmp_path / "mls")
    result = subprocess.run([sys.executable, "local/mls_data_prep.py", "--root", str(root), "--out_dir",
                             str(tmp_path / "data"), "--lang", "all"], cwd=RECIPE, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"mls_data_prep.py: error: MLS english not found: neither {root}/mls_english nor "
                                     f"{root}/mls_english_opus is a directory. Set MLS in db.sh or pass --root.")
    assert not (tmp_path / "data").exists()


def split_error(root: Path, lang="german", split="train") -> str:
    with pytest.raises(CorpusError) as err:
        mls.read_split(root, lang, split)
    return str(err.value)


def test_bad_transcripts_and_missing_audio_are_named(tmp_path):
    root = make_mls(tmp_path / "mls")
    trans = root / "mls_german" / "train" / "transcripts.txt"
    (root / "mls_german" / "train" / "audio" / "10" / "2" / "10_2_0001.flac").unlink()
    assert split_error(root) == (f"{trans}:2: audio of 10_2_0001 not found "
                                 f"({root}/mls_german/train/audio/10/2/10_2_0001.flac or .opus)")
    trans.write_text("100_1_0000 ich bin\n")
    assert split_error(root) == f"{trans}:1: cannot parse '100_1_0000 ich bin' (want '<spk>_<book>_<utt>\\t<text>')"
    trans.write_text("100_1_0000\t \n")
    assert split_error(root) == f"{trans}:1: empty transcript for 100_1_0000"
    trans.write_text("100_1_0000\tich\n100_1_0000\tbin\n")
    assert split_error(root) == f"{trans}:2: duplicate utterance id 100_1_0000"
    trans.unlink()
    assert split_error(root) == f"{trans}: transcript file not found"
    assert split_error(root, lang="klingon") == (
        "unknown MLS language 'klingon' (one of english, german, dutch, french, spanish, italian, portuguese, polish)")
