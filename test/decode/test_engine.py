"""Tests of espnet_llm.decode.engine: the exported LLM engines against the Hugging Face model they stand for."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from espnet_llm.decode.engine import ENGINES, export_engine, load_engine
from espnet_llm.decode.greedy import greedy_search, speculative_greedy_search
from espnet_llm.decode.llm_scorer import LLMPrefixScorer

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

EXACT = [("openvino", "f32"), ("onnxruntime", "f32")]


@pytest.fixture(scope="module", params=["llama", "gpt2"])  # GQA with RoPE; learned positions (Qwen2: below)
def llm(request, make_tiny_llm):
    return AutoModelForCausalLM.from_pretrained(make_tiny_llm(request.param)).eval()


def prefixes(llm, lengths=(5, 9, 2), seed=0):
    generator = torch.Generator().manual_seed(seed)
    dim = llm.get_input_embeddings().embedding_dim
    return [torch.randn(n, dim, generator=generator) for n in lengths]


@pytest.mark.parametrize("engine,precision", EXACT)
def test_fp32_engines_match_hf_logits_and_cache_within_1e_3(llm, engine, precision, tmp_path):
    fast = load_engine(llm, engine, precision, tmp_path / engine)
    dim = llm.get_input_embeddings().embedding_dim
    x = torch.randn(3, 6, dim)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[0, :2] = 0  # a left-padded row, as batched greedy search feeds
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ref = llm(inputs_embeds=x, attention_mask=mask, position_ids=positions, past_key_values=DynamicCache(),
                  use_cache=True)
        out = fast(inputs_embeds=x, attention_mask=mask, position_ids=positions, past_key_values=DynamicCache(),
                   use_cache=True)
        real = mask.bool()  # a padded position's logits are of no use (and differ between attention kernels)
        assert (out.logits[real] - ref.logits[real]).abs().max() < 1e-3
        for a, b in zip(ref.past_key_values.layers, out.past_key_values.layers):
            assert a.keys.shape == b.keys.shape and (a.keys - b.keys).abs().max() < 1e-3
        # a cached step with token ids, the last position's logits only (the fusion scorers' and greedy's call)
        ids = torch.tensor([[3], [4], [5]])
        mask2 = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
        step = dict(input_ids=ids, attention_mask=mask2, position_ids=positions[:, -1:] + 1, use_cache=True,
                    logits_to_keep=1)
        ref2 = llm(past_key_values=ref.past_key_values, **step)
        out2 = fast(past_key_values=out.past_key_values, **step)
        assert out2.logits.shape == ref2.logits.shape == (3, 1, llm.config.vocab_size)
        assert (out2.logits - ref2.logits).abs().max() < 1e-3
    assert not llm.training  # exporting leaves the reference in eval mode (dropout off)


@pytest.mark.parametrize("engine,precision", EXACT)
def test_fp32_engines_give_greedy_speculative_and_scorer_output_of_hf(llm, engine, precision, tmp_path):
    fast = load_engine(llm, engine, precision, tmp_path / engine)
    ps = prefixes(llm)
    ref = greedy_search(llm, ps, [12, 12, 12], eos=0)
    got = greedy_search(fast, ps, [12, 12, 12], eos=0)
    assert [r.token_ids for r in got] == [r.token_ids for r in ref]
    assert [r.score for r in got] == pytest.approx([r.score for r in ref], abs=1e-3)
    drafts = [r.token_ids[:3] + [7] for r in ref]
    spec, _ = speculative_greedy_search(fast, ps, drafts, [12, 12, 12], eos=0, window=4)
    assert [r.token_ids for r in spec] == [r.token_ids for r in ref]
    ys = torch.tensor([[0, 5, 7], [0, 5, 8]])
    a, b = LLMPrefixScorer(llm, ps[1]), LLMPrefixScorer(fast, ps[1])
    assert (a.score_full_prefix(ys) - b.score_full_prefix(ys)).abs().max() < 1e-3
    state_a, state_b = a.batch_init_state(None), b.batch_init_state(None)
    la, _ = a.batch_score(ys[:, :1], [state_a, state_a], torch.zeros(2, 1, 1))
    lb, _ = b.batch_score(ys[:, :1], [state_b, state_b], torch.zeros(2, 1, 1))
    assert (la - lb).abs().max() < 1e-3


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_openvino_lower_precisions_stay_close_to_hf(make_tiny_llm, precision, tmp_path):
    llm = AutoModelForCausalLM.from_pretrained(make_tiny_llm("qwen2")).eval()
    fast = load_engine(llm, "openvino", precision, tmp_path / precision)
    ys = torch.tensor([[0, 5, 7]])
    ps = prefixes(llm)
    diff = (LLMPrefixScorer(llm, ps[0]).score_full_prefix(ys) - LLMPrefixScorer(fast, ps[0]).score_full_prefix(ys))
    assert torch.isfinite(diff).all() and 0 < diff.abs().max() < 0.5  # lower precision: close, not equal
    assert json.loads((tmp_path / precision / "engine.json").read_text())["precision"] == precision
    if precision == "int8":
        weights = (tmp_path / precision / "llm.bin").stat().st_size
        f32 = export_engine(llm, tmp_path / "f32", "openvino", "f32")
        assert weights < 0.6 * (f32 / "llm.bin").stat().st_size


def test_an_export_is_reused_for_the_same_weights_and_redone_for_others(make_tiny_llm, tmp_path, caplog):
    llm = AutoModelForCausalLM.from_pretrained(make_tiny_llm("llama")).eval()
    where = tmp_path / "export" / "openvino_f32"
    load_engine(llm, "openvino", "f32", where)
    first = (where / "engine.json").stat().st_mtime_ns
    load_engine(llm, "openvino", "f32", where)
    assert (where / "engine.json").stat().st_mtime_ns == first
    with torch.no_grad():
        llm.get_output_embeddings().weight[0, 0] += 1.0  # other weights: the old graph must not be used
    fast = load_engine(llm, "openvino", "f32", where)
    assert (where / "engine.json").stat().st_mtime_ns != first
    assert "exported from other weights" in caplog.text
    x = torch.randn(1, 3, llm.get_input_embeddings().embedding_dim)
    with torch.no_grad():
        assert (fast(inputs_embeds=x).logits - llm(inputs_embeds=x).logits).abs().max() < 1e-3
    assert sorted(p.name for p in where.parent.iterdir()) == ["openvino_f32", "openvino_f32.lock"]


def test_lora_is_merged_into_the_export_and_the_peft_model_is_left_as_it_was(make_tiny_llm, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(make_tiny_llm("llama"))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).eval()
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    fast = load_engine(peft_model, "onnxruntime", "f32", tmp_path / "ort")
    assert any("lora_B" in n for n, _ in peft_model.named_parameters())  # not merged in place
    x = torch.randn(2, 4, base.get_input_embeddings().embedding_dim)
    with torch.no_grad():
        assert (fast(inputs_embeds=x).logits - peft_model(inputs_embeds=x).logits).abs().max() < 1e-3


def test_hf_is_the_model_itself_and_bad_choices_are_named(make_tiny_llm):
    llm = AutoModelForCausalLM.from_pretrained(make_tiny_llm("llama")).eval()
    assert load_engine(llm, "hf") is llm
    with pytest.raises(ValueError, match="nothing to export"):
        export_engine(llm, "unused", "hf")
    with pytest.raises(ValueError, match="unknown LLM engine 'vllm'"):
        load_engine(llm, "vllm")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_engine(llm, "onnxruntime", "int8")
    with pytest.raises(ValueError, match="precision must be f32"):
        load_engine(llm, "hf", "bf16")


def test_cli_choices_name_every_engine():
    from espnet_llm.bin import asr_fusion_inference, llm_asr_inference

    assert llm_asr_inference.ENGINES == asr_fusion_inference.ENGINES == ENGINES
    for parser in (llm_asr_inference.get_parser(), asr_fusion_inference.get_parser()):
        action = next(a for a in parser._actions if a.dest == "llm_engine")
        assert tuple(action.choices) == ENGINES
