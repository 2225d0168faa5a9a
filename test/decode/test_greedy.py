"""Tests of espnet_llm.decode.greedy: batched greedy over prefixes of different lengths on a tiny Llama."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from espnet_llm.decode.greedy import greedy_search, left_pad, max_output_length

VOCAB, DIM, EOS = 12, 16, 1


def tiny_llm(seed, sharpen=3.0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=DIM, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, eos_token_id=EOS,
    )
    llm = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        llm.lm_head.weight.mul_(sharpen)
    return llm


def full_forward_greedy(llm, prefix, maxlen):
    tokens, score = [], 0.0
    embeds = prefix[None]
    with torch.no_grad():
        for _ in range(maxlen):
            logp = torch.log_softmax(llm(inputs_embeds=embeds).logits[0, -1], -1)
            token = int(logp.argmax())
            score += float(logp[token])
            if token == EOS:
                return tokens, score, True
            tokens.append(token)
            embeds = torch.cat([embeds, llm.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
    return tokens, score, False


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_batched_equals_one_by_one(seed):
    llm = tiny_llm(seed)
    prefixes = [torch.randn(n, DIM) for n in (3, 9, 6)]
    max_lens = [12, 7, 15]
    batched = greedy_search(llm, prefixes, max_lens, eos=EOS)
    for prefix, maxlen, result in zip(prefixes, max_lens, batched):
        alone = greedy_search(llm, [prefix], [maxlen], eos=EOS)[0]
        assert result.token_ids == alone.token_ids and result.ended == alone.ended
        assert result.score == pytest.approx(alone.score, abs=1e-4)
        tokens, score, ended = full_forward_greedy(llm, prefix, maxlen)
        assert (result.token_ids, result.ended) == (tokens, ended)
        assert result.score == pytest.approx(score, abs=1e-4)
        assert len(result.token_ids) + int(result.ended) <= maxlen


def test_both_stops_happen_and_min_len_delays_eos():
    llm = tiny_llm(1)
    torch.manual_seed(101)
    prefix = torch.randn(5, DIM)
    free = greedy_search(llm, [prefix], [30], eos=EOS)[0]
    assert free.ended and len(free.token_ids) == 5
    bounded = greedy_search(llm, [prefix], [3], eos=EOS)[0]
    assert not bounded.ended and bounded.token_ids == free.token_ids[:3]
    assert bounded.score > free.score
    delayed = greedy_search(llm, [prefix, prefix], [30, 30], eos=EOS, min_lens=[0, 8])
    assert delayed[0].token_ids == free.token_ids and delayed[0].score == pytest.approx(free.score, abs=1e-5)
    assert len(delayed[1].token_ids) >= 8 and delayed[1].token_ids[:5] == free.token_ids


def test_left_pad_and_max_output_length():
    embeds, mask, positions = left_pad([torch.ones(2, 3), torch.full((4, 3), 2.0)])
    assert embeds[:, :, 0].tolist() == [[0, 0, 1, 1], [2, 2, 2, 2]]
    assert mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert positions.tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]
    assert max_output_length(40, 0.5, 5) == 25
    assert max_output_length(41, 0.5, 5) == 26
    assert max_output_length(0, 0.0, 0) == 1
    with pytest.raises(ValueError):
        max_output_length(10, -1.0, 0)


def tiny_other_llm(family, seed):
    """A tiny GPT-2, Gemma 3 (a sliding-window layer of 3 positions, shorter than the prefixes, then a global one)
    or Qwen2 (other families `--llm PATH` accepts), same vocabulary and width."""
    from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, Qwen2Config,
                              Qwen2ForCausalLM)

    torch.manual_seed(seed)
    if family == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=DIM, n_layer=2, n_head=2, n_positions=128, eos_token_id=EOS)
        return GPT2LMHeadModel(config).eval()
    if family == "gemma3":
        config = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=DIM, intermediate_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
                                  eos_token_id=EOS, pad_token_id=0, sliding_window=3,
                                  layer_types=["sliding_attention", "full_attention"])
        return Gemma3ForCausalLM(config).eval()
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=DIM, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128, eos_token_id=EOS)
    return Qwen2ForCausalLM(config).eval()


@pytest.mark.parametrize("family", ["gpt2", "qwen2", "gemma3"])
def test_other_llm_families_batched_equals_full_forward(family):
    llm = tiny_other_llm(family, seed=0)
    with torch.no_grad():
        llm.get_output_embeddings().weight.mul_(3.0)  # sharper choices (GPT-2 ties it to the input embedding)
    prefixes = [torch.randn(n, DIM) for n in (4, 8)]
    for prefix, result in zip(prefixes, greedy_search(llm, prefixes, [10, 10], eos=EOS)):
        tokens, score, ended = full_forward_greedy(llm, prefix, 10)
        assert (result.token_ids, result.ended) == (tokens, ended)
        assert result.score == pytest.approx(score, abs=1e-4)


def drafts_for(plain, kind, seed):
    """Drafts of one greedy output: itself, empty, shifted, with a token inserted, dropped or changed, random."""
    g = torch.Generator().manual_seed(seed)
    ids = list(plain.token_ids)
    if kind == "exact":
        return ids
    if kind == "empty":
        return []
    if kind == "random":
        return torch.randint(2, VOCAB, (len(ids) + 3,), generator=g).tolist()
    if not ids:
        return ids
    k = int(torch.randint(0, len(ids), (1,), generator=g))
    if kind == "inserted":
        return ids[:k] + [2 + (ids[k] + 1) % (VOCAB - 2)] + ids[k:]
    if kind == "dropped":
        return ids[:k] + ids[k + 1:]
    return ids[:k] + [2 + (ids[k] - 1) % (VOCAB - 2)] + ids[k + 1:]  # changed


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("kind", ["exact", "empty", "random", "inserted", "dropped", "changed"])
def test_speculative_greedy_equals_plain_greedy_whatever_the_draft(seed, kind):
    from espnet_llm.decode.greedy import speculative_greedy_search

    llm = tiny_llm(seed)
    torch.manual_seed(50 + seed)
    prefixes = [torch.randn(n, DIM) for n in (3, 9, 6, 5)]
    max_lens, min_lens = [12, 7, 15, 30], [0, 0, 4, 0]
    for repeat_stop in (None, (2, 1)):
        plain = greedy_search(llm, prefixes, max_lens, eos=EOS, min_lens=min_lens, repeat_stop=repeat_stop)
        drafts = [drafts_for(p, kind, seed + i) for i, p in enumerate(plain)]
        fast, stats = speculative_greedy_search(llm, prefixes, drafts, max_lens, eos=EOS, min_lens=min_lens,
                                                repeat_stop=repeat_stop, window=4)
        for p, f in zip(plain, fast):
            assert (f.token_ids, f.ended) == (p.token_ids, p.ended)
            assert f.score == pytest.approx(p.score, abs=1e-4)
        assert stats.tokens == sum(len(p.token_ids) for p in plain)
        if kind == "exact":  # each forward: `window` accepted draft tokens and the token after them
            assert stats.accepted + stats.forwards >= stats.tokens
            assert stats.forwards <= sum(-(-(len(p.token_ids) + 1) // 5) for p in plain)


@pytest.mark.parametrize("kind", ["exact", "random", "changed"])
def test_speculative_batched_equals_one_at_a_time(kind):
    """A batch of prefixes of different lengths, whose rows accept different numbers of draft tokens per forward
    (their rejected tokens stay in the cache, masked), gives what each utterance gives alone, in fewer forwards."""
    from espnet_llm.decode.greedy import speculative_greedy_search

    llm = tiny_llm(5)
    torch.manual_seed(7)
    prefixes = [torch.randn(n, DIM) for n in (2, 11, 6, 4, 8)]
    max_lens, min_lens = [20, 9, 14, 30, 5], [0, 3, 0, 0, 1]
    plain = greedy_search(llm, prefixes, max_lens, eos=EOS, min_lens=min_lens)
    drafts = [drafts_for(p, kind, i) for i, p in enumerate(plain)]
    batched, stats = speculative_greedy_search(llm, prefixes, drafts, max_lens, eos=EOS, min_lens=min_lens, window=3)
    alone = [speculative_greedy_search(llm, [p], [d], [m], eos=EOS, min_lens=[k], window=3)
             for p, d, m, k in zip(prefixes, drafts, max_lens, min_lens)]
    for b, (a, _), p in zip(batched, alone, plain):
        assert (b.token_ids, b.ended) == (a[0].token_ids, a[0].ended) == (p.token_ids, p.ended)
        assert b.score == pytest.approx(p.score, abs=1e-4)
    # the same draft work per utterance; one batched forward serves every unfinished row
    assert (stats.proposed, stats.accepted, stats.forwards) == tuple(
        sum(getattr(s, f) for _, s in alone) for f in ("proposed", "accepted", "forwards"))
    assert stats.batch_forwards == max(s.batch_forwards for _, s in alone)


@pytest.mark.parametrize("family", ["gpt2", "qwen2", "gemma3"])
def test_speculative_other_llm_families_equal_full_forward(family):
    """GPT-2 (absolute positions), Qwen2 and Gemma 3 (a sliding-window layer shorter than the prefix: decoded one
    utterance at a time) give full-forward greedy's tokens from a batch with wrong drafts."""
    from espnet_llm.decode.greedy import speculative_greedy_search

    llm = tiny_other_llm(family, seed=0)
    with torch.no_grad():
        llm.get_output_embeddings().weight.mul_(3.0)
    prefixes = [torch.randn(n, DIM) for n in (4, 8, 6)]
    reference = [full_forward_greedy(llm, p, 10) for p in prefixes]
    drafts = [tokens[:2] + [3] + tokens[3:] for tokens, _, _ in reference]
    results, stats = speculative_greedy_search(llm, prefixes, drafts, [10] * 3, eos=EOS, window=4)
    for result, (tokens, score, ended) in zip(results, reference):
        assert (result.token_ids, result.ended) == (tokens, ended)
        assert result.score == pytest.approx(score, abs=1e-4)
    assert stats.tokens == sum(len(t) for t, _, _ in reference)


def test_speculative_rejects_bad_arguments():
    from espnet_llm.decode.greedy import speculative_greedy_search

    llm, prefix = tiny_llm(0), torch.randn(3, DIM)
    with pytest.raises(ValueError, match="max_lens must be >= 1"):
        speculative_greedy_search(llm, [prefix], [[2]], [0], eos=EOS)
    with pytest.raises(ValueError, match="window must be >= 1"):
        speculative_greedy_search(llm, [prefix], [[2]], [5], eos=EOS, window=0)
    with pytest.raises(ValueError, match="2 drafts"):
        speculative_greedy_search(llm, [prefix], [[2], [3]], [5], eos=EOS)
