"""ESPnet's CTC prefix scores (the `ctc` partial scorer of joint CTC decoding) against a brute-force sum over alignments.

A 4-frame CTC output over {blank=0, labels 1..3, eos=4}: every one of the 5^4 alignments is enumerated and
collapsed (merge repeats, drop blanks). The prefix probability of a label sequence h is the mass of the
alignments whose collapsed output starts with h; the EOS score is the mass of those whose output is exactly h.
"""

import itertools
import math

import pytest
import torch
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet2.asr.ctc import CTC

BLANK, EOS, ODIM, FRAMES, DIM = 0, 4, 5, 4, 6


def collapse(alignment):
    out, prev = [], None
    for a in alignment:
        if a != prev and a != BLANK:
            out.append(a)
        prev = a
    return tuple(out)


def brute_force(logp):
    """(log prefix probability, log exact probability) of every label sequence, from all alignments."""
    prefix, exact = {}, {}
    for alignment in itertools.product(range(ODIM), repeat=FRAMES):
        p = math.exp(sum(float(logp[t, a]) for t, a in enumerate(alignment)))
        out = collapse(alignment)
        exact[out] = exact.get(out, 0.0) + p
        for n in range(len(out) + 1):
            prefix[out[:n]] = prefix.get(out[:n], 0.0) + p
    return prefix, exact


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    ctc = CTC(odim=ODIM, encoder_output_size=DIM).requires_grad_(False)
    with torch.no_grad():
        ctc.ctc_lo.weight.mul_(3.0)  # spread the posteriors so that no path dominates
    x = torch.randn(FRAMES, DIM)
    logp = ctc.log_softmax(x[None])[0].detach()
    prefix, exact = brute_force(logp)
    assert sum(exact.values()) == pytest.approx(1.0)
    return ctc, x, prefix, exact


@pytest.mark.parametrize("labels", [(1, 2, 3), (2, 2), (3, 1, 3, 1), (1,)])
@pytest.mark.parametrize("pre_beam", [False, True])
def test_batched_ctc_prefix_scores_equal_brute_force(case, labels, pre_beam):
    """CTCPrefixScorer (batched, as BatchBeamSearch calls it) step by step along `labels`, full or pre-beam ids."""
    ctc, x, prefix, exact = case
    scorer = CTCPrefixScorer(ctc=ctc, eos=EOS)
    state = scorer.batch_init_state(x)
    ys = torch.tensor([[EOS]])  # sos = eos, as in ESPnet
    total = 0.0
    for n, label in enumerate(labels + (EOS,)):
        ids = torch.tensor([[label, (label % 3) + 1, EOS]]) if pre_beam else None
        scores, new_state = scorer.batch_score_partial(ys, ids, [state], x[None])
        scores = scores[0]
        h = tuple(labels[:n])
        for c in range(1, 4):  # every label in the pre-beam (all of them without pre-beam)
            if (ids is None or c in ids[0].tolist()) and h + (c,) in prefix:
                want = math.log(prefix[h + (c,)]) - math.log(prefix[h])
                assert float(scores[c]) == pytest.approx(want, abs=1e-4)
        assert float(scores[EOS]) == pytest.approx(math.log(exact[h]) - math.log(prefix[h]), abs=1e-4)
        total += float(scores[label])
        if label != EOS:
            assert total == pytest.approx(math.log(prefix[h + (label,)]), abs=1e-4)
            state = scorer.select_state(new_state, 0, label)
            ys = torch.cat([ys, torch.tensor([[label]])], dim=1)
    assert total == pytest.approx(math.log(exact[labels]), abs=1e-4)


def test_non_batched_ctc_prefix_scores_equal_brute_force(case):
    """The numpy CTCPrefixScore path (ESPnet's plain BeamSearch) agrees with the same brute force."""
    ctc, x, prefix, exact = case
    scorer = CTCPrefixScorer(ctc=ctc, eos=EOS)
    state = scorer.init_state(x)
    y = torch.tensor([EOS])
    labels = (3, 3, 1)
    ids = torch.tensor([1, 2, 3, EOS])
    total = 0.0
    for n, label in enumerate(labels + (EOS,)):
        scores, states = scorer.score_partial(y, ids, state, x)
        pos = ids.tolist().index(label)
        total += float(scores[pos])
        h = tuple(labels[: n + 1]) if label != EOS else labels
        want = math.log(prefix[h]) if label != EOS else math.log(exact[labels])
        assert total == pytest.approx(want, abs=1e-4)
        state = scorer.select_state(states, pos)
        y = torch.cat([y, torch.tensor([label])])


def test_impossible_prefix_is_pruned(case):
    """Five labels cannot come out of four frames: ESPnet gives them (almost) zero probability."""
    ctc, x, prefix, _ = case
    assert (1, 2, 3, 1, 2) not in prefix
    scorer = CTCPrefixScorer(ctc=ctc, eos=EOS)
    state = scorer.batch_init_state(x)
    ys = torch.tensor([[EOS]])
    total = 0.0
    for label in (1, 2, 1, 2, 1):
        scores, new_state = scorer.batch_score_partial(ys, None, [state], x[None])
        total += float(scores[0, label])
        state = scorer.select_state(new_state, 0, label)
        ys = torch.cat([ys, torch.tensor([[label]])], dim=1)
    assert total < -1e5
