"""N-best rescoring: the AM's N best hypotheses re-ranked with a text-only LLM.

    total = am_score + lm_weight * llm_score + length_bonus * n_words

`am_score` is the beam search's score of the hypothesis (the weighted decoder/CTC/length-bonus sum ESPnet
reports), `llm_score` the LLM's log-prob of the whole sentence with its own tokenizer, EOS included (the text
put in the case the LLM was fine-tuned on), `n_words` the number of words. Every term is kept so that the choice
can be checked and the weights tuned on a dev set.
"""

from typing import List, NamedTuple, Sequence, Tuple

from espnet_llm.decode.fusion import LLMTextScorer


class RescoredHypothesis(NamedTuple):
    text: str
    am_score: float
    llm_score: float
    n_words: int
    total: float


def rescore_nbest(
    nbest: Sequence[Tuple[str, float]], text_scorer: LLMTextScorer, lm_weight: float, length_bonus: float = 0.0
) -> List[RescoredHypothesis]:
    """(text, am_score) pairs -> RescoredHypothesis list, best (largest total) first; ties keep the AM's order."""
    if not nbest:
        raise ValueError("empty N-best list")
    rescored = []
    llm_scores = text_scorer.sentence_logps([text for text, _ in nbest])  # one batched LLM forward
    for (text, am_score), llm_score in zip(nbest, llm_scores):
        n_words = len(text.split())
        total = float(am_score) + lm_weight * llm_score + length_bonus * n_words
        rescored.append(RescoredHypothesis(text, float(am_score), llm_score, n_words, total))
    text_scorer.reset()
    return sorted(rescored, key=lambda h: -h.total)
