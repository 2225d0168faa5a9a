"""Tests of espnet_llm.bin.feats_extract: wav.scp -> 80-dim Kaldi fbank in ark/scp (kaldiio)."""
import math
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.bin.feats_extract import main

FS = 16000
LENGTHS = {"a-1": 16000, "a-2": 400, "b-1": 7123}  # 400 samples: exactly one 25 ms window


def mel(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data" / "test"
    d.mkdir(parents=True)
    wav_scp = {}
    for utt, n in LENGTHS.items():
        path = tmp_path / "audio" / f"{utt}.flac"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, (0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / FS)).astype(np.float32), FS)
        wav_scp[utt] = str(path)
    datadir.write_table(d / "wav.scp", wav_scp)
    return d


def extract(data_dir: Path, *extra: str) -> Path:
    out = data_dir.parent.parent / "dump" / "fbank" / "test"
    main(["--data_dir", str(data_dir), "--out_dir", str(out), *extra])
    return out


def test_kaldi_frame_counts_and_80_dims(data_dir):
    out = extract(data_dir)
    feats = kaldiio.load_scp(str(out / "feats.scp"))
    assert sorted(feats) == sorted(LENGTHS)
    expected = {utt: 1 + (n - 400) // 160 for utt, n in LENGTHS.items()}
    assert expected == {"a-1": 98, "a-2": 1, "b-1": 43}
    assert {utt: feats[utt].shape for utt in feats} == {utt: (frames, 80) for utt, frames in expected.items()}
    assert datadir.read_table(out / "feats.utt2num_frames") == {u: str(n) for u, n in expected.items()}
    assert datadir.read_table(out / "feats.utt2num_samples") == {u: str(n) for u, n in LENGTHS.items()}
    assert all(feats[u].dtype == np.float32 and np.isfinite(feats[u]).all() for u in feats)
    # A 1 kHz tone peaks in the mel bin centred nearest 1 kHz (Kaldi: 80 bins between 20 Hz and 8 kHz).
    centres = [mel(20) + (i + 1) * (mel(8000) - mel(20)) / 81 for i in range(80)]
    nearest = int(np.argmin([abs(c - mel(1000)) for c in centres]))
    assert nearest == 27
    assert int(np.argmax(feats["a-1"].mean(axis=0))) == nearest
    assert sorted(p.name for p in out.iterdir()) == ["feats.ark", "feats.scp", "feats.stamp", "feats.utt2num_frames", "feats.utt2num_samples"]


def test_overwrite_is_bit_identical_and_an_up_to_date_split_is_skipped(data_dir):
    out = extract(data_dir, "--name", "feats.1")
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["feats.1.ark", "feats.1.scp", "feats.1.stamp", "feats.1.utt2num_frames", "feats.1.utt2num_samples"]
    extract(data_dir, "--name", "feats.1", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    ark_mtime = (out / "feats.1.ark").stat().st_mtime_ns
    extract(data_dir, "--name", "feats.1")  # same input: skipped
    assert (out / "feats.1.ark").stat().st_mtime_ns == ark_mtime
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_wrong_sample_rate_names_the_utterance(data_dir):
    path = Path(datadir.read_table(data_dir / "wav.scp")["b-1"])
    soundfile.write(path, np.zeros(8000, np.float32), 8000)
    with pytest.raises(SystemExit) as exit_info:
        extract(data_dir)
    assert str(exit_info.value.code).startswith(
        f"feats_extract: error: utterance b-1: audio file {path} has sample rate 8000 Hz, expected 16000 Hz")
    assert not (data_dir.parent.parent / "dump" / "fbank" / "test" / "feats.scp").exists()


def test_audio_shorter_than_a_frame_names_the_utterance(data_dir):
    path = Path(datadir.read_table(data_dir / "wav.scp")["a-2"])
    soundfile.write(path, np.zeros(399, np.float32), FS)
    with pytest.raises(SystemExit) as exit_info:
        extract(data_dir)
    assert str(exit_info.value.code) == f"feats_extract: error: utterance a-2 ({path}) is shorter than one 25 ms frame"
    assert not (data_dir.parent.parent / "dump" / "fbank" / "test" / "feats.scp").exists()


def test_a_changed_wav_scp_is_extracted_again_and_a_failure_keeps_the_old_features(tmp_path):
    import shutil

    import kaldiio
    import numpy as np
    import soundfile as sf

    d = tmp_path / "data"
    d.mkdir()
    for u in ("u1", "u2"):
        sf.write(tmp_path / f"{u}.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 16000)
    (d / "wav.scp").write_text(f"u1 {tmp_path / 'u1.wav'}\nu2 {tmp_path / 'u2.wav'}\n")
    out = tmp_path / "dump"
    main(["--data_dir", str(d), "--out_dir", str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    main(["--data_dir", str(d), "--out_dir", str(out)])  # unchanged: skipped
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    (d / "wav.scp").write_text(f"u1 {tmp_path / 'u1.wav'}\nu2 {tmp_path / 'bad.wav'}\n")
    with pytest.raises(SystemExit, match=f"utterance u2: cannot read audio file {tmp_path / 'bad.wav'}"):
        main(["--data_dir", str(d), "--out_dir", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == before
    shutil.copy(tmp_path / "u1.wav", tmp_path / "u3.wav")
    (d / "wav.scp").write_text(f"u1 {tmp_path / 'u1.wav'}\nu3 {tmp_path / 'u3.wav'}\n")
    main(["--data_dir", str(d), "--out_dir", str(out)])
    feats = dict(kaldiio.load_scp(str(out / "feats.scp")))
    assert sorted(feats) == ["u1", "u3"] and np.array_equal(feats["u1"], feats["u3"])
