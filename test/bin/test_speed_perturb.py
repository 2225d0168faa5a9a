"""Tests of espnet_llm.bin.speed_perturb: Kaldi dir -> perturbed copies (sp<f>- ids, FLAC files)."""
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_llm import datadir
from espnet_llm.bin.speed_perturb import main

FS = 16000
LENGTHS = {"fash-an251-b": 17600, "mcen-an31-b": 8000}


def tone(n: int, hz: float = 1000.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / FS)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * FS / len(x))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    wav_scp = {}
    for utt, n in LENGTHS.items():
        path = tmp_path / "audio" / f"{utt}.flac"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, tone(n), FS)
        wav_scp[utt] = str(path)
    datadir.write_table(d / "wav.scp", wav_scp)
    datadir.write_table(d / "text", {"fash-an251-b": "YES", "mcen-an31-b": "ENTER SIX"})
    datadir.write_table(d / "utt2spk", {"fash-an251-b": "fash", "mcen-an31-b": "mcen"})
    datadir.write_table(d / "spk2utt", {"fash": "fash-an251-b", "mcen": "mcen-an31-b"})
    return d


def perturb(data_dir: Path, *factors: str) -> Path:
    out = data_dir.parent / "train_sp"
    main(["--data_dir", str(data_dir), "--out_dir", str(out), "--audio_dir", str(data_dir.parent.parent / "dump"),
          "--factors", *factors])
    return out


def test_ids_speakers_text_and_lengths(data_dir):
    out = perturb(data_dir, "0.9", "1.0", "1.1")
    assert datadir.validate(out) == []
    assert (out / "utt2spk").read_text() == (
        "fash-an251-b fash\nmcen-an31-b mcen\nsp0.9-fash-an251-b sp0.9-fash\nsp0.9-mcen-an31-b sp0.9-mcen\n"
        "sp1.1-fash-an251-b sp1.1-fash\nsp1.1-mcen-an31-b sp1.1-mcen\n")
    text = datadir.read_table(out / "text")
    assert text["sp1.1-mcen-an31-b"] == text["sp0.9-mcen-an31-b"] == text["mcen-an31-b"] == "ENTER SIX"
    wav_scp = datadir.read_table(out / "wav.scp")
    originals = datadir.read_table(data_dir / "wav.scp")
    assert wav_scp["fash-an251-b"] == originals["fash-an251-b"]  # factor 1.0 keeps the files
    dump = data_dir.parent.parent / "dump"
    assert wav_scp["sp1.1-fash-an251-b"] == str((dump / "sp1.1" / "fash-an251-b.flac").resolve())
    for utt, n in LENGTHS.items():
        for factor in (0.9, 1.1):
            wav, fs = soundfile.read(wav_scp[f"sp{factor}-{utt}"], dtype="float32")
            assert fs == FS and wav.ndim == 1
            assert len(wav) == math.ceil(n / factor)  # 17600 -> 16000 at 1.1
            assert abs(peak_hz(wav) - 1000 * factor) < 5  # played `factor` times as fast: pitch moves too
    assert sorted(p.name for p in dump.rglob("*") if p.is_file()) == sorted(
        [f"{u}.flac" for u in LENGTHS] * 2)  # no temporary files left
    assert len(soundfile.read(wav_scp["sp1.1-fash-an251-b"])[0]) == 16000


def test_rerun_keeps_written_files(data_dir):
    out = perturb(data_dir, "1.1")
    flac = Path(datadir.read_table(out / "wav.scp")["sp1.1-fash-an251-b"])
    before = (flac.stat().st_mtime_ns, flac.read_bytes())
    tables = {name: (out / name).read_text() for name in ("wav.scp", "text", "utt2spk", "spk2utt")}
    assert list(datadir.read_table(out / "utt2spk")) == ["sp1.1-fash-an251-b", "sp1.1-mcen-an31-b"]
    perturb(data_dir, "1.1")
    assert (flac.stat().st_mtime_ns, flac.read_bytes()) == before
    assert {name: (out / name).read_text() for name in tables} == tables


def test_corrupt_audio_names_the_utterance(data_dir):
    bad = Path(datadir.read_table(data_dir / "wav.scp")["mcen-an31-b"])
    bad.write_bytes(b"fLaC not really a flac file")
    with pytest.raises(SystemExit) as exit_info:
        perturb(data_dir, "1.0", "1.1")
    message = str(exit_info.value.code)
    assert message.startswith(f"speed_perturb: error: utterance mcen-an31-b: cannot read audio file {bad}: corrupt")
    assert not (data_dir.parent / "train_sp").exists()
    assert not list((data_dir.parent.parent / "dump").rglob("*.tmp.flac"))


def test_wrong_sample_rate_names_the_utterance(data_dir):
    path = Path(datadir.read_table(data_dir / "wav.scp")["fash-an251-b"])
    soundfile.write(path, tone(8000), 8000)
    with pytest.raises(SystemExit) as exit_info:
        perturb(data_dir, "0.9")
    assert str(exit_info.value.code).startswith(
        f"speed_perturb: error: utterance fash-an251-b: audio file {path} has sample rate 8000 Hz, expected 16000 Hz")
