"""Hallucination guards of speech-LLM decoding: a repetition stop, and the CTC/LLM disagreement measure.

Repetition stop: a hypothesis whose last `n` tokens form an n-gram that now occurs more than `k` times in it
(overlaps counted) must end: the next token can only be EOS. Greedy search (`espnet_llm.decode.greedy`) and the
beam search (`RepetitionStop` as a scorer of weight 1) apply the same rule, so greedy equals a beam of 1. The
looping output keeps its k + 1 occurrences; the stop only keeps it from running to the length bound.

Fallback (`fallback_reason`): a 1-best that loops (some n-gram, n <= 4, more than k times), that ran to the length
bound, or that differs from the CTC best path by more than a word error rate threshold is decoded again, or
replaced by the CTC best path (Speech2TextLLM's `fallback`).

Disagreement: the word error rate of the LLM's hypothesis against the CTC head's greedy output (both from the
same encoder). A speech LLM that hallucinates or loops departs from what the audio's CTC path says.
"""

from itertools import groupby
from typing import List, Sequence, Tuple

import torch
from espnet.nets.scorer_interface import BatchScorerInterface


def repeats_too_often(tokens: Sequence[int], n: int, k: int) -> bool:
    """True if the last n-gram of `tokens` occurs more than k times in `tokens`."""
    if n < 1 or len(tokens) - n + 1 <= k:
        return False
    tokens = list(tokens)
    last = tokens[-n:]
    return sum(tokens[i : i + n] == last for i in range(len(tokens) - n + 1)) > k


class RepetitionStop(BatchScorerInterface):
    """0 for every token, except for a hypothesis that repeats too often: -inf for all tokens but EOS."""

    def __init__(self, n: int, k: int, eos: int, n_vocab: int):
        if n < 1 or k < 1:
            raise ValueError(f"repetition stop needs n >= 1 and k >= 1, got n={n}, k={k}")
        self.n, self.k, self.eos, self.n_vocab = n, k, eos, n_vocab

    def batch_init_state(self, x: torch.Tensor):
        return None

    def init_state(self, x: torch.Tensor):
        return None

    def batch_score(self, ys: torch.Tensor, states: List, xs: torch.Tensor) -> Tuple[torch.Tensor, List]:
        scores = torch.zeros(ys.shape[0], self.n_vocab, dtype=xs.dtype, device=xs.device)
        for i, y in enumerate(ys[:, 1:].tolist()):  # ys[:, 0] is the start marker
            if repeats_too_often(y, self.n, self.k):
                scores[i] = float("-inf")
                scores[i, self.eos] = 0.0
        return scores, [None] * ys.shape[0]

    def score(self, y: torch.Tensor, state, x: torch.Tensor):
        scores, _ = self.batch_score(y[None], [state], x[None])
        return scores[0], None


def ctc_greedy_ids(ctc_logits: torch.Tensor, blank: int = 0) -> List[int]:
    """(Time, Vocab) CTC activations -> best-path labels (repeats merged, blanks dropped)."""
    return [int(t) for t, _ in groupby(ctc_logits.argmax(-1).tolist()) if t != blank]


def word_error_rate(ref: str, hyp: str) -> float:
    """Levenshtein distance between the word sequences / number of reference words (case-insensitive).

    An empty reference gives 0.0 against an empty hypothesis and 1.0 (all insertions, capped) otherwise."""
    r, h = ref.lower().split(), hyp.lower().split()
    if not r:
        return 0.0 if not h else 1.0
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / len(r)


def loops(tokens: Sequence[int], k: int, max_n: int = 4) -> bool:
    """True if some n-gram (1 <= n <= max_n) occurs more than k times in `tokens` (overlaps counted)."""
    tokens = list(tokens)
    for n in range(1, max_n + 1):
        counts: dict = {}
        for i in range(len(tokens) - n + 1):
            gram = tuple(tokens[i : i + n])
            counts[gram] = counts.get(gram, 0) + 1
            if counts[gram] > k:
                return True
    return False


def fallback_reason(token_ids: Sequence[int], text: str, ctc_text: str, maxlen: int, threshold: float,
                    repeat: int) -> str:
    """Why a speech LLM 1-best should fall back to CTC ("loop", "length", "ctc_disagreement"), or "" if it should not.

    `maxlen` is the search's length bound in tokens (EOS included): a hypothesis of maxlen - 1 tokens or more had no
    room to end by itself."""
    if repeat > 0 and loops(token_ids, repeat):
        return "loop"
    if len(token_ids) >= maxlen - 1:
        return "length"
    if word_error_rate(ctc_text, text) > threshold:
        return "ctc_disagreement"
    return ""
