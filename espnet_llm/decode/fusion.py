"""Shallow fusion of a text-only LLM with the conventional acoustic model (AM), as scorers of ESPnet's beam search.

Two scorers, both used under the key `lm` with weight `lm_weight` beside the AM's `decoder`, `ctc` and `length_bonus`:

Label-wise fusion (`labelwise_scorer`), when the LLM's vocabulary IS the AM's token list (an LLM whose input and
output embeddings were re-initialised to the AM's BPE units and fine-tuned on BPE-tokenised transcripts, see
`espnet_llm.bin.llm_text_train --units am`). It is `LLMPrefixScorer` with a one-position prefix: the embedding of
the AM's `<sos/eos>` id, which that LLM was trained to read as its BOS. The LLM then scores every AM token, label by
label, with its KV cache as state.

Delayed fusion (`DelayedLLMScorer`; Hori et al., ICASSP 2025, arXiv 2501.09258), when the units differ. The
LLM's score is added only where a word is complete: a candidate AM token that starts a word (`▁...`) closes the
pending word, and EOS closes the pending word and the sentence. For each hypothesis the AM tokens are
detokenised, the completed words are tokenised with the LLM's own tokenizer, and the log-probability of the
LLM tokens not scored yet is added (plus the LLM's EOS log-prob at the AM's EOS). Every other candidate gets 0.
So, summed over a finished hypothesis, the LLM contributes exactly log P_LLM(words + EOS), the same total as
label-wise fusion when the units coincide; only the step at which the beam sees it is later (one AM token).

State of one hypothesis (`DelayedState`): `committed`, the LLM's state over the words completed so far, and
`advanced`, the state over those words plus the pending word (what `committed` becomes if the next token
starts a word). ESPnet hands a full scorer's state back without the chosen token, so the choice is resolved at
the next step from `ys[:, -1]`. An `LLMTextState` holds the LLM token ids scored so far, their total
log-prob, the KV cache and the next-token log-probs, so a step costs a forward over the pending word's few
LLM tokens only; states are memoised per utterance by text, so hypotheses that share the words share the work.

Tokenisation is assumed prefix-stable at word boundaries (the ids of "a b" start with the ids of "a"), which holds
for byte-level BPE and SentencePiece tokenizers with a pre-tokeniser that splits on spaces. Where it does not,
`LLMTextScorer.extend` keeps the common prefix of ids and rescores the rest, so the total stays exact.

Not done here: subtracting an internal-LM / label prior of the AM (RWTH found that it mattered for delayed fusion
with Qwen2, 6.57 -> 6.79 dev WER without it). With ESPnet's weights it would be one more full scorer with a
negative weight (a per-utterance label prior from the averaged CTC posteriors, for example); see docs/decoding.md.
Hypotheses cut by the beam search's length bound get no LLM score for their last word: ESPnet appends EOS to
them without scoring it.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from espnet.nets.scorer_interface import BatchScorerInterface
from transformers import DynamicCache

from espnet_llm.decode.llm_scorer import KVLayers, LLMPrefixScorer, cache_to_layers

WORD_START = "▁"  # SentencePiece's word-start marker, as in the AM's BPE token list
AM_SPECIAL = ("<blank>", "<unk>", "<sos/eos>")
TEXT_CASES = ("keep", "lower", "upper")


def labelwise_scorer(llm: torch.nn.Module, bos_id: int) -> LLMPrefixScorer:
    """`LLMPrefixScorer` over an LLM whose vocabulary is the AM's token list, after the one-position prefix `bos_id`."""
    embed = llm.get_input_embeddings()
    with torch.no_grad():
        prefix = embed(torch.tensor([bos_id], device=embed.weight.device))  # (1, Dim)
    return LLMPrefixScorer(llm, prefix)


def am_tokens_to_text(token_list: Sequence[str], ids: Sequence[int], case: str = "keep") -> str:
    """AM BPE token ids -> words ("▁ON E" -> "ONE"); <blank>, <unk> and <sos/eos> are dropped."""
    pieces = (token_list[i] for i in ids)
    text = " ".join("".join(p for p in pieces if p not in AM_SPECIAL).replace(WORD_START, " ").split())
    return change_case(text, case)


def change_case(text: str, case: str) -> str:
    if case not in TEXT_CASES:
        raise ValueError(f"text case must be one of {TEXT_CASES}, got {case!r}")
    return text.lower() if case == "lower" else text.upper() if case == "upper" else text


class LLMTextState(NamedTuple):
    """The LLM after `[BOS] + ids`: their summed log-prob, KV cache and the log-probs of the next token."""

    ids: Tuple[int, ...]
    total: float
    layers: Optional[KVLayers]
    next_logp: torch.Tensor  # (Vocab,)


