"""egs/an4/asr1/local/librivox_data_prep.py: the LibriVox and cards clips (AN4's out-of-domain test sets) on a fixture
in the real layout, its command line, and the shared copy when present."""
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
SHARED = REPO.parent / "shared" / "data" / "librivox-clips"
if str(RECIPE / "local") not in sys.path:
    sys.path.insert(0, str(RECIPE / "local"))
import librivox_data_prep  # noqa: E402  (a recipe script, imported from the recipe's local/)


def make_clips(root: Path, ids=("clip-01", "clip-02"), missing_audio=()):
    folder = root / "librivox"
    folder.mkdir(parents=True)
    (folder / "fileids").write_text("".join(f"{i}\n" for i in ids))
    (folder / "transcription").write_text("".join(f"<s> he was not an ill disposed man </s> ({i})\n" for i in ids))
    for i in ids:
        if i not in missing_audio:
            soundfile.write(folder / f"{i}.wav", np.zeros(1600, dtype=np.float32), 16000)
    return root


def test_reads_ids_speaker_and_upper_case_text(tmp_path):
    rows = librivox_data_prep.read_clips(make_clips(tmp_path))
    assert [r[0] for r in rows] == ["librivox-clip-01", "librivox-clip-02"]
    assert {r[1] for r in rows} == {"librivox"}
    assert rows[0][3] == "HE WAS NOT AN ILL DISPOSED MAN"
    assert Path(rows[0][2]).is_file()


def test_missing_audio_names_the_file(tmp_path):
    with pytest.raises(CorpusError, match=r"fileids:2: audio .*clip-02.wav not found"):
        librivox_data_prep.read_clips(make_clips(tmp_path, missing_audio=("clip-02",)))


def test_untranscribed_clip_and_missing_files_are_named(tmp_path):
    root = make_clips(tmp_path)
    fileids = root / "librivox" / "fileids"
    fileids.write_text("clip-01\nclip-09\n")
    with pytest.raises(CorpusError, match=f"^{fileids}:2: clip-09 has no transcription$"):
        librivox_data_prep.read_clips(root)
    fileids.unlink()  # then the cards layout, <subset>.{fileids,transcription}, is looked for
    with pytest.raises(CorpusError, match=f"^{root}/librivox/librivox.transcription: transcription file not found$"):
        librivox_data_prep.read_clips(root)


def test_subset_with_prefixed_files_as_the_cards_clips(tmp_path):
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "cards.fileids").write_text("001\n")
    (folder / "cards.transcription").write_text("<s> ten of clubs  </s> (001)\n")
    soundfile.write(folder / "001.wav", np.zeros(1600, dtype=np.float32), 16000)
    assert librivox_data_prep.read_clips(tmp_path, "cards") == [
        ("cards-001", "cards", str((folder / "001.wav").resolve()), "TEN OF CLUBS")]


def test_command_line_gives_a_dir_per_subset_and_names_a_bad_file(tmp_path):
    root = tmp_path / "clips"
    for subset, prefix, text in (("librivox", "", "he was not an ill disposed man"), ("cards", "cards.", "ten of clubs")):
        (root / subset).mkdir(parents=True)
        (root / subset / f"{prefix}fileids").write_text("c1\n")
        (root / subset / f"{prefix}transcription").write_text(f"<s> {text} </s> (c1)\n")
        soundfile.write(root / subset / "c1.wav", np.zeros(1600, dtype=np.float32), 16000)
    run = lambda out: subprocess.run(  # noqa: E731
        [sys.executable, "local/librivox_data_prep.py", "--root", str(root), "--out_dir", str(out)], cwd=RECIPE,
        capture_output=True, text=True, timeout=60, check=False)
    result = run(tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert datadir.read_table(tmp_path / "data" / "cards" / "text") == {"cards-c1": "TEN OF CLUBS"}
    assert datadir.read_table(tmp_path / "data" / "librivox" / "text") == {
        "librivox-c1": "HE WAS NOT AN ILL DISPOSED MAN"}
    for subset in ("librivox", "cards"):
        assert datadir.validate(tmp_path / "data" / subset) == []
    (root / "cards" / "cards.transcription").write_text("<s> ten of clubs </s> (c1)\n<s> two </s> (c1)\n")
    result = run(tmp_path / "data2")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"librivox_data_prep.py: error: {root}/cards/cards.transcription:2: "
                                     "duplicate utterance id c1")
    assert not (tmp_path / "data2").exists()  # both subsets are read before either is written


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared LibriVox clips absent")
def test_shared_clips():
    rows = librivox_data_prep.read_clips(SHARED)
    assert len(rows) == 5 and rows[1][3] == "HE WAS NOT AN ILL DISPOSED YOUNG MAN"


@pytest.mark.skipif(not (SHARED / "cards").is_dir(), reason="shared cards clips absent")
def test_shared_cards_clips():
    rows = librivox_data_prep.read_clips(SHARED, "cards")
    assert len(rows) == 5 and rows[4][3] == "EIGHT OF SPADES FOUR OF CLUBS SEVEN OF HEARTS"
