"""espnet_llm.decode.hotwords: a trie of listed phrases as a beam-search scorer, bonus taken back on a failed match."""
import pytest
import torch
from espnet.nets.scorer_interface import BatchScorerInterface
from espnet.nets.scorers.length_bonus import LengthBonus

from espnet_llm.decode.hotwords import HotwordScorer, HotwordTrie, llm_hotword_sequences, read_hotwords
from espnet_llm.decode.search import SettledBatchBeamSearch

VOCAB, EOS = 8, 7
B = 2.0


def scorer(*phrases):
    return HotwordScorer([list(p) for p in phrases], VOCAB, bonus=B)


def row(s, state):
    return s.scores_for(state).tolist()


def test_bonus_along_a_phrase_and_taken_back_when_it_fails():
    s = scorer((1, 2, 3))
    root = s.init_state(None)
    # nothing matched: only the phrase's first token gets the bonus
    assert row(s, root) == [0, B, 0, 0, 0, 0, 0, 0]
    one = s.advance([1], root)
    # one token in: its continuation gets the bonus; anything else (EOS too) takes back what the match collected
    assert row(s, one) == [-B, 0.0, B, -B, -B, -B, -B, -B]  # token 1 restarts the match: -B + B
    two = s.advance([1, 2], root)
    assert row(s, two)[3] == B and row(s, two)[EOS] == -2 * B
    done = s.advance([1, 2, 3], root)
    assert done[:2] == (0, 0.0)  # complete: back at the root, the bonus kept
    # what a finished hypothesis gained: 3 x B for a complete phrase; nothing for a partial one, or for none
    assert s.final_bonus([4, 1, 2, 3, 5]) == pytest.approx(3 * B)
    assert s.final_bonus([1, 2, 5, 6]) == pytest.approx(0.0)
    assert s.final_bonus([1, 2]) == pytest.approx(0.0)  # cut at the end: EOS takes it back
    assert s.final_bonus([4, 5, 6]) == 0.0


def test_phrases_sharing_a_prefix_and_a_phrase_inside_a_longer_one():
    s = scorer((1, 2), (1, 2, 3), (1, 4))
    assert s.trie.count == 3
    one = s.advance([1], s.init_state(None))
    assert row(s, one)[2] == B and row(s, one)[4] == B
    # (1, 2) is complete, and (1, 2, 3) goes on from it: the complete one's bonus is kept either way
    assert s.final_bonus([1, 2, 5]) == pytest.approx(2 * B)
    assert s.final_bonus([1, 2, 3]) == pytest.approx(3 * B)


def test_bad_lists_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no hotword"):
        HotwordTrie([[]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        HotwordScorer([[9]], VOCAB)
    (tmp_path / "empty").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no words"):
        read_hotwords(str(tmp_path / "empty"))
    (tmp_path / "latin").write_bytes("CAF\xc9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_hotwords(str(tmp_path / "latin"))
    (tmp_path / "list").write_text("THIRTEEN\nNOVEMBER  # a month\n\nthe  old man\nTHIRTEEN\n")
    assert read_hotwords(str(tmp_path / "list")) == ["THIRTEEN", "NOVEMBER", "the old man"]


def test_llm_tokens_of_a_phrase_first_and_after_a_space(tiny_llm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_dir)
    sequences = llm_hotword_sequences(tok, ["SEVEN"], lowercase=True)
    assert tok.decode(sequences[0]) == "seven" and tok.decode(sequences[1]) == " seven" and len(sequences) == 2


class Table(BatchScorerInterface):
    """Log-probs by the last token (a fixed bigram table): a stand-in acoustic + language score."""

    def __init__(self):
        torch.manual_seed(0)
        self.table = torch.log_softmax(2.0 * torch.randn(VOCAB, VOCAB), -1)

    def batch_init_state(self, x):
        return None

    def batch_score(self, ys, states, xs):
        return self.table[ys[:, -1]].to(xs.dtype), [None] * ys.shape[0]


def beam(hot=None):
    scorers = dict(decoder=Table(), length_bonus=LengthBonus(VOCAB))
    weights = dict(decoder=1.0, length_bonus=0.0)
    if hot is not None:
        scorers["hotword"], weights["hotword"] = hot, 1.0
    search = SettledBatchBeamSearch(scorers=scorers, weights=weights, beam_size=4, vocab_size=VOCAB, sos=EOS, eos=EOS,
                                    pre_beam_score_key="full")
    return search(x=torch.zeros(12, 2), maxlenratio=-10, minlenratio=0.0)


def test_biasing_brings_a_listed_phrase_in_and_leaves_a_hypothesis_without_one_as_it_was():
    plain = beam()[0].yseq.tolist()[1:-1]
    # a phrase the unbiased search does not produce: a big enough bonus makes the search produce it
    phrase = next((a, b) for a in range(VOCAB - 1) for b in range(VOCAB - 1)
                  if all(plain[i:i + 2] != [a, b] for i in range(len(plain))))
    biased = beam(HotwordScorer([list(phrase)], VOCAB, bonus=6.0))[0]
    y = biased.yseq.tolist()[1:-1]
    assert any(y[i:i + 2] == list(phrase) for i in range(len(y)))
    # a tiny bonus does not change the result, and a finished hypothesis without the phrase scores as before
    best, hot = beam()[0], beam(HotwordScorer([list(phrase)], VOCAB, bonus=1e-3))[0]
    assert hot.yseq.tolist() == best.yseq.tolist()
    assert float(hot.score) == pytest.approx(float(best.score), abs=1e-5)
    assert float(hot.scores["hotword"]) == pytest.approx(0.0, abs=1e-6)
