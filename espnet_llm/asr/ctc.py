"""SubsetCTC: a CTC head over the part of the LLM vocabulary that the training transcripts use.

A CTC head over a 49k-token LLM vocabulary is costly: on AN4 with Whisper tiny.en (20 ms frames) its output layer
and softmax made a LoRA training step 1.8x slower (4.73 s against 2.62 s for 8 utterances, bench/bench_train.py),
and after a few hundred steps it is still undertrained (its greedy output
loops, so joint decoding hurt). A transcript corpus uses a few hundred of those tokens. ``SubsetCTC`` predicts
``K = 2 + len(token_ids)`` units:

    unit 0            blank (LLM id 0, as in ESPnet's CTC over the full vocabulary)
    unit 1            "other": every LLM id outside the subset, as one class
    unit 2 + i        LLM id ``token_ids[i]``

Training maps each target id to its unit (ids outside the subset to "other"). Decoding sees the full vocabulary:
``log_softmax`` returns (Batch, T, V) log-probabilities, the "other" mass split evenly over the ids outside the
subset, so ESPnet's ``CTCPrefixScorer`` and any code written for ``CTC`` work unchanged and the distribution
still sums to one.
"""
import math
from pathlib import Path
from typing import Sequence, Union

import torch
from espnet2.asr.ctc import CTC

BLANK_UNIT, OTHER_UNIT = 0, 1


def read_token_ids(path: Union[str, Path]) -> list:
    """LLM token ids from a file with one integer per line (``espnet_llm.bin.llm_ctc_vocab`` writes it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CTC vocabulary file '{path}' does not exist (make it with espnet_llm.bin.llm_ctc_vocab)")
    ids = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            ids.append(int(line.split()[0]))
        except ValueError:
            raise ValueError(f"{path}:{n}: expected an LLM token id, got {line!r}") from None
    if not ids:
        raise ValueError(f"CTC vocabulary file '{path}' lists no token ids")
    return ids


class SubsetCTC(CTC):
    """ESPnet CTC whose output units are blank, "other" and ``token_ids`` of an LLM vocabulary of ``vocab_size``."""

    def __init__(self, vocab_size: int, token_ids: Sequence[int], encoder_output_size: int, **ctc_conf):
        ids = sorted({int(i) for i in token_ids} - {0})  # id 0 is the blank
        bad = [i for i in ids if not 0 < i < vocab_size]
        if bad:
            raise ValueError(f"CTC vocabulary ids {bad[:5]} are outside the LLM vocabulary of {vocab_size}")
        if len(ids) >= vocab_size - 1:
            raise ValueError("the CTC vocabulary covers the whole LLM vocabulary: use the plain CTC head")
        super().__init__(odim=len(ids) + 2, encoder_output_size=encoder_output_size, **ctc_conf)
        self.vocab_size = vocab_size
        unit_of_id = torch.full((vocab_size,), OTHER_UNIT, dtype=torch.long)
        unit_of_id[0] = BLANK_UNIT
        unit_of_id[torch.tensor(ids, dtype=torch.long)] = torch.arange(2, len(ids) + 2)
        # Buffers are not saved (persistent=False): they follow from the vocabulary file, rebuilt with the model
        self.register_buffer("unit_of_id", unit_of_id, persistent=False)
        self.register_buffer("token_ids", torch.tensor(ids, dtype=torch.long), persistent=False)
        # log of how many LLM ids share the "other" unit: its log-prob is split evenly over them
        self.log_n_other = math.log(vocab_size - len(ids) - 1)

    def to_units(self, ys_pad: torch.Tensor) -> torch.Tensor:
        """LLM ids (Batch, L), padded with -1 -> CTC units, padding kept."""
        return torch.where(ys_pad >= 0, self.unit_of_id[ys_pad.clamp(min=0)], ys_pad)

    def forward(self, hs_pad, hlens, ys_pad, ys_lens):
        """CTC loss of encoder output (Batch, T, D) against LLM ids (Batch, L) padded with -1."""
        return super().forward(hs_pad, hlens, self.to_units(ys_pad), ys_lens)

    def unit_log_softmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        """(Batch, T, D) -> (Batch, T, K) log-probabilities over the CTC units."""
        return torch.log_softmax(self.ctc_lo(hs_pad), dim=-1)

    def log_softmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        """(Batch, T, D) -> (Batch, T, V) log-probabilities over the LLM vocabulary (a proper distribution)."""
        units = self.unit_log_softmax(hs_pad)
        units = torch.cat([units[..., :1], units[..., 1:2] - self.log_n_other, units[..., 2:]], dim=-1)
        return units[..., self.unit_of_id]

    def softmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        return self.log_softmax(hs_pad).exp()

    def argmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        """(Batch, T, D) -> (Batch, T) LLM ids of the most likely vocabulary entry per frame."""
        return self.log_softmax(hs_pad).argmax(dim=-1)


def remap_head(weight: torch.Tensor, bias: torch.Tensor, old_ids: Sequence[int], new_ids: Sequence[int],
               vocab_size: int):
    """Move a trained ``SubsetCTC`` output layer from the vocabulary ``old_ids`` onto ``new_ids``.

    ``weight`` (2 + len(old_ids), D) and ``bias`` (2 + len(old_ids),) are ``ctc_lo``'s. Blank and the ids of both
    vocabularies keep their rows. An id new to the subset was part of "other" before: its row is "other"'s, its
    bias lowered by log(number of ids "other" covered), so it starts with the log-probability it had. The new
    "other" row keeps that per-id log-probability for the ids it now covers. When ``new_ids`` contains ``old_ids``
    the distribution over the LLM vocabulary (``SubsetCTC.log_softmax``) is unchanged; ids dropped from the subset
    give their mass up to "other" at its per-id rate. Returns ``(weight, bias)`` of shape (2 + len(new_ids), ...).
    """
    old = sorted({int(i) for i in old_ids} - {0})
    new = sorted({int(i) for i in new_ids} - {0})
    if weight.shape[0] != len(old) + 2 or bias.shape[0] != len(old) + 2:
        raise ValueError(f"the CTC output layer has {weight.shape[0]} units, the old vocabulary gives "
                         f"{len(old) + 2} (2 + {len(old)} ids): is it the vocabulary this model was trained with?")
    bad = [i for i in new if not 0 < i < vocab_size]
    if bad:
        raise ValueError(f"CTC vocabulary ids {bad[:5]} are outside the LLM vocabulary of {vocab_size}")
    unit_of_old = {i: u for u, i in enumerate(old, 2)}
    log_n_old = math.log(vocab_size - len(old) - 1)
    log_n_new = math.log(vocab_size - len(new) - 1)
    rows = [BLANK_UNIT, OTHER_UNIT] + [unit_of_old.get(i, OTHER_UNIT) for i in new]
    new_weight = weight[rows].clone()
    new_bias = bias[rows].clone()
    is_new = torch.tensor([False, False] + [i not in unit_of_old for i in new])
    new_bias[is_new] -= log_n_old                   # one id of the old "other" class
    new_bias[OTHER_UNIT] += log_n_new - log_n_old   # the same per-id rate over the ids "other" covers now
    return new_weight, new_bias
