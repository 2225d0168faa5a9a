"""Tests of espnet_llm.decode.fusion (label-wise and delayed fusion) and espnet_llm.decode.rescoring.

LLMs are tiny transformers Llamas; searches are ESPnet's real BatchBeamSearch. The "AM" of the search tests is
a fixed table of log-probs per output position (a scorer with no state), so that the AM's part is known exactly.
"""

import pytest
import torch
from espnet.nets.batch_beam_search import BatchBeamSearch
from espnet.nets.scorer_interface import BatchScorerInterface
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from espnet_llm.decode.fusion import DelayedLLMScorer, LLMTextScorer, am_tokens_to_text, labelwise_scorer
from espnet_llm.decode.rescoring import rescore_nbest

# AM units that are whole words, and an LLM whose tokenizer has exactly these units (same ids)
WORD_UNITS = ["<blank>", "<unk>", "▁YES", "▁NO", "▁ONE", "▁TWO", "<sos/eos>"]
SOS_EOS = len(WORD_UNITS) - 1


def word_level_llm(seed=0):
    vocab = {u.replace("▁", "").lower(): i for i, u in enumerate(WORD_UNITS)}
    vocab.update({"<blank>": 0, "<unk>": 1, "<sos/eos>": SOS_EOS})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<sos/eos>", eos_token="<sos/eos>", unk_token="<unk>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(WORD_UNITS), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=SOS_EOS, eos_token_id=SOS_EOS,
        initializer_range=0.5,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def reference_logps(llm, bos, ids):
    """Log-prob of each of `ids` after [bos] + the ones before it, by one full forward (no cache)."""
    with torch.no_grad():
        logp = torch.log_softmax(llm(input_ids=torch.tensor([[bos] + list(ids)])).logits[0].float(), -1)
    return [float(logp[i, t]) for i, t in enumerate(ids)]


class TableScorer(BatchScorerInterface):
    """Fixed log-probs per output position: row n scores the n-th token after sos."""

    def __init__(self, table):
        self.table = table  # (Positions, Vocab)

    def batch_init_state(self, x):
        return None

    def init_state(self, x):
        return None

    def batch_score(self, ys, states, xs):
        row = self.table[min(ys.shape[1] - 1, len(self.table) - 1)]
        return row.expand(ys.shape[0], -1).to(xs.dtype), [None] * ys.shape[0]


def step(scorer, sequences):
    """Cumulative scores of the tokens of `sequences` (sos first; equal lengths) fed step by step as a batch."""
    x = torch.zeros(1, 4)
    ys = torch.tensor([[s[0]] for s in sequences])
    states = [scorer.batch_init_state(x)] * len(sequences)
    totals, per_step = [0.0] * len(sequences), []
    for t in range(1, len(sequences[0])):
        scores, new_states = scorer.batch_score(ys, states, x.expand(len(sequences), -1, -1))
        per_step.append(scores)
        for i, s in enumerate(sequences):
            totals[i] += float(scores[i, s[t]])
        states = [scorer.select_state(new_states, i) for i in range(len(sequences))]
        ys = torch.tensor([s[: t + 1] for s in sequences])
    return totals, per_step


def test_am_tokens_to_text():
    units = ["<blank>", "<unk>", "▁", "▁ON", "E", "▁T", "WO", "<sos/eos>"]
    assert am_tokens_to_text(units, [3, 4, 0, 5, 6, 7]) == "ONE TWO"
    assert am_tokens_to_text(units, [2, 3, 4, 2], case="lower") == "one"


@pytest.mark.parametrize("delay", ["word", "token"])
def test_delayed_equals_labelwise_when_units_are_words(delay):
    llm, tokenizer = word_level_llm()
    labelwise = labelwise_scorer(llm, SOS_EOS)
    delayed = DelayedLLMScorer(LLMTextScorer(llm, tokenizer, text_case="lower"), WORD_UNITS, eos=SOS_EOS, delay=delay)
    sequences = [[SOS_EOS, 2, 3, 4, SOS_EOS], [SOS_EOS, 5, 5, 2, SOS_EOS], [SOS_EOS, 3, 4, 5, SOS_EOS]]
    lw_totals, lw_steps = step(labelwise, sequences)
    dl_totals, dl_steps = step(delayed, sequences)
    for seq, lw, dl in zip(sequences, lw_totals, dl_totals):
        want = sum(reference_logps(llm, SOS_EOS, seq[1:]))  # words + EOS
        assert lw == pytest.approx(want, abs=1e-4) and dl == pytest.approx(want, abs=1e-4)
    # the delayed score of a word start is the label-wise score of the word before it: one step later
    # (delay "token": of every candidate)
    for t in range(1, 4):
        for i, seq in enumerate(sequences):
            assert float(dl_steps[t][i, 2]) == pytest.approx(float(lw_steps[t - 1][i, seq[t]]), abs=1e-4)
            if delay == "token":
                assert float(dl_steps[t][i, 4]) == pytest.approx(float(lw_steps[t - 1][i, seq[t]]), abs=1e-4)
    assert torch.all(dl_steps[0][:, 2:SOS_EOS] == 0)  # nothing completed before the first word


