"""Batched greedy decoding of a causal LM that continues per-utterance embedding prefixes.

The prefixes (prompt + audio embeddings) have different lengths. They are left-padded into one batch with an
attention mask, and position ids count only the real positions, so every row sees exactly what it would see
alone: the result equals one-by-one greedy decoding (same tokens, scores equal up to float rounding).

A plain loop over the LM with a `DynamicCache` is used rather than `generate()`: `generate()` fills every
option the caller leaves unset from the model's `generation_config` (a Qwen2-Instruct directory brings
`repetition_penalty`, for example), which would make greedy decoding differ from the beam search's scores;
the loop also stops each row at its own length bound.
"""

import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from transformers import DynamicCache

from espnet_llm.decode.guards import repeats_too_often


class GreedyResult(NamedTuple):
    """Tokens without the final EOS; `score` is the sum of their log-probs, plus the EOS's if it ended with one."""

    token_ids: List[int]
    score: float
    ended: bool  # True if the LM emitted EOS, False if the length bound stopped it


def max_output_length(audio_frames: int, maxlenratio: float, offset: int) -> int:
    """Length bound of a transcript in tokens (EOS included): `ceil(maxlenratio * audio_frames) + offset`."""
    if maxlenratio < 0 or offset < 0:
        raise ValueError(f"maxlenratio ({maxlenratio}) and offset ({offset}) must be >= 0")
    return max(1, math.ceil(maxlenratio * audio_frames) + offset)


