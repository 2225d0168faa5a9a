"""Tests of espnet_llm.decode.guards: repetition stop (greedy and ESPnet's beam search alike), CTC best path, WER."""

import pytest
import torch
from espnet.nets.batch_beam_search import BatchBeamSearch
from transformers import LlamaConfig, LlamaForCausalLM

from espnet_llm.decode.greedy import greedy_search
from espnet_llm.decode.guards import RepetitionStop, ctc_greedy_ids, repeats_too_often, word_error_rate
from espnet_llm.decode.llm_scorer import LLMPrefixScorer

VOCAB, DIM, EOS = 12, 16, 1


def looping_llm():
    """A tiny Llama that never says EOS and repeats itself (its EOS logit pushed down)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=DIM, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, eos_token_id=EOS,
    )
    llm = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        llm.lm_head.weight.mul_(4.0)
        llm.lm_head.weight[EOS] = 0.0  # EOS logit 0: rarely the best
    return llm


def test_repeats_too_often():
    assert not repeats_too_often([3, 4, 3, 4], n=2, k=2)
    assert repeats_too_often([3, 4, 3, 4, 3, 4], n=2, k=2)
    assert repeats_too_often([5, 5, 5], n=1, k=2) and not repeats_too_often([5, 5, 6], n=1, k=2)
    assert repeats_too_often([7, 7, 7, 7], n=2, k=2)  # overlapping occurrences count
    assert not repeats_too_often([], n=1, k=1)


def test_word_error_rate_and_ctc_best_path():
    assert word_error_rate("one two three", "one two three") == 0.0
    assert word_error_rate("ONE two three", "one too three four") == pytest.approx(2 / 3)
    assert word_error_rate("", "") == 0.0 and word_error_rate("", "hello") == 1.0
    logits = torch.full((7, 4), -5.0)
    for t, label in enumerate([0, 2, 2, 0, 2, 3, 0]):
        logits[t, label] = 5.0
    assert ctc_greedy_ids(logits) == [2, 2, 3]


def test_repetition_stop_in_greedy_equals_beam_of_one():
    llm = looping_llm()
    prefix = torch.randn(5, DIM)
    free = greedy_search(llm, [prefix], [30], EOS)[0]
    assert not free.ended and len(free.token_ids) == 30
    assert repeats_too_often(free.token_ids[:12], 1, 2) or repeats_too_often(free.token_ids[:12], 2, 2)
    for n in (1, 2):
        stopped = greedy_search(llm, [prefix], [30], EOS, repeat_stop=(n, 2))[0]
        ids = stopped.token_ids
        assert stopped.ended and len(ids) < 30
        assert ids == free.token_ids[: len(ids)]  # the same path up to the stop
        assert repeats_too_often(ids, n, 2)  # stopped right after the (k + 1)-th occurrence
        assert not any(repeats_too_often(ids[:j], n, 2) for j in range(len(ids)))
        scorer = LLMPrefixScorer(llm, prefix)
        search = BatchBeamSearch(
            scorers=dict(decoder=scorer, repetition=RepetitionStop(n, 2, EOS, VOCAB)),
            weights=dict(decoder=1.0, repetition=1.0), beam_size=1, vocab_size=VOCAB, sos=EOS, eos=EOS,
        )
        best = search(x=torch.zeros(4, 2), maxlenratio=-30, minlenratio=0.0)[0]
        assert best.yseq[1:-1].tolist() == ids
        assert float(best.score) == pytest.approx(stopped.score, abs=1e-4)
        assert float(best.scores["repetition"]) == 0.0


def test_loops_and_fallback_reasons():
    from espnet_llm.decode.guards import fallback_reason, loops

    assert loops([5, 5, 5, 5, 5], k=4) and not loops([5, 5, 5, 5], k=4)
    assert loops([1, 2] * 5, k=4) and not loops([1, 2, 3, 4, 5, 6, 7, 8], k=1)
    assert fallback_reason([1, 2] * 5, "a b " * 5, "a b", maxlen=50, threshold=0.5, repeat=4) == "loop"
    assert fallback_reason([1, 2, 3], "a b c", "a b c", maxlen=4, threshold=0.5, repeat=4) == "length"
    assert fallback_reason([1, 2, 3], "a b c", "x y z", maxlen=40, threshold=0.5, repeat=4) == "ctc_disagreement"
    assert fallback_reason([1, 2, 3], "a b c", "a b d", maxlen=40, threshold=0.5, repeat=4) == ""
    assert fallback_reason([1] * 9, "a " * 9, "a " * 9, maxlen=40, threshold=0.5, repeat=0) == ""  # loop check off