def searches(llm, tokenizer, table, beam_size, delay):
    """n-best of ESPnet's BatchBeamSearch with the table "AM" and label-wise / delayed fusion (lm_weight 0.7)."""
    nbests = {}
    for name, lm in [
        ("labelwise", labelwise_scorer(llm, SOS_EOS)),
        ("delayed", DelayedLLMScorer(LLMTextScorer(llm, tokenizer), WORD_UNITS, eos=SOS_EOS, delay=delay)),
    ]:
        search = BatchBeamSearch(
            scorers=dict(decoder=TableScorer(table), lm=lm), weights=dict(decoder=1.0, lm=0.7), beam_size=beam_size,
            vocab_size=len(WORD_UNITS), sos=SOS_EOS, eos=SOS_EOS, pre_beam_score_key="full",
        )
        nbests[name] = search(x=torch.zeros(len(table), 4), maxlenratio=0.0, minlenratio=0.0)
    return nbests


def am_table(seed, positions=6):
    torch.manual_seed(seed)
    table = torch.log_softmax(2.0 * torch.randn(positions, len(WORD_UNITS)), -1)
    table[:, :2] = -1e4  # the AM never emits blank/unk
    return table


@pytest.mark.parametrize("delay", ["word", "token"])
def test_delayed_fusion_scores_each_hypothesis_like_labelwise_fusion(delay):
    """Same units: every hypothesis that ended with EOS carries the LLM's sentence log-prob, in both fusions."""
    llm, tokenizer = word_level_llm(seed=1)
    table = am_table(3)
    table[:3, SOS_EOS] = -1e4  # at least three words
    table[3:, SOS_EOS] = 0.0
    table[3:, 2:SOS_EOS] -= 3.0
    nbests = searches(llm, tokenizer, table, beam_size=4, delay=delay)
    for name, nbest in nbests.items():
        ended = [h for h in nbest if len(h.yseq) < len(table) + 1]  # not cut by the length bound (module doc)
        assert len(ended) >= 3, name
        for hyp in ended:
            want = sum(reference_logps(llm, SOS_EOS, hyp.yseq[1:].tolist()))
            assert float(hyp.scores["lm"]) == pytest.approx(want, abs=1e-3)
            assert float(hyp.score) == pytest.approx(float(hyp.scores["decoder"]) + 0.7 * want, abs=1e-3)


@pytest.mark.parametrize("delay", ["word", "token"])
def test_delayed_and_labelwise_beam_searches_agree_when_nothing_is_pruned(delay):
    """Two words from {YES, NO}: a beam of 4 keeps all four sentences, so both fusions return the same n-best."""
    llm, tokenizer = word_level_llm(seed=2)
    table = am_table(4, positions=3)
    table[:, 4:] = -1e4
    table[2, :] = -1e4
    table[2, SOS_EOS] = 0.0
    nbests = searches(llm, tokenizer, table, beam_size=4, delay=delay)
    kept = {name: [(h.yseq.tolist(), float(h.score)) for h in nbest if h.score > -1e3] for name, nbest in nbests.items()}
    assert sorted(y[1:3] for y, _ in kept["delayed"]) == [[2, 2], [2, 3], [3, 2], [3, 3]]
    assert [y for y, _ in kept["labelwise"]] == [y for y, _ in kept["delayed"]]
    for (_, a), (_, b) in zip(kept["labelwise"], kept["delayed"]):
        assert a == pytest.approx(b, abs=1e-3)


@pytest.fixture(scope="module")
def tiny_llm(tiny_llm_dir):
    llm = AutoModelForCausalLM.from_pretrained(str(tiny_llm_dir), local_files_only=True).eval()
    return llm, AutoTokenizer.from_pretrained(str(tiny_llm_dir), local_files_only=True)


