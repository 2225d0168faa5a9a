"""espnet_llm.bin.make_stress_set: non-speech recordings (no text) and edge-case speech (with text), seeded."""
import numpy as np
import soundfile as sf

from espnet_llm import datadir
from espnet_llm.bin.make_stress_set import main


def speech_dir(tmp_path):
    d = tmp_path / "test"
    d.mkdir()
    rng = np.random.default_rng(0)
    lines, texts = [], []
    for i in range(12):
        u = f"spk-u{i:02d}"
        sf.write(tmp_path / f"{u}.wav", (0.1 * rng.standard_normal(16000 * (1 + i % 4))).astype(np.float32), 16000)
        lines.append(f"{u} {tmp_path / u}.wav\n")
        texts.append(f"{u} WORD {i}\n")
    (d / "wav.scp").write_text("".join(lines))
    (d / "text").write_text("".join(texts))
    (d / "utt2spk").write_text("".join(f"spk-u{i:02d} spk\n" for i in range(12)))
    return d


def test_stress_set_dirs_are_valid_seeded_and_of_every_kind(tmp_path):
    src = speech_dir(tmp_path)
    assert main(["--speech", str(src), "--out_dir", str(tmp_path / "stress"), "--n_short", "3", "--n_long", "2"]) == 0
    non, speech = tmp_path / "stress_nonspeech", tmp_path / "stress_speech"
    datadir.validate(non, no_text=True)
    datadir.validate(speech)
    kinds = datadir.read_table(non / "utt2kind")
    assert sorted(set(kinds.values())) == ["brown_noise", "silence", "tones", "white_noise"] and len(kinds) == 16
    assert not (non / "text").exists()
    silence, fs = sf.read(datadir.read_table(non / "wav.scp")["silence-01"])
    assert fs == 16000 and len(silence) == 5 * 16000 and not silence.any()
    speech_kinds = datadir.read_table(speech / "utt2kind")
    assert sorted(speech_kinds.values()) == ["very_long"] * 2 + ["very_short"] * 3
    long0, _ = sf.read(datadir.read_table(speech / "wav.scp")["long-00"])
    assert 20 * 16000 < len(long0) <= 25 * 16000
    short = [u for u, k in speech_kinds.items() if k == "very_short"]
    assert all(len(sf.read(datadir.read_table(speech / "wav.scp")[u])[0]) == int(0.4 * 16000) for u in short)
    first = (non / "audio" / "tones-00.flac").read_bytes()
    assert main(["--speech", str(src), "--out_dir", str(tmp_path / "stress"), "--n_short", "3", "--n_long", "2"]) == 0
    assert (non / "audio" / "tones-00.flac").read_bytes() == first  # seeded: the same recordings again
