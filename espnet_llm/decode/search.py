"""ESPnet's BatchBeamSearch with an exact early stop, for searches whose scores never rise as a hypothesis grows.

ESPnet ends a search early only with `maxlenratio == 0` (its end detection, Watanabe et al. Eq. 50), which also
sets the length bound to the encoder length. The speech LLM's bound is `ceil(maxlenratio * T_enc) + offset`
(passed as a negative ratio), so ESPnet ran every utterance to that bound: on AN4 about 110 beam steps for a
7-token answer, each a 10-hypothesis LLM forward.

`SettledBatchBeamSearch` stops as soon as the result cannot change: every score it adds is a log-probability
(LLM, CTC prefix scores: log psi(g + c) - log psi(g) <= 0, the repetition stop: 0 or -inf) and so never raises a
hypothesis' score, as long as the length bonus weight is <= 0 and scores are not length-normalised. Once
`nbest` ended hypotheses score at least as high as the best running one, no running hypothesis can enter the
n-best, and the search returns what it would have returned at the bound. With a positive length bonus or length
normalisation the stop would not be exact, and it is off.
"""
from typing import List

from espnet.nets.batch_beam_search import BatchBeamSearch, BatchHypothesis
from espnet.nets.beam_search import Hypothesis


class SettledBatchBeamSearch(BatchBeamSearch):
    """`BatchBeamSearch` (same arguments) that ends once `nbest` ended hypotheses outscore every running one."""

    def __init__(self, *args, nbest: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        if nbest < 1:
            raise ValueError(f"nbest must be >= 1, got {nbest}")
        self.nbest = nbest
        self.exact_stop = self.weights.get("length_bonus", 0.0) <= 0.0 and not self.normalize_length
        self.steps = 0  # beam steps of the last search (for tests and benchmarks)

    def post_process(
        self,
        i: int,
        maxlen: int,
        minlen: int,
        maxlenratio: float,
        running_hyps: BatchHypothesis,
        ended_hyps: List[Hypothesis],
    ) -> BatchHypothesis:
        self.steps = i + 1
        running = super().post_process(i, maxlen, minlen, maxlenratio, running_hyps, ended_hyps)
        if self.exact_stop and len(running) > 0 and len(ended_hyps) >= self.nbest:
            kth_best = sorted((float(h.score) for h in ended_hyps), reverse=True)[self.nbest - 1]
            if kth_best >= float(running.score.max()):
                return self._batch_select(running, [])  # no running hypothesis left: ESPnet's loop ends
        return running
