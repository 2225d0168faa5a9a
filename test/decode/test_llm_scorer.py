"""Tests of espnet_llm.decode.llm_scorer with ESPnet's real BatchBeamSearch and a tiny transformers Llama."""

import pytest
import torch
from espnet.nets.batch_beam_search import BatchBeamSearch
from espnet.nets.beam_search import BeamSearch
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet.nets.scorers.length_bonus import LengthBonus
from espnet2.asr.ctc import CTC
from transformers import LlamaConfig, LlamaForCausalLM

from espnet_llm.decode.llm_scorer import LLMPrefixScorer

VOCAB, DIM, EOS = 12, 16, 1


def tiny_llm(seed=0, sharpen=3.0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=DIM, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, eos_token_id=EOS,
    )
    llm = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        llm.lm_head.weight.mul_(sharpen)  # peakier distributions: greedy paths that end on EOS within the bound
    return llm


def greedy_reference(llm, prefix, maxlen):
    """Plain greedy loop on the HF model, full forward each step: tokens (EOS included if emitted) and log-probs."""
    tokens, logps = [], []
    embeds = prefix[None]
    with torch.no_grad():
        for _ in range(maxlen):
            logp = torch.log_softmax(llm(inputs_embeds=embeds).logits[0, -1], -1)
            token = int(logp.argmax())
            tokens.append(token)
            logps.append(float(logp[token]))
            if token == EOS:
                break
            embeds = torch.cat([embeds, llm.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
    return tokens, logps


def sequence_logp(scorer, yseq):
    """Sum of full-prefix log-probs of yseq[1:] (yseq[0] the start marker), by one forward per position."""
    return sum(float(scorer.score_full_prefix(yseq[None, :t])[0, yseq[t]]) for t in range(1, len(yseq)))


def test_cached_scores_equal_full_prefix_with_reordering():
    llm = tiny_llm()
    scorer = LLMPrefixScorer(llm, torch.randn(6, DIM))
    x = torch.zeros(10, 4)
    ys = torch.tensor([[EOS]])
    states = [scorer.batch_init_state(x)]
    assert states[0].layers[0][0].shape == (1, 1, 5, DIM // 2)  # prefix minus its last position
    reorders = [[0, 0, 0], [2, 0, 1], [1, 1, 2], [0, 2, 2], [2, 1, 0]]
    for step, prev in enumerate(reorders):
        logp, new_states = scorer.batch_score(ys, states, x.expand(len(ys), -1, -1))
        assert logp.shape == (len(ys), VOCAB)
        assert torch.allclose(logp.exp().sum(-1), torch.ones(len(ys)), atol=1e-5)
        torch.testing.assert_close(logp, scorer.score_full_prefix(ys), atol=1e-5, rtol=1e-5)
        assert all(s.layers[0][0].shape[2] == 6 + step for s in new_states)
        new_tokens = torch.tensor([[(3 + 2 * step + i) % VOCAB] for i in range(len(prev))])
        ys = torch.cat([ys[prev], new_tokens], dim=1)
        states = [scorer.select_state(new_states, i) for i in prev]
    torch.testing.assert_close(scorer.batch_score(ys, states, x.expand(3, -1, -1))[0], scorer.score_full_prefix(ys))


def test_a_sliding_window_llm_scores_as_its_full_forward_with_reordering():
    """Gemma 3's sliding-window layers (a window of 3 positions, shorter than the prefix) in the beam state."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=DIM, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
                              eos_token_id=EOS, pad_token_id=0, sliding_window=3,
                              layer_types=["sliding_attention", "full_attention"])
    scorer = LLMPrefixScorer(Gemma3ForCausalLM(config).eval(), torch.randn(6, DIM))
    x = torch.zeros(10, 4)
    ys = torch.tensor([[EOS]])
    states = [scorer.batch_init_state(x)]
    for step, prev in enumerate([[0, 0, 0], [2, 0, 1], [1, 1, 2], [0, 2, 2]]):
        logp, new_states = scorer.batch_score(ys, states, x.expand(len(ys), -1, -1))
        torch.testing.assert_close(logp, scorer.score_full_prefix(ys), atol=1e-5, rtol=1e-5)
        ys = torch.cat([ys[prev], torch.tensor([[(3 + 2 * step + i) % VOCAB] for i in range(len(prev))])], dim=1)
        states = [scorer.select_state(new_states, i) for i in prev]
    torch.testing.assert_close(scorer.batch_score(ys, states, x.expand(3, -1, -1))[0], scorer.score_full_prefix(ys))


def test_states_from_separate_caches_are_batched():
    """States made one by one (ESPnet's plain BeamSearch path) concatenate into one batch correctly."""
    scorer = LLMPrefixScorer(tiny_llm(), torch.randn(4, DIM))
    x = torch.zeros(10, 4)
    init = scorer.init_state(x)
    ys = [torch.tensor([EOS, 5, 7]), torch.tensor([EOS, 2, 9])]
    states = []
    for y in ys:
        _, state = scorer.score(y[:1], init, x)
        _, state = scorer.score(y[:2], state, x)
        states.append(state)
    assert states[0].layers is not states[1].layers
    logp, _ = scorer.batch_score(torch.stack(ys), states, x.expand(2, -1, -1))
    torch.testing.assert_close(logp, scorer.score_full_prefix(torch.stack(ys)), atol=1e-5, rtol=1e-5)


def test_prefix_of_one_position():
    scorer = LLMPrefixScorer(tiny_llm(), torch.randn(1, DIM))
    x = torch.zeros(3, 4)
    logp, states = scorer.batch_score(torch.tensor([[EOS]]), [scorer.batch_init_state(x)], x[None])
    torch.testing.assert_close(logp, scorer.score_full_prefix(torch.tensor([[EOS]])))
    ys = torch.tensor([[EOS, 4]])
    torch.testing.assert_close(scorer.batch_score(ys, states, x[None])[0], scorer.score_full_prefix(ys))
    with pytest.raises(ValueError, match="embedding dim"):
        scorer.set_prefix(torch.randn(3, DIM + 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam1_equals_greedy_loop(seed):
    llm = tiny_llm(seed)
    prefix = torch.randn(5, DIM)
    maxlen = 15
    search = BatchBeamSearch(
        scorers={"decoder": LLMPrefixScorer(llm, prefix)}, weights={"decoder": 1.0}, beam_size=1,
        vocab_size=VOCAB, sos=EOS, eos=EOS, pre_beam_score_key="full",
    )
    best = search(torch.zeros(10, 4), maxlenratio=-maxlen)[0]
    tokens, logps = greedy_reference(llm, prefix, maxlen)
    if tokens[-1] != EOS:  # the bound stopped greedy; beam search appends an unscored EOS
        tokens.append(EOS)
    assert best.yseq.tolist() == [EOS] + tokens
    assert float(best.score) == pytest.approx(sum(logps), abs=1e-4)


def test_beam4_sorted_hyps_with_exact_scores():
    llm = tiny_llm(3, sharpen=1.5)
    scorer = LLMPrefixScorer(llm, torch.randn(5, DIM))
    search = BatchBeamSearch(
        scorers={"decoder": scorer, "length_bonus": LengthBonus(VOCAB)},
        weights={"decoder": 1.0, "length_bonus": 0.5}, beam_size=4, vocab_size=VOCAB, sos=EOS, eos=EOS,
        pre_beam_score_key="full",
    )
    hyps = search(torch.zeros(10, 4), maxlenratio=-8)
    assert len(hyps) >= 4
    scores = [float(h.score) for h in hyps]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(h.yseq.tolist()) for h in hyps}) == len(hyps)
    for h in hyps[:4]:
        n_scored = len(h.yseq) - 1 if len(h.yseq) <= 9 else len(h.yseq) - 2  # forced EOS at the bound is unscored
        decoder = sequence_logp(scorer, h.yseq[: n_scored + 1])
        assert float(h.scores["decoder"]) == pytest.approx(decoder, abs=1e-4)
        assert float(h.scores["length_bonus"]) == n_scored
        assert float(h.score) == pytest.approx(decoder + 0.5 * n_scored, abs=1e-4)


def test_joint_ctc_decoding_runs():
    """The LLM scorer beside ESPnet's CTCPrefixScorer (a partial scorer) in BatchBeamSearch."""
    llm = tiny_llm(4, sharpen=1.5)
    torch.manual_seed(0)
    ctc = CTC(odim=VOCAB, encoder_output_size=8).eval()
    enc = torch.randn(20, 8)
    search = BatchBeamSearch(
        scorers={"decoder": LLMPrefixScorer(llm, torch.randn(5, DIM)), "ctc": CTCPrefixScorer(ctc, EOS)},
        weights={"decoder": 0.7, "ctc": 0.3}, beam_size=3, vocab_size=VOCAB, sos=EOS, eos=EOS, pre_beam_ratio=2.0,
    )
    with torch.no_grad():
        hyps = search(enc, maxlenratio=-10)
    assert hyps and all(h.yseq[0] == EOS and h.yseq[-1] == EOS for h in hyps)
    for h in hyps:
        assert float(h.score) == pytest.approx(0.7 * float(h.scores["decoder"]) + 0.3 * float(h.scores["ctc"]), abs=1e-4)
        assert float(h.scores["ctc"]) < 0


def test_plain_beam_search_agrees_with_batch():
    llm = tiny_llm(5, sharpen=1.5)
    prefix = torch.randn(4, DIM)
    kwargs = dict(weights={"decoder": 1.0}, beam_size=3, vocab_size=VOCAB, sos=EOS, eos=EOS, pre_beam_score_key="full")
    batch = BatchBeamSearch(scorers={"decoder": LLMPrefixScorer(llm, prefix)}, **kwargs)(torch.zeros(6, 4), -6)
    plain = BeamSearch(scorers={"decoder": LLMPrefixScorer(llm, prefix)}, **kwargs)(torch.zeros(6, 4), -6)
    assert [h.yseq.tolist() for h in batch[:3]] == [h.yseq.tolist() for h in plain[:3]]
    assert [float(h.score) for h in batch[:3]] == pytest.approx([float(h.score) for h in plain[:3]], abs=1e-4)
