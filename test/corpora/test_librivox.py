"""The LibriVox clip reader on a fixture in the real layout, and on the shared copy when present."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm.corpora import librivox
from espnet_llm.corpora.an4 import CorpusError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "librivox-clips"


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
    rows = librivox.read_clips(make_clips(tmp_path))
    assert [r[0] for r in rows] == ["librivox-clip-01", "librivox-clip-02"]
    assert {r[1] for r in rows} == {"librivox"}
    assert rows[0][3] == "HE WAS NOT AN ILL DISPOSED MAN"
    assert Path(rows[0][2]).is_file()


def test_missing_audio_names_the_file(tmp_path):
    with pytest.raises(CorpusError, match=r"fileids:2: audio .*clip-02.wav not found"):
        librivox.read_clips(make_clips(tmp_path, missing_audio=("clip-02",)))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared LibriVox clips absent")
def test_shared_clips():
    rows = librivox.read_clips(SHARED)
    assert len(rows) == 5 and rows[1][3] == "HE WAS NOT AN ILL DISPOSED YOUNG MAN"


def test_subset_with_prefixed_files_as_the_cards_clips(tmp_path):
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "cards.fileids").write_text("001\n")
    (folder / "cards.transcription").write_text("<s> ten of clubs  </s> (001)\n")
    soundfile.write(folder / "001.wav", np.zeros(1600, dtype=np.float32), 16000)
    assert librivox.read_clips(tmp_path, "cards") == [("cards-001", "cards", str((folder / "001.wav").resolve()),
                                                       "TEN OF CLUBS")]


@pytest.mark.skipif(not (SHARED / "cards").is_dir(), reason="shared cards clips absent")
def test_shared_cards_clips():
    rows = librivox.read_clips(SHARED, "cards")
    assert len(rows) == 5 and rows[4][3] == "EIGHT OF SPADES FOUR OF CLUBS SEVEN OF HEARTS"
