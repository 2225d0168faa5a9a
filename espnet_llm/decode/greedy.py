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
