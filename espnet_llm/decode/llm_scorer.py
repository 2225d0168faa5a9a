"""A Hugging Face causal LM, continued after a fixed prefix of embeddings, as a scorer for ESPnet's beam search.

The prefix is `[prompt | audio]` embeddings of ONE utterance (ESPnet's beam search decodes one utterance at a
time); the LM scores the transcript tokens that follow it. The scorer state is the LM's KV cache, so one beam
step costs one token's forward per hypothesis, not a forward over the whole prefix.

Start marker. ESPnet's `yseq` starts with `sos`. The LLM never sees that id: the prefix already ends the
context. The prefix is run up to its next-to-last position in `batch_init_state`; the step that sees
`yseq == [sos]` feeds the prefix's last embedding, and every later step feeds the embedding of `yseq[-1]`.
So every step is exactly one position's forward, and `yseq[1:]` are the tokens the LLM continued with.
`sos` may be any id (the LLM's EOS, as ESPnet does, is fine).

KV-cache state and beam reordering. One hypothesis' state is a `KVRow`: a row index into a batched cache
(a tuple over layers of `(keys, values)`, each `(Batch, Heads, Time, HeadDim)`). The tensors are never changed
in place, so a state stays valid however the beam search copies or drops hypotheses. `batch_score` gathers the
rows of the running hypotheses into one batch: when they are the rows 0..n-1 of one cache in order (beam 1,
or a beam without reordering) the cache is reused as it is; when they come from one cache it is one
`index_select` per layer; otherwise the rows are concatenated. After the step, the new batched cache is shared
by the n new states. `select_state` is ESPnet's default (`states[i]`), since `batch_score` returns one state
per hypothesis. The cost of a step is one token's forward plus about two copies of the cache (the gather and
the append inside `DynamicCache.update`); the attention reads the whole cache anyway.

All running hypotheses of ESPnet's `BatchBeamSearch` have the same length, so their caches have the same
length and no padding or attention mask is needed. Tested with full-attention models (Llama, Qwen2, GPT-2
style); models with sliding-window layers get a full cache (correct positions, no memory saving).
"""

from typing import List, NamedTuple, Optional, Tuple

import torch
from espnet.nets.scorer_interface import BatchScorerInterface
from transformers import DynamicCache

KVLayers = Tuple[Tuple[torch.Tensor, torch.Tensor], ...]


class KVRow(NamedTuple):
    """One hypothesis' state: row `row` of the batched KV cache `layers` (None before the first forward)."""

    layers: Optional[KVLayers]
    row: int


def cache_to_layers(cache: DynamicCache) -> KVLayers:
    """The (keys, values) tensors of each layer of a transformers `DynamicCache`."""
    return tuple((layer.keys, layer.values) for layer in cache.layers)


def gather_rows(states: List[KVRow]) -> Optional[KVLayers]:
    """Batch the cache rows of `states` in their order (see the module doc for the three cases)."""
    if states[0].layers is None:
        return None
    first = states[0].layers
    rows = [s.row for s in states]
    if all(s.layers is first for s in states):
        if rows == list(range(first[0][0].shape[0])):
            return first
        index = torch.tensor(rows, device=first[0][0].device)
        return tuple((k.index_select(0, index), v.index_select(0, index)) for k, v in first)
    return tuple(
        (
            torch.cat([s.layers[i][0][s.row : s.row + 1] for s in states]),
            torch.cat([s.layers[i][1][s.row : s.row + 1] for s in states]),
        )
        for i in range(len(first))
    )


