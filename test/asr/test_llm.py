import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from espnet_llm.asr.llm import load_causal_lm, load_tokenizer, merge_lora_and_save, trainable_names


def test_frozen_has_no_trainable_parameter(tiny_llm_dir):
    model = load_causal_lm(tiny_llm_dir, tuning="frozen")
    assert trainable_names(model) == []
    assert model.get_input_embeddings().weight.shape == (len(load_tokenizer(tiny_llm_dir)), 16)


def test_full_trains_everything(tiny_llm_dir):
    model = load_causal_lm(tiny_llm_dir, tuning="full")
    assert all(p.requires_grad for p in model.parameters())


def test_lora_trains_only_adapters(tiny_llm_dir):
    model = load_causal_lm(tiny_llm_dir, tuning="lora", lora_conf=dict(r=2, alpha=4, target_modules=["q_proj", "v_proj"]))
    assert isinstance(model, PeftModel)
    names = trainable_names(model)
    # 1 layer x 2 target modules x (lora_A, lora_B)
    assert len(names) == 4
    assert all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in names)
    assert model.get_input_embeddings().weight.requires_grad is False


def test_dtype(tiny_llm_dir):
    model = load_causal_lm(tiny_llm_dir, tuning="frozen", dtype="bfloat16")
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16


def test_missing_or_broken_dir_names_it(tmp_path):
    missing = tmp_path / "no-such-llm"
    with pytest.raises(FileNotFoundError, match="no-such-llm"):
        load_causal_lm(missing)
    broken = tmp_path / "broken-llm"
    broken.mkdir()
    with pytest.raises(FileNotFoundError, match="broken-llm.*config.json"):
        load_causal_lm(broken)
    (broken / "config.json").write_text('{"model_type": "llama"')  # truncated JSON
    with pytest.raises(RuntimeError, match="broken-llm"):
        load_causal_lm(broken)
    with pytest.raises(ValueError, match="tuning"):
        load_causal_lm(broken, tuning="adapter")


def test_merge_lora_and_save_round_trip(tiny_llm_dir, tmp_path):
    torch.manual_seed(0)
    model = load_causal_lm(tiny_llm_dir, tuning="lora", lora_conf=dict(r=2, alpha=4, dropout=0.0))
    with torch.no_grad():  # LoRA B starts at zero; make the adapters change the output
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    ids = torch.tensor([[5, 17, 42, 3]])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llm_dir)).eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        assert not torch.allclose(expected, base(input_ids=ids).logits, atol=1e-4)

    out_dir = merge_lora_and_save(model, tmp_path / "merged")

    merged = AutoModelForCausalLM.from_pretrained(str(out_dir), local_files_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(input_ids=ids).logits, expected)  # the original is untouched
    assert not any("lora" in k for k in merged.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    assert tokenizer("yes no")["input_ids"] == load_tokenizer(tiny_llm_dir)("yes no")["input_ids"]


@pytest.mark.parametrize("arch,expected", [("llama", {"q_proj", "v_proj"}), ("qwen2", {"q_proj", "v_proj"}),
                                           ("gpt2", {"c_attn"}), ("phi", None), ("gemma", {"q_proj", "v_proj"}),
                                           ("gemma3", {"q_proj", "v_proj"})])
def test_lora_targets_default_to_peft_per_architecture(make_tiny_llm, arch, expected):
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    llm_dir = make_tiny_llm(arch)
    model = load_causal_lm(llm_dir, tuning="lora", lora_conf=dict(r=2, alpha=4))  # no target_modules
    adapted = {n.split(".")[-4] for n in trainable_names(model) if "lora_A" in n}
    expected = expected or set(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[arch])  # (gemma3: gemma3_text)
    assert adapted == expected
    named = load_causal_lm(llm_dir, tuning="lora", lora_conf=dict(r=2, target_modules="all-linear"))
    every_linear = {n.split(".")[-4] for n in trainable_names(named) if "lora_A" in n}
    assert every_linear > expected or arch == "phi" and every_linear >= expected


def test_llm_fingerprint_names_the_weights_not_the_path(tiny_llm_dir, make_tiny_llm, tmp_path):
    import shutil

    from espnet_llm.asr.llm import llm_fingerprint

    first = llm_fingerprint(tiny_llm_dir)
    assert len(first) == 64 and first == llm_fingerprint(tiny_llm_dir)
    copy = shutil.copytree(tiny_llm_dir, tmp_path / "copy")
    assert llm_fingerprint(copy) == first  # the same LLM elsewhere
    assert llm_fingerprint(make_tiny_llm("llama", seed=1)) != first  # same config, other weights
    assert llm_fingerprint(make_tiny_llm("qwen2")) != first