SUBWORD_UNITS = ["<blank>", "<unk>", "▁", "▁ON", "E", "▁T", "WO", "▁NO", "<sos/eos>"]


def test_delayed_scorer_adds_scores_only_at_word_boundaries(tiny_llm):
    """AM pieces "▁ON E ▁T WO <eos>" (words split into pieces) against the byte-level BPE LLM's own tokens."""
    llm, tokenizer = tiny_llm
    eos = len(SUBWORD_UNITS) - 1
    delayed = DelayedLLMScorer(LLMTextScorer(llm, tokenizer, text_case="lower"), SUBWORD_UNITS, eos=eos, delay="word")
    seq = [eos, 3, 4, 5, 6, eos]
    totals, steps = step(delayed, [seq])
    starts = torch.tensor([2, 3, 5, 7])
    inside = torch.tensor([0, 1, 4, 6])
    for scores in steps:
        assert torch.all(scores[0, inside] == 0.0)  # no score inside a word
        assert torch.all(scores[0, starts] == scores[0, starts[0]])  # every word start closes the same word
    bos = tokenizer.bos_token_id
    one = tokenizer("one", add_special_tokens=False)["input_ids"]
    one_two = tokenizer("one two", add_special_tokens=False)["input_ids"]
    assert one_two[: len(one)] == one and len(one_two) > len(one)
    ref = reference_logps(llm, bos, one_two + [tokenizer.eos_token_id])
    assert torch.all(steps[0][0, starts] == 0.0)  # nothing pending before the first piece
    on = tokenizer("on", add_special_tokens=False)["input_ids"]  # after "▁ON" a word start would complete "on"
    assert float(steps[1][0, 5]) == pytest.approx(sum(reference_logps(llm, bos, on)), abs=1e-4)
    assert float(steps[2][0, 5]) == pytest.approx(sum(ref[: len(one)]), abs=1e-4)  # "▁T" completes "one"
    assert float(steps[4][0, eos]) == pytest.approx(sum(ref[len(one) :]), abs=1e-4)  # EOS: "two" + LLM EOS
    assert totals[0] == pytest.approx(sum(ref), abs=1e-4)
    # a state is resolved from the chosen token: after "▁ON E ▁" the pending word is empty again
    totals2, steps2 = step(delayed, [[eos, 3, 4, 2, 5, 6, eos]])
    assert float(steps2[3][0, 5]) == 0.0 and totals2[0] == pytest.approx(sum(ref), abs=1e-4)