class LLMTextScorer:
    """Log-probabilities of texts under a causal LM with its own tokenizer, extended word by word with a KV cache.

    Args:
        llm: Hugging Face causal LM, eval mode.
        tokenizer: its tokenizer.
        text_case: case the text is put in before tokenising ("lower" for an LLM fine-tuned on lower-cased text).
        bos_id, eos_id: default the tokenizer's BOS (or EOS when it has none) and EOS.
    """

    def __init__(self, llm, tokenizer, text_case: str = "lower", bos_id: Optional[int] = None, eos_id: Optional[int] = None):
        self.llm = llm
        self.tokenizer = tokenizer
        self.text_case = text_case
        change_case("", text_case)
        self.eos_id = eos_id if eos_id is not None else tokenizer.eos_token_id
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self.eos_id
        self.bos_id = bos_id if bos_id is not None else bos
        if self.eos_id is None:
            raise ValueError("the LLM's tokenizer has no EOS token: give eos_id")
        self.device = next(llm.parameters()).device
        self.memo: Dict[str, LLMTextState] = {}
        self._start: Optional[LLMTextState] = None

    def encode(self, text: str) -> Tuple[int, ...]:
        return tuple(self.tokenizer(change_case(text, self.text_case), add_special_tokens=False)["input_ids"])

    def _forward(self, ids: Sequence[int], layers: Optional[KVLayers]) -> Tuple[torch.Tensor, KVLayers]:
        """Log-probs (len(ids), Vocab) after each of `ids`, fed after the cache `layers`, and the new cache."""
        cache = DynamicCache(ddp_cache_data=layers) if layers is not None else DynamicCache()
        with torch.no_grad():
            out = self.llm(input_ids=torch.tensor([list(ids)], device=self.device), past_key_values=cache, use_cache=True)
        return torch.log_softmax(out.logits[0].float(), dim=-1), cache_to_layers(out.past_key_values)

    def start(self) -> LLMTextState:
        """The state after BOS (computed once)."""
        if self._start is None:
            logp, layers = self._forward([self.bos_id], None)
            self._start = LLMTextState((), 0.0, layers, logp[-1])
        return self._start

    def reset(self) -> None:
        """Forget the memoised texts (one utterance's worth)."""
        self.memo = {}

    def extend(self, state: LLMTextState, text: str) -> LLMTextState:
        """The state of `text`, computed from `state` (whose ids should be a prefix of the ids of `text`)."""
        text = " ".join(text.split())
        if text in self.memo:
            return self.memo[text]
        ids = self.encode(text)
        if ids[: len(state.ids)] != state.ids:  # tokenisation not prefix-stable here: restart from BOS
            state = self.start()
        new = ids[len(state.ids) :]
        if new:
            logp, layers = self._forward(new, state.layers)  # (len(new), Vocab)
            gained = float(state.next_logp[new[0]]) + sum(float(logp[i, t]) for i, t in enumerate(new[1:]))
            state = LLMTextState(ids, state.total + gained, layers, logp[-1])
        self.memo[text] = state
        return state

    def sentence_logp(self, text: str) -> float:
        """log P(tokens of `text`, EOS | BOS)."""
        state = self.extend(self.start(), text)
        return state.total + float(state.next_logp[self.eos_id])


class DelayedState(NamedTuple):
    committed: LLMTextState  # words completed before the hypothesis' last token
    advanced: LLMTextState  # those words plus the pending one: the state if the next token starts a word


class DelayedLLMScorer(BatchScorerInterface):
    """Delayed fusion: the LLM's log-prob of each word, added when the AM hypothesis completes it (module doc).

    Args:
        text_scorer: the LLM with its tokenizer.
        token_list: the AM's token list (BPE pieces with the `▁` word-start marker).
        eos: the AM's `<sos/eos>` id.
    """

    def __init__(self, text_scorer: LLMTextScorer, token_list: Sequence[str], eos: int):
        self.text_scorer = text_scorer
        self.token_list = list(token_list)
        self.eos = eos
        self.starts_word = torch.tensor([t.startswith(WORD_START) for t in self.token_list])  # (Vocab,)
        self.starts_word[eos] = False

    def batch_init_state(self, x: torch.Tensor) -> DelayedState:
        self.text_scorer.reset()
        start = self.text_scorer.start()
        return DelayedState(start, start)

    def init_state(self, x: torch.Tensor) -> DelayedState:
        return self.batch_init_state(x)

    def batch_score(
        self, ys: torch.Tensor, states: List[DelayedState], xs: torch.Tensor
    ) -> Tuple[torch.Tensor, List[DelayedState]]:
        """(Batch, Vocab) scores: the pending word's log-prob at word starts, plus the LLM's EOS at the AM's EOS."""
        scores = torch.zeros(ys.shape[0], len(self.token_list), dtype=xs.dtype, device=xs.device)
        new_states = []
        starts_word = self.starts_word.to(scores.device)
        for i, (y, state) in enumerate(zip(ys.tolist(), states)):
            closed = len(y) > 1 and bool(self.starts_word[y[-1]])
            committed = state.advanced if closed else state.committed
            advanced = self.text_scorer.extend(committed, am_tokens_to_text(self.token_list, y[1:]))
            word = advanced.total - committed.total
            scores[i, starts_word] = word
            scores[i, self.eos] = word + float(advanced.next_logp[self.text_scorer.eos_id])
            new_states.append(DelayedState(committed, advanced))
        return scores, new_states

    def score(self, y: torch.Tensor, state: DelayedState, x: torch.Tensor) -> Tuple[torch.Tensor, DelayedState]:
        scores, states = self.batch_score(y[None], [state], x[None])
        return scores[0], states[0]
