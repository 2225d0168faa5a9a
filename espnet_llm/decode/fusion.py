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
LLM tokens only, and the hypotheses of a beam step are extended in ONE batched forward (`extend_batch`: caches
left-padded, an attention mask and explicit positions); states are memoised per utterance by text, so hypotheses
that share the words share the work.

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
    """The LLM after `[BOS] + ids`: the log-prob of each id, the KV cache and the log-probs of the next token."""

    ids: Tuple[int, ...]
    token_logps: Tuple[float, ...]  # log P(ids[i] | BOS, ids[:i]) for each i
    layers: KVLayers  # this text's own cache: per layer (keys, values), each (1, Heads, 1 + len(ids), HeadDim)
    next_logp: torch.Tensor  # (Vocab,)

    @property
    def total(self) -> float:
        return sum(self.token_logps)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class LLMTextScorer:
    """Log-probabilities of texts under a causal LM with its own tokenizer, extended word by word with a KV cache.

    `extend_batch` extends many texts in ONE forward: the caches, of different lengths, are left-padded to the
    longest and the new tokens right-padded, with an attention mask and explicit positions (as in batched
    generation), and each text keeps the unpadded slice of the new cache. On a CPU a forward over a few tokens
    is bound by reading the weights, so one batched forward per beam step costs about what one hypothesis did.
    When a text's ids are not an extension of its base state's ids (a growing partial word re-tokenised: "on" ->
    "one"), the base's cache is cut at the common prefix and the last common token is fed again, so the step
    still feeds only a few tokens.

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
        self.n_forwards = 0  # batched forwards run so far (tests check the batching with it)

    def encode(self, text: str) -> Tuple[int, ...]:
        return tuple(self.tokenizer(change_case(text, self.text_case), add_special_tokens=False)["input_ids"])

    def _forward_batch(
        self, feeds: Sequence[Sequence[int]], pasts: Sequence[Optional[KVLayers]]
    ) -> Tuple[torch.Tensor, List[KVLayers]]:
        """Feed `feeds[i]` (>= 1 ids) after cache `pasts[i]` (None: nothing before) for every i in one forward.

        Returns log-probs (Batch, max len(feeds), Vocab) after each fed id (rows right-padded), and each row's
        own unpadded cache (past + fed)."""
        n = len(feeds)
        past_lens = [0 if p is None else p[0][0].shape[2] for p in pasts]
        feed_lens = [len(ids) for ids in feeds]
        p_max, t_max = max(past_lens), max(feed_lens)
        input_ids = torch.full((n, t_max), self.bos_id, dtype=torch.long)
        mask = torch.zeros(n, p_max + t_max, dtype=torch.long)
        positions = torch.zeros(n, t_max, dtype=torch.long)
        for i, (ids, lp, ln) in enumerate(zip(feeds, past_lens, feed_lens)):
            input_ids[i, :ln] = torch.tensor(list(ids))
            mask[i, p_max - lp : p_max + ln] = 1
            positions[i] = lp + torch.arange(t_max)
        cache = DynamicCache()
        if p_max > 0:
            ref = next(p for p in pasts if p is not None)
            layers = []
            for layer, (k_ref, _) in enumerate(ref):
                keys = k_ref.new_zeros(n, k_ref.shape[1], p_max, k_ref.shape[3])
                values = keys.clone()
                for i, (past, lp) in enumerate(zip(pasts, past_lens)):
                    if lp:
                        keys[i, :, p_max - lp :] = past[layer][0][0]
                        values[i, :, p_max - lp :] = past[layer][1][0]
                layers.append((keys, values))
            cache = DynamicCache(ddp_cache_data=tuple(layers))
        with torch.no_grad():
            out = self.llm(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                past_key_values=cache,
                use_cache=True,
            )
        self.n_forwards += 1
        logp = torch.log_softmax(out.logits.float(), dim=-1)  # (Batch, t_max, Vocab)
        full = cache_to_layers(out.past_key_values)  # (Batch, Heads, p_max + t_max, HeadDim) per layer
        rows = [
            tuple((k[i : i + 1, :, p_max - lp : p_max + ln], v[i : i + 1, :, p_max - lp : p_max + ln]) for k, v in full)
            for i, (lp, ln) in enumerate(zip(past_lens, feed_lens))
        ]
        return logp, rows

    def start(self) -> LLMTextState:
        """The state after BOS (computed once)."""
        if self._start is None:
            logp, rows = self._forward_batch([[self.bos_id]], [None])
            self._start = LLMTextState((), (), rows[0], logp[0, -1])
        return self._start

    def reset(self) -> None:
        """Forget the memoised texts (one utterance's worth)."""
        self.memo = {}

    def extend(self, state: LLMTextState, text: str) -> LLMTextState:
        """The state of `text`, computed from `state` (whose ids should be a prefix of the ids of `text`)."""
        return self.extend_batch([state], [text])[0]

    def extend_batch(self, states: Sequence[LLMTextState], texts: Sequence[str]) -> List[LLMTextState]:
        """`extend(states[i], texts[i])` for every i, with one LLM forward for all texts not memoised yet."""
        texts = [" ".join(t.split()) for t in texts]
        todo: Dict[str, Tuple[LLMTextState, Tuple[int, ...], int]] = {}  # text -> (base, ids, k = ids kept)
        for state, text in zip(states, texts):
            if text in self.memo or text in todo:
                continue
            ids = self.encode(text)
            k = common_prefix(state.ids, ids)
            if k == len(ids) == len(state.ids):
                self.memo[text] = state
            else:
                todo[text] = (state, ids, k)
        if todo:
            feeds, pasts = [], []
            for base, ids, k in todo.values():
                if k == len(base.ids):  # extension: feed the new ids after the whole cache
                    feeds.append(ids[k:])
                    pasts.append(base.layers)
                else:  # re-tokenised (or cut short): feed the last kept token (or BOS) again after the cache before it
                    feeds.append(((ids[k - 1],) if k else (self.bos_id,)) + ids[k:])
                    pasts.append(self._cut_layers(base.layers, k) if k else None)
            logp, rows = self._forward_batch(feeds, pasts)
            for i, (text, (base, ids, k)) in enumerate(zip(todo, todo.values())):
                new = ids[k:]
                if k == len(base.ids):
                    firsts = [float(base.next_logp[new[0]])] + [float(logp[i, j, t]) for j, t in enumerate(new[1:])]
                else:
                    firsts = [float(logp[i, j, t]) for j, t in enumerate(new)]
                token_logps = base.token_logps[:k] + tuple(firsts)
                self.memo[text] = LLMTextState(ids, token_logps, rows[i], logp[i, len(feeds[i]) - 1])
        return [self.memo[text] for text in texts]

    @staticmethod
    def _cut_layers(layers: KVLayers, k: int) -> KVLayers:
        """The cache of BOS + the first k - 1 ids (the last kept id is fed again)."""
        return tuple((key[:, :, :k], value[:, :, :k]) for key, value in layers)

    def sentence_logp(self, text: str) -> float:
        """log P(tokens of `text`, EOS | BOS)."""
        state = self.extend(self.start(), text)
        return state.total + float(state.next_logp[self.eos_id])

    def sentence_logps(self, texts: Sequence[str]) -> List[float]:
        """`sentence_logp` of each text, in one batched forward (N-best rescoring)."""
        start = self.start()
        states = self.extend_batch([start] * len(texts), texts)
        return [s.total + float(s.next_logp[self.eos_id]) for s in states]


class DelayedState(NamedTuple):
    committed: LLMTextState  # words completed before the hypothesis' last token
    advanced: LLMTextState  # those words plus the pending one: the state if the next token starts a word


class DelayedLLMScorer(BatchScorerInterface):
    """Delayed fusion: the LLM's log-prob of each word, added when the AM hypothesis completes it (module doc).

    Args:
        text_scorer: the LLM with its tokenizer.
        token_list: the AM's token list (BPE pieces with the `▁` word-start marker).
        eos: the AM's `<sos/eos>` id.
        delay: "word": a word's log-prob is added when the next token starts a word or is EOS (scores only where
            a word is complete). "token": the LLM scores the whole text so far, partial last word included, and
            the change that the hypothesis' last AM token made is added to every candidate of the next step (one
            token late). Both add exactly log P_LLM(words + EOS) over a finished hypothesis. "word" favours
            hypotheses that put off closing a word (their pending word is not paid for yet, and a hypothesis cut
            at the length bound never pays it); "token" has no such bias.
    """

    DELAYS = ("word", "token")

    def __init__(self, text_scorer: LLMTextScorer, token_list: Sequence[str], eos: int, delay: str = "token"):
        if delay not in self.DELAYS:
            raise ValueError(f"delay must be one of {self.DELAYS}, got {delay!r}")
        self.text_scorer = text_scorer
        self.token_list = list(token_list)
        self.eos = eos
        self.delay = delay
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
        if self.delay == "token":
            return self._batch_score_token(ys, states, scores)
        starts_word = self.starts_word.to(scores.device)
        committed = []
        for y, state in zip(ys.tolist(), states):
            closed = len(y) > 1 and bool(self.starts_word[y[-1]])
            committed.append(state.advanced if closed else state.committed)
        texts = [am_tokens_to_text(self.token_list, y[1:]) for y in ys.tolist()]
        advanced = self.text_scorer.extend_batch(committed, texts)  # one LLM forward for the whole beam
        new_states = []
        for i, (c, a) in enumerate(zip(committed, advanced)):
            word = a.total - c.total
            scores[i, starts_word] = word
            scores[i, self.eos] = word + float(a.next_logp[self.text_scorer.eos_id])
            new_states.append(DelayedState(c, a))
        return scores, new_states

    def _batch_score_token(
        self, ys: torch.Tensor, states: List[DelayedState], scores: torch.Tensor
    ) -> Tuple[torch.Tensor, List[DelayedState]]:
        """delay="token": state.advanced covers the text before ys[:, -1]; every candidate gets what ys[:, -1]
        changed, EOS also the LLM's EOS after the whole text."""
        texts = [am_tokens_to_text(self.token_list, y[1:]) for y in ys.tolist()]
        previous = [state.advanced for state in states]
        current = self.text_scorer.extend_batch(previous, texts)  # one LLM forward for the whole beam
        for i, (p, c) in enumerate(zip(previous, current)):
            scores[i] = c.total - p.total
            scores[i, self.eos] += float(c.next_logp[self.text_scorer.eos_id])
        return scores, [DelayedState(p, c) for p, c in zip(previous, current)]

    def score(self, y: torch.Tensor, state: DelayedState, x: torch.Tensor) -> Tuple[torch.Tensor, DelayedState]:
        scores, states = self.batch_score(y[None], [state], x[None])
        return scores[0], states[0]