def test_rescoring_ranks_by_the_weighted_sum_it_reports(tiny_llm):
    llm, tokenizer = tiny_llm
    scorer = LLMTextScorer(llm, tokenizer, text_case="lower")
    texts = ["YES NO", "NO ENTER ERASE", "ONE TWO THREE", "STOP"]
    llm_scores = [scorer.sentence_logp(t) for t in texts]
    for t, s in zip(texts, llm_scores):
        ids = tokenizer(t.lower(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert s == pytest.approx(sum(reference_logps(llm, tokenizer.bos_token_id, ids)), abs=1e-4)
    best_llm = max(range(len(texts)), key=lambda i: llm_scores[i])
    am = [-1.0 if i != best_llm else -1.5 for i in range(len(texts))]  # the AM alone prefers another one
    ranked = rescore_nbest(list(zip(texts, am)), scorer, lm_weight=5.0, length_bonus=0.3)
    assert [h.text for h in ranked] == sorted(texts, key=lambda t: -(am[texts.index(t)] + 5.0 * llm_scores[texts.index(t)] + 0.3 * len(t.split())))
    for h in ranked:
        i = texts.index(h.text)
        assert (h.am_score, h.n_words) == (am[i], len(texts[i].split()))
        assert h.llm_score == pytest.approx(llm_scores[i], abs=1e-5)
        assert h.total == pytest.approx(h.am_score + 5.0 * h.llm_score + 0.3 * h.n_words)
    assert ranked[0].total == max(h.total for h in ranked)
    if max(llm_scores) - sorted(llm_scores)[-2] > 0.1:  # the LLM's preference outweighs the AM's 0.5
        assert ranked[0].text == texts[best_llm]
    with pytest.raises(ValueError):
        rescore_nbest([], scorer, 1.0)


def test_batched_extension_equals_one_forward_per_text(tiny_llm):
    """extend_batch over caches of different lengths (left-padded) and new segments of different lengths
    (right-padded) gives each text the totals, next-token log-probs and caches of unbatched full forwards."""
    llm, tokenizer = tiny_llm
    scorer = LLMTextScorer(llm, tokenizer, text_case="lower")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    start = scorer.start()
    bases = scorer.extend_batch([start, start, start], ["", "one", "yes no rubout"])
    texts = ["help", "one two three four", "yes no rubout stop"]
    before = scorer.n_forwards
    batched = scorer.extend_batch(bases, texts)
    assert scorer.n_forwards == before + 1  # one forward for the whole batch
    for text, state in zip(texts, batched):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert state.ids == tuple(ids)
        assert state.total == pytest.approx(sum(reference_logps(llm, bos, ids)), abs=1e-4)
        assert float(state.next_logp[eos]) == pytest.approx(reference_logps(llm, bos, ids + [eos])[-1], abs=1e-4)
        assert state.layers[0][0].shape[2] == 1 + len(ids)  # the text's own unpadded cache
    assert scorer.sentence_logps(texts) == pytest.approx([scorer.sentence_logp(t) for t in texts], abs=1e-5)
    assert scorer.extend_batch(bases, texts) == batched  # memoised: no new forward


def test_retokenised_and_shortened_texts_reuse_the_common_prefix(tiny_llm):
    """A growing partial word changes the last ids ("yes on" -> "yes one"), a text may be cut short; both feed
    the last common token again and give the same scores as full forwards."""
    llm, tokenizer = tiny_llm
    scorer = LLMTextScorer(llm, tokenizer, text_case="lower")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    enc = lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert enc("yes one")[:1] == enc("yes on")[:1] and enc("yes one")[:2] != enc("yes on")[:2]
    start = scorer.start()
    bases = scorer.extend_batch([start] * 3, ["yes on", "one two", "on"])
    texts = ["yes one", "one", "one"]
    assert scorer.extend_batch(bases[:1], texts[:1])[0].ids == tuple(enc("yes one"))
    scorer.reset()
    bases = scorer.extend_batch([start] * 3, ["yes on", "one two", "on"])
    before = scorer.n_forwards
    states = scorer.extend_batch(bases, texts)
    assert scorer.n_forwards == before + 1
    for text, state in zip(texts, states):
        ids = enc(text)
        ref = reference_logps(llm, bos, ids + [eos])
        assert state.ids == tuple(ids)
        assert list(state.token_logps) == pytest.approx(ref[:-1], abs=1e-4)
        assert float(state.next_logp[eos]) == pytest.approx(ref[-1], abs=1e-4)
        assert state.layers[0][0].shape[2] == 1 + len(ids)


def test_token_delay_scores_partial_words_and_sums_to_the_sentence(tiny_llm):
    """delay="token" on AM pieces "▁ON E ▁T WO <eos>": each step adds what the previous piece changed in the
    LLM's score of the whole text so far (partial word "on" included), the total is log P("one two" + EOS)."""
    llm, tokenizer = tiny_llm
    eos = len(SUBWORD_UNITS) - 1
    delayed = DelayedLLMScorer(LLMTextScorer(llm, tokenizer, text_case="lower"), SUBWORD_UNITS, eos=eos, delay="token")
    seq = [eos, 3, 4, 5, 6, eos]
    totals, steps = step(delayed, [seq])
    bos = tokenizer.bos_token_id
    enc = lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert torch.all(steps[0][0, :eos] == 0.0)  # EOS: the LLM's EOS after the empty text
    assert torch.all(steps[1][0, :eos] == steps[1][0, 0])  # the same for every candidate but EOS
    assert float(steps[1][0, 0]) == pytest.approx(sum(reference_logps(llm, bos, enc("on"))), abs=1e-4)
    assert float(steps[2][0, 0]) == pytest.approx(
        sum(reference_logps(llm, bos, enc("one"))) - sum(reference_logps(llm, bos, enc("on"))), abs=1e-4)
    ref = reference_logps(llm, bos, enc("one two") + [tokenizer.eos_token_id])
    assert totals[0] == pytest.approx(sum(ref), abs=1e-4)
    with pytest.raises(ValueError, match="delay"):
        DelayedLLMScorer(LLMTextScorer(llm, tokenizer), SUBWORD_UNITS, eos=eos, delay="char")
