"""Faults a user meets, each stopped with an error that names the file, key or utterance; nothing else lost.

Faults tested elsewhere: data dirs (test/test_datadir.py), audio (test/test_audio.py), corpora (the recipes'
readers, test/egs/<corpus>/), TTS (test/test_tts.py), entry points (test/bin/), a SIGKILLed training
(test/tasks/test_llm_asr_resume.py).
"""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump
from transformers import AutoTokenizer

from espnet_llm.bin.llm_asr_inference import main as inference_main
from espnet_llm.tasks.llm_asr import LLMASRTask

FEAT_DIM = 8


def tiny_args(llm_dir, *extra):
    return [
        "--input_size", str(FEAT_DIM), "--normalize", "none", "--encoder", "transformer",
        "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2", "--encoder_conf", "linear_units=16",
        "--encoder_conf", "num_blocks=1", "--projector", "stack_linear", "--projector_conf", "stack=2",
        "--llm_conf", f"name_or_path={llm_dir}", *extra,
    ]


@pytest.fixture(scope="module")
def exp_dir(tiny_llm_dir, tmp_path_factory):
    exp = tmp_path_factory.mktemp("exp") / "llm_asr_tiny"
    args = LLMASRTask.get_parser().parse_args(tiny_args(tiny_llm_dir, "--output_dir", str(exp)))
    torch.manual_seed(0)
    model = LLMASRTask.build_model(args)
    exp.mkdir(parents=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp


def test_utterance_too_long_for_the_llm_is_named_and_earlier_ones_are_kept(exp_dir, tmp_path, caplog):
    rng = np.random.default_rng(0)
    utts = {"spk-a": 40, "spk-b": 50, "spk-c-long": 4000}  # 4000 frames: prefix + length bound > 512 positions
    lines = []
    for key, frames in utts.items():
        np.save(tmp_path / f"{key}.npy", rng.standard_normal((frames, FEAT_DIM)).astype(np.float32))
        lines.append(f"{key} {tmp_path / (key + '.npy')}\n")
    (tmp_path / "feats.scp").write_text("".join(lines))
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        inference_main(["--exp_dir", str(exp_dir), "--output_dir", str(out),
                        "--data_path_and_name_and_type", f"{tmp_path / 'feats.scp'},speech,npy"])
    assert exit_info.value.code == 1
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "utterance spk-c-long is too long for the LLM" in message and "max_position_embeddings 512" in message
    decoded = (out / "1best_recog" / "text").read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in decoded] == ["spk-a", "spk-b"]


def test_no_unknown_tokens_with_the_byte_level_llm_tokenizer(tiny_llm_dir):
    """Any transcript (accents, other scripts) becomes LLM tokens and decodes back: no <unk> loses text."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llm_dir))
    for text in ("zürich straße", "naïve café", "漢字 ok", "don't-stop"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text


def train_error(tmp_path, capsys, *cmd) -> str:
    with pytest.raises(SystemExit) as exit_info:
        LLMASRTask.main(cmd=[*cmd, "--output_dir", str(tmp_path / "exp")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "exp").exists()
    return capsys.readouterr().err


def test_misspelt_key_in_training_yaml_is_named_with_its_file(tiny_llm_dir, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("encoder: transformer\nencoder_conff:\n    output_size: 16\n")
    err = train_error(tmp_path, capsys, "--config", str(config), *tiny_args(tiny_llm_dir))
    assert f"unrecognized arguments: encoder_conff (from {config})" in err


def test_misspelt_nested_keys_are_named(tiny_llm_dir, tmp_path):
    parser = LLMASRTask.get_parser()
    args = parser.parse_args(tiny_args(tiny_llm_dir, "--encoder_conf", "output_sizee=16"))
    with pytest.raises(TypeError, match="TransformerEncoder.__init__\\(\\) got an unexpected keyword argument 'output_sizee'"):
        LLMASRTask.build_model(args)
    args = parser.parse_args(tiny_args(tiny_llm_dir, "--llm_conf", "lora_r=8"))
    with pytest.raises(ValueError, match="llm_conf: unknown key\\(s\\) lora_r \\(known: name_or_path, tuning, lora"):
        LLMASRTask.build_model(args)


def test_malformed_yaml_names_file_line_and_column(tiny_llm_dir, tmp_path):
    import yaml

    config = tmp_path / "broken.yaml"
    config.write_text("encoder: transformer\nencoder_conf: [output_size: 16\nnormalize: none\n")
    with pytest.raises(yaml.YAMLError) as err:
        LLMASRTask.main(cmd=["--config", str(config), *tiny_args(tiny_llm_dir), "--output_dir", str(tmp_path / "e")])
    assert f'in "{config}", line 3' in str(err.value)
    assert not (tmp_path / "e").exists()


def test_missing_llm_directory_is_named(tmp_path):
    missing = tmp_path / "exp" / "llm" / "smollm2-135m"
    with pytest.raises(FileNotFoundError, match=f"LLM directory '{missing}' does not exist .*llm_prepare"):
        LLMASRTask.main(cmd=tiny_args(missing, "--output_dir", str(tmp_path / "out")))
    assert not (tmp_path / "out" / "checkpoint.pth").exists()
