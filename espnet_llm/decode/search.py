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

A hotword bonus (espnet_llm.decode.hotwords) raises scores, so no stop is exact with one: a running hypothesis can
still gain the bonus of every phrase it may complete. Without a stop a biased search ran every utterance to its
length bound (AN4 test, beam 10 + CTC: about 16 s an utterance against 2 s unbiased), its beam refilled by
hypotheses that start phrase after phrase past the end of the speech. With a hotword scorer the search stops once
the n-best ended hypotheses outscore every running one by the bonus of one more phrase (the scorer's
`max_phrase_bonus` times its weight): exact for a hypothesis that completes at most one more listed phrase; it
cuts the ones that would need two or more to win.

Forced endings: at the length bound ESPnet appends EOS to every running hypothesis *without scoring it* (so that
something ends). Such a hypothesis never pays the end-of-sentence scores (the LLM's EOS probability, CTC's
whole-sequence probability), so when the scorers disagree (a weak CTC head, out-of-domain audio) a runaway that
repeats itself to the bound outscores every hypothesis that ended on its own: joint CTC decoding then produced
`... THIRTY SIX%||RUBOUT Z J H P SEVEN ...` on AN4. With `drop_forced_ends` (the default) a hypothesis ended by the
bound is kept only when none ended on its own; ESPnet's behaviour is `drop_forced_ends=False`.
"""
from typing import List

import torch
from espnet.nets.batch_beam_search import BatchBeamSearch, BatchHypothesis
from espnet.nets.beam_search import Hypothesis


class SettledBatchBeamSearch(BatchBeamSearch):
    """`BatchBeamSearch` (same arguments) that ends once `nbest` ended hypotheses outscore every running one."""

    def __init__(self, *args, nbest: int = 1, drop_forced_ends: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if nbest < 1:
            raise ValueError(f"nbest must be >= 1, got {nbest}")
        self.nbest = nbest
        self.drop_forced_ends = drop_forced_ends
        self.forced_ends = 0  # hypotheses ended by the length bound in the last search (kept or not)
        self.exact_stop = self.weights.get("length_bonus", 0.0) <= 0.0 and not self.normalize_length
        # a hotword bonus raises scores: the stop allows a running hypothesis one more listed phrase
        hotword = self.full_scorers.get("hotword") or self.part_scorers.get("hotword")
        self.stop_margin = (self.weights.get("hotword", 0.0) * float(getattr(hotword, "max_phrase_bonus", 0.0))
                            if hotword is not None else 0.0)
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
        if i == 0:
            self.forced_ends = 0
        if i == maxlen - 1:
            last = running_hyps.yseq[torch.arange(running_hyps.yseq.shape[0]), running_hyps.length - 1]
            forced = last != self.eos
            self.forced_ends = int(forced.sum())
            if self.drop_forced_ends and (ended_hyps or not bool(forced.all())):
                # something ended on its own (before or at this step): keep those, drop the runaways
                if i >= minlen:
                    ended_hyps.extend(self._select(running_hyps, b) for b in torch.nonzero(~forced).view(-1))
                return self._batch_select(running_hyps, [])
        running = super().post_process(i, maxlen, minlen, maxlenratio, running_hyps, ended_hyps)
        if self.exact_stop and len(running) > 0 and len(ended_hyps) >= self.nbest:
            kth_best = sorted((float(h.score) for h in ended_hyps), reverse=True)[self.nbest - 1]
            if kth_best >= float(running.score.max()) + self.stop_margin:
                return self._batch_select(running, [])  # no running hypothesis left: ESPnet's loop ends
        return running
