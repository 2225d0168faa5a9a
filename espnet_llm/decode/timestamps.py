"""Word start and end times of a hypothesis: CTC segmentation on a CTC head's log-probabilities (`ctc-segmentation`).

The aligner is the `ctc-segmentation` package (Kürzinger et al. 2020, the one behind ESPnet's `asr_align`): each
word of the chosen hypothesis is one "utterance" of its `ctc_segmentation` / `determine_utterance_segments`, its
tokens are the head's units of the word, so every word gets a [start, end) in seconds and a confidence (the lowest
mean log-probability over windows of its frames). For the speech LLM the head's units are the LLM's own tokens
(`SubsetCTC`: the training transcripts' ids, blank and one "other" unit), so the hypothesis of any search can be
aligned on the audio it came from.

Output: NIST CTM lines `<utt> 1 <start> <duration> <word> <confidence>` (`ctm_lines`).
"""
from typing import List, NamedTuple, Sequence

import numpy as np


class WordTime(NamedTuple):
    word: str
    start: float
    end: float
    confidence: float


def align_words(log_probs: np.ndarray, words: Sequence[str], word_units: Sequence[Sequence[int]],
                frame_seconds: float, blank: int = 0) -> List[WordTime]:
    """CTC segmentation of `words` (each the unit ids `word_units[i]`) on (Frames, Units) CTC log-probabilities whose
    frames are `frame_seconds` apart. Raises ValueError when the words need more frames than there are."""
    from ctc_segmentation import (CtcSegmentationParameters, ctc_segmentation, determine_utterance_segments,
                                  prepare_token_list)

    if not words:
        return []
    if len(words) != len(word_units) or any(len(u) == 0 for u in word_units):
        raise ValueError("every word needs at least one CTC unit")
    config = CtcSegmentationParameters()
    config.index_duration = frame_seconds
    config.blank = blank
    config.char_list = [str(i) for i in range(log_probs.shape[1])]  # only names for the package's state list
    lpz = np.asarray(log_probs, dtype=np.float64)
    if sum(len(u) for u in word_units) > lpz.shape[0]:
        raise ValueError(f"{sum(len(u) for u in word_units)} CTC units cannot be aligned on {lpz.shape[0]} frames")
    ground_truth, utt_begin_indices = prepare_token_list(config, [np.asarray(u) for u in word_units])
    timings, char_probs, _ = ctc_segmentation(config, lpz, ground_truth)
    segments = determine_utterance_segments(config, utt_begin_indices, char_probs, timings, list(words))
    duration = lpz.shape[0] * frame_seconds
    out = []
    for word, (start, end, score) in zip(words, segments):
        start, end = max(0.0, float(start)), min(duration, float(end))
        out.append(WordTime(word, round(start, 3), round(max(end, start), 3), float(score)))
    return out


def ctm_lines(utt: str, times: Sequence[WordTime]) -> List[str]:
    """NIST CTM: `<utt> 1 <start> <duration> <word> <confidence>` (confidence: exp of the log score, in [0, 1])."""
    return [f"{utt} 1 {t.start:.3f} {t.end - t.start:.3f} {t.word} {min(1.0, float(np.exp(t.confidence))):.3f}"
            for t in times]
