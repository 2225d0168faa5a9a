"""SettledBatchBeamSearch: ESPnet's BatchBeamSearch that stops once the n-best cannot change, with the same result."""
import pytest
import torch
from espnet.nets.batch_beam_search import BatchBeamSearch
from espnet.nets.scorer_interface import BatchScorerInterface
from espnet.nets.scorers.length_bonus import LengthBonus

from espnet_llm.decode.search import SettledBatchBeamSearch

VOCAB, EOS = 6, 5


class TableScorer(BatchScorerInterface):
    """Log-probs that depend on the last token (a bigram table), so hypotheses differ and keep running."""

    def __init__(self, seed):
        torch.manual_seed(seed)
        self.table = torch.log_softmax(2.0 * torch.randn(VOCAB, VOCAB), -1)
        self.table[:, 0] = -1e4  # no blank

    def batch_init_state(self, x):
        return None

    def init_state(self, x):
        return None

    def batch_score(self, ys, states, xs):
        return self.table[ys[:, -1]].to(xs.dtype), [None] * ys.shape[0]


def search(cls, seed, penalty=0.0, normalize_length=False, **kw):
    scorers = dict(decoder=TableScorer(seed), length_bonus=LengthBonus(VOCAB))
    beam = cls(scorers=scorers, weights=dict(decoder=1.0, length_bonus=penalty), beam_size=4, vocab_size=VOCAB,
               sos=EOS, eos=EOS, pre_beam_score_key="full", normalize_length=normalize_length, **kw)
    return beam, beam(x=torch.zeros(40, 2), maxlenratio=-30, minlenratio=0.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("nbest", [1, 3])
def test_same_nbest_as_espnet_in_fewer_steps(seed, nbest):
    _, plain = search(BatchBeamSearch, seed)
    settled, ours = search(SettledBatchBeamSearch, seed, nbest=nbest, drop_forced_ends=False)
    for a, b in zip(plain[:nbest], ours[:nbest]):
        assert a.yseq.tolist() == b.yseq.tolist() and float(a.score) == pytest.approx(float(b.score))
    assert settled.exact_stop and settled.steps <= 30  # ESPnet runs all 30 steps to the bound


def test_stops_early_on_a_clear_winner():
    settled, _ = search(SettledBatchBeamSearch, 0)
    settled.full_scorers["decoder"].table[:, EOS] = 0.0  # EOS is certain: the first ended hypothesis settles it
    ours = settled(x=torch.zeros(40, 2), maxlenratio=-30)
    assert settled.steps == 1 and ours[0].yseq.tolist() == [EOS, EOS]


@pytest.mark.parametrize("kw", [dict(penalty=0.5), dict(normalize_length=True)])
def test_not_exact_stop_is_off(kw):
    settled, _ = search(SettledBatchBeamSearch, 0, **kw)
    assert not settled.exact_stop and settled.steps == 30


class EndsEarlyOrNever(BatchScorerInterface):
    """EOS is possible only as the first token (log-prob -3); token 1 costs 0.05 a step, so a hypothesis that runs
    on to a bound of 30 (-1.5) outscores the one that ended, as long as its own end is not scored."""

    def batch_init_state(self, x):
        return None

    def init_state(self, x):
        return None

    def batch_score(self, ys, states, xs):
        scores = torch.full((ys.shape[0], VOCAB), -10.0)
        scores[:, 1] = -0.05
        scores[:, EOS] = -3.0 if ys.shape[1] == 1 else float("-inf")
        return scores.to(xs.dtype), [None] * ys.shape[0]


def bound_search(**kw):
    beam = SettledBatchBeamSearch(scorers=dict(decoder=EndsEarlyOrNever()), weights=dict(decoder=1.0), beam_size=4,
                                  vocab_size=VOCAB, sos=EOS, eos=EOS, pre_beam_score_key="full", **kw)
    return beam, beam(x=torch.zeros(40, 2), maxlenratio=-30, minlenratio=0.0)


def test_runaways_ended_by_the_bound_lose_to_a_hypothesis_that_ended():
    espnet_like, plain = bound_search(drop_forced_ends=False)
    assert len(plain[0].yseq) == 30 + 2 and espnet_like.forced_ends > 0  # sos + 30 tokens + the unscored EOS
    assert float(plain[0].score) == pytest.approx(-1.5)
    settled, ours = bound_search()
    assert ours[0].yseq.tolist() == [EOS, EOS] and float(ours[0].score) == pytest.approx(-3.0)
    assert settled.forced_ends > 0 and all(len(h.yseq) == 2 for h in ours)


def test_forced_ends_are_kept_when_nothing_ended():
    settled, _ = search(SettledBatchBeamSearch, 0)
    settled.full_scorers["decoder"].table[:, EOS] = float("-inf")  # nothing can end on its own
    ours = settled(x=torch.zeros(40, 2), maxlenratio=-30)
    assert ours and len(ours[0].yseq) == 30 + 2 and settled.forced_ends > 0


class EndsOnlyAtTheBound(EndsEarlyOrNever):
    """EOS is possible (and likely) only as the last token the bound allows."""

    def batch_score(self, ys, states, xs):
        scores = torch.full((ys.shape[0], VOCAB), -10.0)
        scores[:, 1] = -0.05
        scores[:, EOS] = -0.01 if ys.shape[1] == 30 else float("-inf")
        return scores.to(xs.dtype), [None] * ys.shape[0]


def test_a_hypothesis_ending_on_its_own_at_the_last_step_is_kept_once():
    beam = SettledBatchBeamSearch(scorers=dict(decoder=EndsOnlyAtTheBound()), weights=dict(decoder=1.0),
                                  beam_size=4, vocab_size=VOCAB, sos=EOS, eos=EOS, pre_beam_score_key="full")
    hyps = beam(x=torch.zeros(40, 2), maxlenratio=-30, minlenratio=0.0)
    best = hyps[0].yseq.tolist()
    assert best[-1] == EOS and best[-2] != EOS and len(best) == 31  # sos + 29 tokens + its own EOS, not a second
    assert beam.forced_ends < 4  # the beam's ended hypotheses were not all forced


@pytest.mark.parametrize("seed", range(6))
def test_hotword_bonus_stops_early_allowing_one_more_phrase(seed):
    """A hotword bonus raises scores: the stop waits for a margin of one more phrase's bonus and, on these tables,
    returns ESPnet's 1-best of the search run to its bound."""
    from espnet_llm.decode.hotwords import HotwordScorer

    def run(cls, **kw):
        scorers = dict(decoder=TableScorer(seed), hotword=HotwordScorer([[1, 2], [3, 1, 4]], VOCAB, bonus=0.5))
        beam = cls(scorers=scorers, weights=dict(decoder=1.0, hotword=1.0), beam_size=4, vocab_size=VOCAB,
                   sos=EOS, eos=EOS, pre_beam_score_key="full", **kw)
        return beam, beam(x=torch.zeros(40, 2), maxlenratio=-30, minlenratio=0.0)

    _, plain = run(BatchBeamSearch)
    settled, ours = run(SettledBatchBeamSearch, drop_forced_ends=False)
    assert settled.exact_stop and settled.stop_margin == pytest.approx(1.5)  # bonus 0.5 x the 3-token phrase
    assert ours[0].yseq.tolist() == plain[0].yseq.tolist()
    assert settled.steps < 30
