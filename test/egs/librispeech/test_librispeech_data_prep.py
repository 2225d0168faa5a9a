"""egs/librispeech/asr1/local/librispeech_data_prep.py on a tiny tree in the real LibriSpeech layout: the reader,
the sets written, the errors that name the transcript line or file, and the command line."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.audio import read_audio
from espnet_llm.corpus import CorpusError

RECIPE = Path(__file__).resolve().parents[3] / "egs" / "librispeech" / "asr1"
if str(RECIPE / "local") not in sys.path:
    sys.path.insert(0, str(RECIPE / "local"))
import librispeech_data_prep as librispeech  # noqa: E402  (a recipe script, imported from the recipe's local/)

# subset -> {speaker: {chapter: [words of utterance 0, 1, ...]}}
CORPUS = {
    "train-clean-100": {"103": {"1240": ["CHAPTER ONE MISSUS RACHEL", "THAT HAD ITS SOURCE"]}, "19": {"198": ["NORTH"]}},
    "train-clean-360": {"100": {"121669": ["TOM THE PIPER'S SON"]}},
    "train-other-500": {"1006": {"135212": ["IN THE GREEN"], "135213": ["AND SO"]}},
    "dev-clean": {"84": {"121123": ["GO DO YOU HEAR"]}},
    "dev-other": {"116": {"288045": ["AS I APPROACHED THE CITY"]}},
    "test-clean": {"1089": {"134686": ["HE HOPED THERE WOULD BE STEW"]}},
    "test-other": {"1688": {"142285": ["THERE'S IRON THEY SAY"]}},
}


def make_librispeech(root: Path, corpus=CORPUS) -> Path:
    """`<root>/<subset>/<spk>/<chapter>/{<spk>-<chapter>.trans.txt, <spk>-<chapter>-<utt>.flac}`, 0.1 s FLACs."""
    rng = np.random.default_rng(0)
    for subset, speakers in corpus.items():
        for spk, chapters in speakers.items():
            for chapter, utts in chapters.items():
                d = root / subset / spk / chapter
                d.mkdir(parents=True)
                lines = []
                for n, words in enumerate(utts):
                    utt = f"{spk}-{chapter}-{n:04d}"
                    lines.append(f"{utt} {words}\n")
                    soundfile.write(d / f"{utt}.flac", (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
                (d / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_librispeech(tmp_path / "LibriSpeech")


def test_read_subset_rows_sorted_with_chapter_speakers(corpus):
    rows = librispeech.read_subset(corpus, "train-clean-100")
    assert [r[0] for r in rows] == ["103-1240-0000", "103-1240-0001", "19-198-0000"]
    assert [r[1] for r in rows] == ["103-1240", "103-1240", "19-198"]
    assert rows[1][3] == "THAT HAD ITS SOURCE"
    assert rows[2][2] == str((corpus / "train-clean-100" / "19" / "198" / "19-198-0000.flac").resolve())
    assert read_audio(rows[2][2], utt_id=rows[2][0]).shape == (1600,)


def test_prepare_960_writes_combined_train_and_eval_sets(corpus, tmp_path):
    out = tmp_path / "data"
    librispeech.prepare(corpus, out, "train_960")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dev", "dev_clean", "dev_other", "test_clean", "test_other", "train_960", "train_clean_100"]
    for name in names:
        datadir.validate(out / name)
    assert list(datadir.read_table(out / "train_960" / "text")) == [
        "100-121669-0000", "1006-135212-0000", "1006-135213-0000", "103-1240-0000", "103-1240-0001", "19-198-0000"]
    assert datadir.read_table(out / "dev" / "text") == {
        "116-288045-0000": "AS I APPROACHED THE CITY", "84-121123-0000": "GO DO YOU HEAR"}
    assert datadir.read_table(out / "train_clean_100" / "spk2utt") == {
        "103-1240": "103-1240-0000 103-1240-0001", "19-198": "19-198-0000"}
    assert datadir.read_table(out / "test_other" / "wav.scp") == {
        "1688-142285-0000": str(corpus / "test-other" / "1688" / "142285" / "1688-142285-0000.flac")}


def test_100h_needs_only_train_clean_100_and_accepts_the_tarball_dir(tmp_path):
    small = {k: v for k, v in CORPUS.items() if k not in ("train-clean-360", "train-other-500")}
    make_librispeech(tmp_path / "corpus" / "LibriSpeech", small)
    out = tmp_path / "data"
    librispeech.main(["--root", str(tmp_path / "corpus"), "--out_dir", str(out), "--train_set", "train_clean_100"])
    assert not (out / "train_960").exists()
    assert list(datadir.read_table(out / "train_clean_100" / "utt2spk")) == [
        "103-1240-0000", "103-1240-0001", "19-198-0000"]
    result = subprocess.run([sys.executable, "local/librispeech_data_prep.py", "--root", str(tmp_path / "corpus"),
                             "--out_dir", str(tmp_path / "d2")], cwd=RECIPE, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"librispeech_data_prep.py: error: LibriSpeech subset train-clean-360 not found: neither "
        f"{tmp_path}/corpus/train-clean-360 nor {tmp_path}/corpus/LibriSpeech/train-clean-360 is a directory. "
        "Set LIBRISPEECH in db.sh or pass --root.")
    assert not (tmp_path / "d2").exists()


def prepare_error(corpus: Path, out: Path) -> str:
    with pytest.raises(CorpusError) as err:
        librispeech.prepare(corpus, out, "train_960")
    assert not out.exists()  # every subset is checked before anything is written
    return str(err.value)


def test_missing_flac_names_transcript_line_and_file(corpus, tmp_path):
    (corpus / "dev-clean" / "84" / "121123" / "84-121123-0000.flac").unlink()
    assert prepare_error(corpus, tmp_path / "data") == (
        f"{corpus}/dev-clean/84/121123/84-121123.trans.txt:1: audio of 84-121123-0000 not found "
        f"({corpus}/dev-clean/84/121123/84-121123-0000.flac)")


def test_flac_without_transcript_and_empty_transcript_are_named(corpus, tmp_path):
    chapter = corpus / "test-clean" / "1089" / "134686"
    soundfile.write(chapter / "1089-134686-0007.flac", np.zeros(160, np.float32), 16000)
    assert "no transcript for 1 audio file(s), e.g. 1089-134686-0007.flac" in prepare_error(corpus, tmp_path / "a")
    (chapter / "1089-134686-0007.flac").unlink()
    (chapter / "1089-134686.trans.txt").write_text("1089-134686-0000\n")
    assert prepare_error(corpus, tmp_path / "b") == (
        f"{chapter}/1089-134686.trans.txt:1: empty transcript for 1089-134686-0000")


def test_missing_transcript_file_and_foreign_id(corpus, tmp_path):
    trans = corpus / "dev-other" / "116" / "288045" / "116-288045.trans.txt"
    trans.write_text("84-121123-0000 GO\n")
    assert "utterance id '84-121123-0000' is not of chapter 116-288045" in prepare_error(corpus, tmp_path / "a")
    trans.unlink()
    assert prepare_error(corpus, tmp_path / "b") == f"{trans}: transcript file not found"


def test_an_utterance_in_two_subsets_is_an_error(corpus, tmp_path):
    chapter = corpus / "dev-other" / "84" / "121123"  # dev-clean's chapter again, in dev-other
    chapter.mkdir(parents=True)
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n")
    soundfile.write(chapter / "84-121123-0000.flac", np.zeros(160, np.float32), 16000)
    assert prepare_error(corpus, tmp_path / "data") == "utterance 84-121123-0000 is in both dev-clean and dev-other"