class LLMPrefixScorer(BatchScorerInterface):
    """Log-probabilities of the next token from a causal LM that continues a fixed embedding prefix.

    Args:
        llm: a Hugging Face causal LM (or a peft `PeftModel` around one), in eval mode.
        prefix: (Prefix, Dim) input embeddings of one utterance (prompt + audio), in the LM's embedding space.
            May be replaced per utterance with `set_prefix`.
    """

    def __init__(self, llm: torch.nn.Module, prefix: Optional[torch.Tensor] = None):
        self.llm = llm
        self.embed = llm.get_input_embeddings()
        self.n_vocab = llm.get_output_embeddings().weight.shape[0]
        self.prefix = None
        if prefix is not None:
            self.set_prefix(prefix)

    def set_prefix(self, prefix: torch.Tensor) -> None:
        """Use `prefix` (Prefix, Dim) for the next utterance."""
        if prefix.dim() != 2 or prefix.shape[0] < 1:
            raise ValueError(f"prefix must be (Prefix >= 1, Dim), got {tuple(prefix.shape)}")
        if prefix.shape[1] != self.embed.embedding_dim:
            raise ValueError(f"prefix dim {prefix.shape[1]} != LLM embedding dim {self.embed.embedding_dim}")
        self.prefix = prefix.detach().to(self.embed.weight.dtype)

    def _forward(self, embeds: torch.Tensor, layers: Optional[KVLayers]) -> Tuple[torch.Tensor, KVLayers]:
        """Run `embeds` (Batch, Time, Dim) after the cache `layers`; return the last position's log-probs."""
        cache = DynamicCache(ddp_cache_data=layers) if layers is not None else DynamicCache()
        with torch.no_grad():
            # logits_to_keep=1: only the last position's vocabulary projection (49k x 576 for SmolLM2) is needed
            out = self.llm(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (Batch, Vocab)
        return logp, cache_to_layers(out.past_key_values)

    def batch_init_state(self, x: torch.Tensor) -> KVRow:
        """Cache of the prefix up to its next-to-last position (`x`, the encoder output, is not used)."""
        if self.prefix is None:
            raise RuntimeError("LLMPrefixScorer: call set_prefix(prefix) before decoding")
        if self.prefix.shape[0] == 1:
            return KVRow(None, 0)
        with torch.no_grad():
            _, layers = self._forward(self.prefix[None, :-1], None)
        return KVRow(layers, 0)

    def init_state(self, x: torch.Tensor) -> KVRow:
        return self.batch_init_state(x)

    def batch_score(
        self, ys: torch.Tensor, states: List[KVRow], xs: torch.Tensor
    ) -> Tuple[torch.Tensor, List[KVRow]]:
        """Score the next token of each hypothesis.

        Args:
            ys: (Batch, Length) int64 prefix tokens, `ys[:, 0]` the start marker; all of the same length.
            states: one `KVRow` per hypothesis, covering the prefix and `ys[:, 1:-1]`.
            xs: (Batch, Time, Feat) encoder output (not used).
        Returns:
            (Batch, Vocab) float32 log-probabilities, and one new `KVRow` per hypothesis.
        """
        n = ys.shape[0]
        if ys.shape[1] == 1:
            embeds = self.prefix[-1:].expand(n, 1, -1)
        else:
            embeds = self.embed(ys[:, -1:])  # (Batch, 1, Dim)
        logp, layers = self._forward(embeds, gather_rows(states))
        return logp.to(xs.dtype), [KVRow(layers, i) for i in range(n)]

    def score(self, y: torch.Tensor, state: KVRow, x: torch.Tensor) -> Tuple[torch.Tensor, KVRow]:
        """Non-batched scoring for ESPnet's plain `BeamSearch`: `y` (Length,)."""
        logp, states = self.batch_score(y[None], [state], x[None])
        return logp[0], states[0]

    def score_full_prefix(self, ys: torch.Tensor) -> torch.Tensor:
        """Reference scoring without a cache: log-probs (Batch, Vocab) after `[prefix | ys[:, 1:]]`."""
        n = ys.shape[0]
        embeds = torch.cat([self.prefix.expand(n, -1, -1), self.embed(ys[:, 1:])], dim=1)
        with torch.no_grad():
            logits = self.llm(inputs_embeds=embeds, use_cache=False).logits
        return torch.log_softmax(logits[:, -1].float(), dim=-1)
