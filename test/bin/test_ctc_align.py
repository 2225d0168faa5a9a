"""Tests of espnet_llm.bin.ctc_align: the CTM of a data dir's references by a tiny fbank ESPnet AM's CTC."""

import numpy as np
import pytest
import soundfile
import torch
import yaml
from espnet2.tasks.asr import ASRTask
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

from espnet_llm.bin import ctc_align, tokenizer_train

TEXTS = {"spk-a": "YES NO ONE", "spk-b": "TWO THREE", "spk-c": "FOUR"}
SECONDS = {"spk-a": 2.0, "spk-b": 1.5, "spk-c": 1.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A data dir of three 16 kHz wavs and an exp dir of an untrained fbank CTC/attention AM (`frontend: null`)."""
    root = tmp_path_factory.mktemp("align")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    scp = []
    for utt, seconds in SECONDS.items():
        soundfile.write(root / f"{utt}.wav", 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        scp.append(f"{utt} {root / f'{utt}.wav'}\n")
    (data / "wav.scp").write_text("".join(scp))
    (data / "text").write_text("".join(f"{u} {t}\n" for u, t in TEXTS.items()))
    tokenizer_train.main(["--text", str(data / "text"), "--token_type", "char", "--out_dir", str(root / "char")])
    exp = root / "asr"
    args = ASRTask.get_parser().parse_args([
        "--output_dir", str(exp), "--input_size", "80", "--normalize", "none", "--token_type", "char",
        "--token_list", str(root / "char" / "tokens.txt"),
        "--encoder", "transformer", "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
        "--encoder_conf", "linear_units=16", "--encoder_conf", "num_blocks=1",
        "--decoder", "transformer", "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=16",
        "--decoder_conf", "num_blocks=1", "--model_conf", "ctc_weight=0.3",
    ])
    args.frontend = None  # the recipe's fbank AM
    torch.manual_seed(0)
    model = ASRTask.build_model(args)
    exp.mkdir()
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return data, exp


def read_ctm(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(r[0], float(r[2]), float(r[3]), r[4], float(r[5])) for r in rows]


def test_fbank_am_aligns_every_word_inside_its_audio(setup, tmp_path):
    data, exp = setup
    out = tmp_path / "ctm"
    assert ctc_align.main(["--asr_exp_dir", str(exp), "--data_dir", str(data), "--out", str(out), "--threads", "1"]) == 0
    rows = read_ctm(out)
    assert [(u, w) for u, _, _, w, _ in rows] == [(u, w) for u, t in TEXTS.items() for w in t.split()]
    for utt in TEXTS:
        words = [(start, dur) for u, start, dur, _, _ in rows if u == utt]
        starts = [s for s, _ in words]
        assert starts == sorted(starts), utt
        # times in seconds of audio (not of fbank frames): inside the recording, the last word near its end
        assert all(s >= 0 and d >= 0 and s + d <= SECONDS[utt] + 0.05 for s, d in words), (utt, words)
        assert words[-1][0] + words[-1][1] > 0.3 * SECONDS[utt], (utt, words)
    assert all(0 <= c <= 1 for *_, c in rows)
    assert not list(tmp_path.glob(".*tmp"))


def test_missing_audio_names_the_utterance(setup, tmp_path):
    data, exp = setup
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "text").write_text((data / "text").read_text())
    (bad / "wav.scp").write_text((data / "wav.scp").read_text().replace("spk-b.wav", "gone.wav"))
    with pytest.raises(SystemExit, match="spk-b|gone.wav"):
        ctc_align.main(["--asr_exp_dir", str(exp), "--data_dir", str(bad), "--out", str(tmp_path / "ctm")])
    assert not (tmp_path / "ctm").exists()


def test_help_answers(capsys):
    with pytest.raises(SystemExit):
        ctc_align.main(["--help"])
    assert "Usage:" in capsys.readouterr().out