def left_pad(prefixes: Sequence[torch.Tensor]):
    """(Prefix_i, Dim) tensors -> embeds (Batch, Prefix_max, Dim), attention mask and position ids (Batch, Prefix_max)."""
    lengths = torch.tensor([p.shape[0] for p in prefixes])
    width = int(lengths.max())
    embeds = prefixes[0].new_zeros(len(prefixes), width, prefixes[0].shape[1])
    mask = torch.zeros(len(prefixes), width, dtype=torch.long, device=prefixes[0].device)
    for i, p in enumerate(prefixes):
        embeds[i, width - p.shape[0] :] = p
        mask[i, width - p.shape[0] :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, mask, positions


@torch.no_grad()
def greedy_search(
    llm: torch.nn.Module,
    prefixes: Sequence[torch.Tensor],
    max_lens: Sequence[int],
    eos: int,
    min_lens: Sequence[int] = None,
    repeat_stop: Optional[Tuple[int, int]] = None,
) -> List[GreedyResult]:
    """Greedy continuation of each prefix until EOS or its bound.

    Args:
        llm: Hugging Face causal LM (or peft model), eval mode.
        prefixes: one (Prefix_i, Dim) embedding tensor per utterance.
        max_lens: per utterance, the most tokens to emit (EOS included).
        eos: the LM's end-of-sequence id.
        min_lens: per utterance, EOS is not chosen before this many tokens (default 0).
        repeat_stop: (n, k): a row whose last n-gram occurs more than k times must end (EOS is forced, with its
            log-prob), as `espnet_llm.decode.guards.RepetitionStop` does in the beam search.
    Returns:
        one `GreedyResult` per prefix, in order.
    """
    n = len(prefixes)
    if len(max_lens) != n:
        raise ValueError(f"{n} prefixes but {len(max_lens)} max_lens")
    min_lens = torch.tensor(min_lens if min_lens is not None else [0] * n)
    max_lens_t = torch.tensor(list(max_lens))
    embed = llm.get_input_embeddings()
    embeds, mask, positions = left_pad([p.to(embed.weight.dtype) for p in prefixes])
    cache = DynamicCache()
    # logits_to_keep=1: the prefill needs only the last position's vocabulary projection
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
              logits_to_keep=1)
    next_pos = positions[:, -1:] + 1

    tokens: List[List[int]] = [[] for _ in range(n)]
    scores = torch.zeros(n, dtype=torch.float64)
    ended = torch.zeros(n, dtype=torch.bool)
    running = torch.ones(n, dtype=torch.bool)
    for step in range(int(max_lens_t.max())):
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (Batch, Vocab)
        choice = logp.clone()
        choice[step < min_lens, eos] = float("-inf")
        if repeat_stop is not None:
            for i in torch.nonzero(running).view(-1).tolist():
                if repeats_too_often(tokens[i], *repeat_stop):
                    choice[i] = float("-inf")
                    choice[i, eos] = 0.0
        token = choice.argmax(-1)  # (Batch,)
        for i in torch.nonzero(running).view(-1).tolist():
            scores[i] += float(logp[i, token[i]])
            if int(token[i]) == eos:
                ended[i] = True
            else:
                tokens[i].append(int(token[i]))
        running &= (token != eos) & (step + 1 < max_lens_t)
        if not running.any():
            break
        mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
        out = llm(
            inputs_embeds=embed(token[:, None]),
            attention_mask=mask,
            position_ids=next_pos,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
        next_pos = next_pos + 1
    return [GreedyResult(tokens[i], float(scores[i]), bool(ended[i])) for i in range(n)]


class DraftStats(NamedTuple):
    """What speculative decoding did: draft tokens proposed and accepted, LLM forwards after the prefill (an
    utterance's share of a batched forward counts one per utterance), tokens out, and batched forwards run."""

    proposed: int
    accepted: int
    forwards: int
    tokens: int
    batch_forwards: int = 0


def _greedy_choice(logp: torch.Tensor, tokens: List[int], min_len: int, eos: int,
                   repeat_stop: Optional[Tuple[int, int]]) -> int:
    """The token plain greedy search takes at this point (EOS barred before `min_len`, forced by `repeat_stop`)."""
    if repeat_stop is not None and repeats_too_often(tokens, *repeat_stop):
        return eos
    if len(tokens) < min_len:
        logp = logp.clone()
        logp[eos] = float("-inf")
    return int(logp.argmax())


def _realign(draft: Sequence[int], at: int, token: int, look: int = 2) -> int:
    """Where the draft goes on after the hypothesis took `token` where the draft has draft[at]: past the first
    copy of `token` in draft[at: at + 1 + look] (the draft agrees, or had extra tokens), else past draft[at]
    (a substitution)."""
    for j in range(at, min(len(draft), at + 1 + look)):
        if draft[j] == token:
            return j + 1
    return at + 1


class _Row:
    """One utterance's progress in speculative search."""

    def __init__(self, draft: List[int], max_len: int, min_len: int):
        self.draft, self.max_len, self.min_len = draft, max_len, min_len
        self.tokens: List[int] = []
        self.score, self.ended, self.done, self.at = 0.0, False, False, 0
        self.feed: List[int] = []  # the token taken last, not yet in the cache
        self.proposal: List[int] = []

    def propose(self, window: int) -> List[int]:
        """The inputs of the next forward: the fed token and the next draft tokens (none when done)."""
        room = self.max_len - len(self.tokens)
        self.proposal = [] if self.done else self.draft[self.at: self.at + min(window, room)]
        return [] if self.done else self.feed + self.proposal

    def verify(self, rows: torch.Tensor, eos: int, repeat_stop) -> int:
        """Take tokens as greedy search does from `rows` (rows[j]: the logits after the history and proposal[:j]);
        return how many proposal tokens were accepted (they and the fed token stay in the cache)."""
        j = 0
        while True:
            logp = torch.log_softmax(rows[j].float(), dim=-1)
            token = _greedy_choice(logp, self.tokens, self.min_len, eos, repeat_stop)
            self.score += float(logp[token])
            if token == eos:
                self.ended = self.done = True
                return j
            self.tokens.append(token)
            if len(self.tokens) >= self.max_len:
                self.done = True
                return j
            if j < len(self.proposal) and token == self.proposal[j]:
                j += 1
                continue
            # `token` differs from the proposal, or follows all of it: it is not in the cache yet
            self.feed = [token]
            self.at = _realign(self.draft, self.at + j, token)
            return j


@torch.no_grad()
def speculative_greedy_search(
    llm: torch.nn.Module,
    prefixes: Sequence[torch.Tensor],
    drafts: Sequence[Sequence[int]],
    max_lens: Sequence[int],
    eos: int,
    min_lens: Sequence[int] = None,
    repeat_stop: Optional[Tuple[int, int]] = None,
    window: int = 16,
) -> Tuple[List[GreedyResult], DraftStats]:
    """Greedy search that verifies a draft transcript (e.g. the CTC head's best path, in LLM token ids) instead of
    taking one LLM step per token: the draft's next `window` tokens (then EOS) are run through the LLM in one
    forward, the longest run of them that greedy search would choose is accepted, and the first token it would
    choose otherwise is taken from the same forward.

    Every token is the argmax that plain greedy search takes given the same history, with the same min-length and
    repetition rules, so the output is `greedy_search`'s, whatever the draft (a bad draft only costs time); logits
    computed over several positions at once can differ from one-by-one steps in the last float bits.

    Batched: the prefixes are left-padded as in `greedy_search`, and every forward runs each unfinished row's
    inputs, right-padded to the longest. A row's rejected draft tokens and padding stay in the KV cache but are
    masked out of attention (position ids count only what was accepted), so each row sees what it would see
    alone; the columns no row still needs are cropped off the cache after each forward (with one utterance: every
    rejected token). LLMs with sliding-window layers decode one utterance at a time (holes in the cache would
    stretch their windows).

    Args as `greedy_search`, plus `drafts`: one list of token ids per utterance, and `window`: draft tokens per
    forward. Returns the results and the draft statistics summed over the utterances.
    """
    n = len(prefixes)
    if not (len(drafts) == len(max_lens) == n):
        raise ValueError(f"{n} prefixes, {len(drafts)} drafts and {len(max_lens)} max_lens")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if any(int(m) < 1 for m in max_lens):
        raise ValueError(f"max_lens must be >= 1 (EOS included), got {list(max_lens)}")
    min_lens = list(min_lens) if min_lens is not None else [0] * n
    embed = llm.get_input_embeddings()
    embeds, mask, positions = left_pad([p.to(embed.weight.dtype) for p in prefixes])
    cache = DynamicCache()
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache,
              use_cache=True, logits_to_keep=1)
    if n > 1 and {type(layer).__name__ for layer in out.past_key_values.layers} != {"DynamicLayer"}:
        parts = [speculative_greedy_search(llm, [p], [d], [m], eos, [k], repeat_stop, window)
                 for p, d, m, k in zip(prefixes, drafts, max_lens, min_lens)]
        stats = [sum(field) for field in zip(*(s for _, s in parts))]
        return [r for rs, _ in parts for r in rs], DraftStats(*stats)
    cache = out.past_key_values
    heads = out.logits[:, -1]  # (Batch, Vocab): each row's first token
    next_pos = positions[:, -1] + 1  # (Batch,) the position id of each row's next input
    rows = [_Row([int(t) for t in d if int(t) != eos] + [eos], int(m), int(k))
            for d, m, k in zip(drafts, max_lens, min_lens)]
    proposed = accepted = forwards = batch_forwards = 0
    while not all(r.done for r in rows):
        inputs = [r.propose(window) for r in rows]
        width = max(len(x) for x in inputs)
        ids = torch.full((n, width), eos, dtype=torch.long, device=mask.device)  # padding: masked out
        new_mask = mask.new_zeros(n, width)
        for i, x in enumerate(inputs):
            ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            new_mask[i, :len(x)] = 1
        base = mask.shape[1]
        mask = torch.cat([mask, new_mask], dim=1)
        out = llm(inputs_embeds=embed(ids), attention_mask=mask, position_ids=next_pos[:, None] + torch.arange(width),
                  past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        batch_forwards += 1
        kept = []
        for i, (r, x) in enumerate(zip(rows, inputs)):
            if not x:
                kept.append(0)
                continue
            forwards += 1
            proposed += len(r.proposal)
            fed = len(r.feed)  # 0 in the first forward, whose first row is the prefill's
            logits = out.logits[i, fed - 1: len(x)] if fed else torch.cat([heads[i:i + 1], out.logits[i, :len(x)]])
            j = r.verify(logits, eos, repeat_stop)
            accepted += j
            kept.append(fed + j)
            mask[i, base + fed + j:] = 0  # the rejected proposals and the padding
            next_pos[i] += fed + j
        surplus = width - max(kept)  # columns masked in every row
        if surplus > 0:
            cache.crop(-surplus)  # transformers 5: a negative count of positions to drop
            mask = mask[:, :mask.shape[1] - surplus]
    results = [GreedyResult(r.tokens, r.score, r.ended) for r in rows]
    return results, DraftStats(proposed, accepted, forwards, sum(len(r.tokens) for r in rows), batch_forwards)
