"""Synthetic speech with eSpeak NG (espnet_llm.corpora.espeak): reading text, the seeded draw, the audio written,
resuming, and the errors that name the file or utterance. Synthesis tests need the espeak-ng program (tools/install.sh
installs it as root; .ci/run checks it is there)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.corpora import espeak
from espnet_llm.corpora.an4 import CorpusError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def librispeech_text(root: Path) -> Path:
    chapter = root / "dev-clean" / "84" / "121550"
    chapter.mkdir(parents=True)
    (chapter / "84-121550.trans.txt").write_text(
        "84-121550-0000 HE WAS NOT AN ILL DISPOSED YOUNG MAN\n"
        "84-121550-0001 YES\n"  # one word: below min_words
        "84-121550-0002 HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF\n"
        "84-121550-0003 I DON'T KNOW SAID SHAGGY\n")
    return root


def test_read_text_from_a_librispeech_tree_and_from_a_kaldi_file(tmp_path):
    rows = espeak.read_text(librispeech_text(tmp_path / "ls"))
    assert [u for u, _ in rows] == [f"84-121550-000{i}" for i in range(4)]
    kaldi = tmp_path / "text"
    kaldi.write_text("b  hello   there world\na good morning to you\n")
    assert espeak.read_text(kaldi) == [("a", "GOOD MORNING TO YOU"), ("b", "HELLO THERE WORLD")]


@pytest.mark.parametrize("content, message", [
    (b"a hello world\na again here\n", "duplicate utterance id a"),
    (b"a hello world\nb\n", "empty transcript for b"),
    (b"a caf\xe9 au lait\n", "not UTF-8"),
])
def test_bad_text_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "text"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as err:
        espeak.read_text(path)
    assert str(path) in str(err.value)


def test_missing_text_and_empty_tree_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="text not found"):
        espeak.read_text(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="no \\*.trans.txt"):
        espeak.read_text(tmp_path)


def test_plan_draws_by_length_is_seeded_and_cycles_voices():
    rows = [(f"u{i:02d}", " ".join(["WORD"] * n)) for i, n in enumerate([1, 3, 5, 8, 20, 4, 6, 7])]
    plan = espeak.plan(rows, max_utts=4, voices=("en-us", "en-gb"), min_words=3, max_words=8, seed=3)
    assert len(plan) == 4 and all(3 <= len(p.words.split()) <= 8 for p in plan)
    assert plan == espeak.plan(rows, max_utts=4, voices=("en-us", "en-gb"), min_words=3, max_words=8, seed=3)
    assert sorted(p.voice for p in plan) == ["en-gb", "en-gb", "en-us", "en-us"]
    assert all(p.utt.startswith(f"espeak-{p.voice}-u") and p.speaker == f"espeak-{p.voice}" for p in plan)
    assert all(140 <= p.rate <= 190 and 30 <= p.pitch <= 70 for p in plan)
    with pytest.raises(CorpusError, match="no transcript has 30 to 40 words"):
        espeak.plan(rows, max_utts=4, min_words=30, max_words=40)


def test_missing_program_says_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="apt-get install espeak-ng"):
        espeak.espeak_binary()


@needs_espeak
def test_prepare_writes_16k_audio_and_a_valid_data_dir_and_resumes(tmp_path):
    out = tmp_path / "data" / "synth"
    utts = espeak.prepare(librispeech_text(tmp_path / "ls"), out, max_utts=2, voices=("en-us", "en-gb"))
    assert len(utts) == 2
    datadir.validate(out)
    text = datadir.read_table(out / "text")
    nsamp = datadir.read_table(out / "utt2num_samples")
    for utt, path in datadir.read_table(out / "wav.scp").items():
        audio, fs = soundfile.read(path)
        assert fs == 16000 and audio.ndim == 1 and int(nsamp[utt]) == len(audio)
        # eSpeak at 140-190 words a minute: 0.2-0.6 s a word, plus pauses
        assert 0.2 * len(text[utt].split()) < len(audio) / fs < 1.0 * len(text[utt].split()) + 1.0
        assert np.abs(audio).max() > 0.05
    # a rerun does not synthesise again: the audio files are left as they are
    first = {p: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    espeak.prepare(librispeech_text(tmp_path / "ls2"), out, max_utts=2, voices=("en-us", "en-gb"))
    assert {p: p.stat().st_mtime_ns for p in (out / "audio").iterdir()} == first


@needs_espeak
def test_unknown_voice_is_an_error_before_any_audio(tmp_path):
    espeak.check_voices(espeak.DEFAULT_VOICES)  # espeak-ng would fall back to its default voice without a word
    with pytest.raises(CorpusError, match="unknown eSpeak NG voice.*no-such-voice"):
        espeak.prepare(librispeech_text(tmp_path / "ls"), tmp_path / "synth", 2, voices=("en-us", "no-such-voice"))
    assert not (tmp_path / "synth").exists()
