"""SubsetCTC: a CTC head over the LLM ids of the training transcripts, seen by decoding as a full-vocabulary CTC."""
import itertools
import math

import pytest
import torch
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet2.asr.ctc import CTC

from espnet_llm.asr.ctc import SubsetCTC, read_token_ids, remap_head

VOCAB, DIM = 10, 6
SUBSET = [3, 5, 7]  # units: 0 blank, 1 other, 2 -> id 3, 3 -> id 5, 4 -> id 7


@pytest.fixture()
def ctc():
    torch.manual_seed(0)
    ctc = SubsetCTC(VOCAB, SUBSET, DIM)
    with torch.no_grad():
        ctc.ctc_lo.weight.mul_(3.0)
    return ctc


def test_units_are_blank_other_and_the_subset(ctc):
    assert ctc.ctc_lo.out_features == len(SUBSET) + 2
    ys = torch.tensor([[3, 7, 9, -1], [5, 1, -1, -1]])
    assert ctc.to_units(ys).tolist() == [[2, 4, 1, -1], [3, 1, -1, -1]]


def test_full_vocabulary_log_probs_are_a_distribution_that_splits_other_evenly(ctc):
    x = torch.randn(2, 4, DIM)
    full = ctc.log_softmax(x)  # (Batch, T, V)
    units = ctc.unit_log_softmax(x)  # (Batch, T, K)
    assert full.shape == (2, 4, VOCAB)
    assert torch.allclose(full.logsumexp(-1), torch.zeros(2, 4), atol=1e-5)
    for unit, token in enumerate(SUBSET, 2):
        assert torch.allclose(full[..., token], units[..., unit])
    assert torch.allclose(full[..., 0], units[..., 0])  # blank
    n_other = VOCAB - len(SUBSET) - 1
    for token in set(range(1, VOCAB)) - set(SUBSET):
        assert torch.allclose(full[..., token], units[..., 1] - math.log(n_other))
    assert torch.equal(ctc.argmax(x), full.argmax(-1))


def test_loss_is_espnet_ctc_over_the_units(ctc):
    x = torch.randn(2, 8, DIM)
    hlens = torch.tensor([8, 6])
    ys = torch.tensor([[3, 7, 9], [5, -1, -1]])
    ylens = torch.tensor([3, 1])
    plain = CTC(odim=len(SUBSET) + 2, encoder_output_size=DIM)
    plain.load_state_dict(ctc.state_dict())
    expected = plain(x, hlens, torch.tensor([[2, 4, 1], [3, -1, -1]]), ylens)
    assert torch.allclose(ctc(x, hlens, ys, ylens), expected)
    assert set(ctc.state_dict()) == {"ctc_lo.weight", "ctc_lo.bias"}  # the id map follows from the vocabulary file


def test_prefix_scores_over_the_full_vocabulary_equal_brute_force(ctc):
    """ESPnet's CTCPrefixScorer on SubsetCTC: the prefix score of a label sequence is the mass of the alignments
    (over the full vocabulary's log-probs) whose collapsed output starts with it."""
    frames, eos = 3, 9
    x = torch.randn(frames, DIM)
    logp = ctc.log_softmax(x[None])[0].detach()
    prefix = {}
    for alignment in itertools.product(range(VOCAB), repeat=frames):
        out, prev = [], None
        for a in alignment:
            if a != prev and a != 0:
                out.append(a)
            prev = a
        p = math.exp(sum(float(logp[t, a]) for t, a in enumerate(alignment)))
        for n in range(len(out) + 1):
            prefix[tuple(out[:n])] = prefix.get(tuple(out[:n]), 0.0) + p
    scorer = CTCPrefixScorer(ctc=ctc, eos=eos)
    state = scorer.batch_init_state(x)
    ys, total = torch.tensor([[eos]]), 0.0
    for n, label in enumerate([3, 8, 3], 1):  # in, out of, in the subset
        scores, state = scorer.batch_score_partial(ys, None, [state], x[None])
        total += float(scores[0, label])
        assert total == pytest.approx(math.log(prefix[(3, 8, 3)[:n]]), abs=1e-4)
        ys = torch.cat([ys, torch.tensor([[label]])], dim=1)
        state = scorer.select_state(state, 0, label)


def test_bad_vocabularies_are_refused(tmp_path):
    with pytest.raises(ValueError, match="outside the LLM vocabulary"):
        SubsetCTC(VOCAB, [3, 10], DIM)
    with pytest.raises(ValueError, match="whole LLM vocabulary"):
        SubsetCTC(VOCAB, range(1, VOCAB), DIM)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_token_ids(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("3 a\nx b\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        read_token_ids(bad)
    good = tmp_path / "good.txt"
    good.write_text("3 a\n\n7 c\n")
    assert read_token_ids(good) == [3, 7]


def _remapped(ctc, new_ids):
    new = SubsetCTC(VOCAB, new_ids, DIM)
    weight, bias = remap_head(ctc.ctc_lo.weight.data, ctc.ctc_lo.bias.data, SUBSET, new_ids, VOCAB)
    new.ctc_lo.load_state_dict({"weight": weight, "bias": bias})
    return new


def test_remap_onto_a_larger_vocabulary_keeps_the_distribution_over_the_llm_vocabulary(ctc):
    x = torch.randn(2, 4, DIM)
    new = _remapped(ctc, [2, 3, 5, 7, 8])  # ids 2 and 8 were "other"
    assert new.ctc_lo.out_features == 7
    assert torch.allclose(new.log_softmax(x), ctc.log_softmax(x), atol=1e-5)


def test_remap_dropping_ids_moves_their_mass_to_other_at_its_per_id_rate(ctc):
    x = torch.randn(2, 4, DIM)
    old, new = ctc.log_softmax(x), _remapped(ctc, [5, 8]).log_softmax(x)  # 3 and 7 dropped, 8 added
    assert torch.allclose(new.logsumexp(-1), torch.zeros(2, 4), atol=1e-5)
    # kept and added ids, blank and the old "other" ids keep their scores relative to each other
    for a, b in [(5, 0), (8, 9), (5, 8)]:
        assert torch.allclose(new[..., a] - new[..., b], old[..., a] - old[..., b], atol=1e-5)
    # a dropped id now scores as one "other" id
    assert torch.allclose(new[..., 3], new[..., 9], atol=1e-6) and torch.allclose(new[..., 7], new[..., 9], atol=1e-6)


def test_remap_refuses_a_head_of_another_vocabulary(ctc):
    with pytest.raises(ValueError, match="5 units, the old vocabulary gives 4"):
        remap_head(ctc.ctc_lo.weight.data, ctc.ctc_lo.bias.data, [3, 5], [3, 5, 7], VOCAB)
    with pytest.raises(ValueError, match="outside the LLM vocabulary"):
        remap_head(ctc.ctc_lo.weight.data, ctc.ctc_lo.bias.data, SUBSET, [3, 12], VOCAB)
