"""Splice audio embeddings into a causal LLM's input: ``[prompt | audio | transcript]`` per utterance.

Each row of the output holds, left-aligned, the prompt (same for every row), the row's valid audio
frames, the row's valid transcript tokens, then right padding. Labels are aligned with the inputs as
Hugging Face causal LMs expect (the model shifts them internally: the logit at position ``i`` is scored
against ``labels[i + 1]``), and are ``ignore_id`` everywhere except at transcript positions.

Right padding keeps each row's valid positions at 0..length-1, so the LLM's default position ids are right and
none are returned; ``lengths`` and ``prefix_lengths`` locate each row's parts.

The caller passes the transcript *with* its end-of-sentence token appended, so the EOS is a label too.
Decoding builds the prefix alone by passing an empty transcript (``Tt = 0``).
"""
from typing import NamedTuple, Optional

import torch


class SpliceOutput(NamedTuple):
    inputs_embeds: torch.Tensor  # (Batch, Length, Dim), zeros on padding
    attention_mask: torch.Tensor  # (Batch, Length) long, 1 on valid positions
    labels: torch.Tensor  # (Batch, Length) long, ignore_id except on transcript positions
    lengths: torch.Tensor  # (Batch,) valid positions per row = prompt + audio + transcript
    prefix_lengths: torch.Tensor  # (Batch,) prompt + audio: the first transcript position per row


def prefix_lengths(audio_lengths: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Per-utterance length of ``[prompt | audio]``: (Batch,) -> (Batch,)."""
    return audio_lengths.long() + int(prompt_length)


def splice(
    audio_embeds: torch.Tensor,
    audio_lengths: torch.Tensor,
    text_embeds: torch.Tensor,
    text_lengths: torch.Tensor,
    text_ids: torch.Tensor,
    prompt_embeds: Optional[torch.Tensor] = None,
    ignore_id: int = -100,
) -> SpliceOutput:
    """Pack ``[prompt | audio | text]`` per row, left-aligned, right-padded.

    Args:
        audio_embeds: (Batch, Ta, Dim) audio embeddings; frames at or beyond ``audio_lengths`` are dropped.
        audio_lengths: (Batch,) valid audio frames per row.
        text_embeds: (Batch, Tt, Dim) input embeddings of the transcript (may be masked; Tt may be 0).
        text_lengths: (Batch,) valid transcript tokens per row (EOS included when the caller appended it).
        text_ids: (Batch, Tt) target ids of the transcript; values beyond ``text_lengths`` are ignored.
        prompt_embeds: (Tp, Dim) shared by all rows, (Batch, Tp, Dim), or None (Tp = 0).
        ignore_id: label of every non-transcript position.

    Returns:
        SpliceOutput with Length = Tp + max(audio_lengths + text_lengths).
    """
    batch, max_audio, dim = audio_embeds.shape
    if text_embeds.shape[0] != batch or text_embeds.shape[2] != dim:
        raise ValueError(f"text_embeds {tuple(text_embeds.shape)} does not match audio_embeds {tuple(audio_embeds.shape)}")
    if text_ids.shape != text_embeds.shape[:2]:
        raise ValueError(f"text_ids {tuple(text_ids.shape)} does not match text_embeds {tuple(text_embeds.shape)}")
    if audio_embeds.dtype != text_embeds.dtype:
        raise ValueError(f"audio_embeds dtype {audio_embeds.dtype} != text_embeds dtype {text_embeds.dtype}")
    if prompt_embeds is not None and prompt_embeds.dim() == 2:
        prompt_embeds = prompt_embeds.unsqueeze(0).expand(batch, -1, -1)
    prompt_length = 0 if prompt_embeds is None else prompt_embeds.shape[1]
    device = audio_embeds.device
    audio_lengths = audio_lengths.to(device).long().clamp(max=max_audio)
    text_lengths = text_lengths.to(device).long().clamp(max=text_embeds.shape[1])

    prefix = prefix_lengths(audio_lengths, prompt_length)  # (Batch,)
    lengths = prefix + text_lengths  # (Batch,)
    total = int(lengths.max()) if batch > 0 else prompt_length

    inputs_embeds = audio_embeds.new_zeros(batch, total, dim)
    labels = torch.full((batch, total), ignore_id, dtype=torch.long, device=device)
    if prompt_length > 0:
        inputs_embeds[:, :prompt_length] = prompt_embeds.to(audio_embeds.dtype)

    frame = torch.arange(max_audio, device=device)
    rows, cols = torch.nonzero(frame[None, :] < audio_lengths[:, None], as_tuple=True)
    inputs_embeds[rows, prompt_length + cols] = audio_embeds[rows, cols]

    token = torch.arange(text_embeds.shape[1], device=device)
    rows, cols = torch.nonzero(token[None, :] < text_lengths[:, None], as_tuple=True)
    positions = prefix[rows] + cols
    inputs_embeds[rows, positions] = text_embeds[rows, cols]
    labels[rows, positions] = text_ids[rows, cols].long()

    attention_mask = (torch.arange(total, device=device)[None, :] < lengths[:, None]).long()
    return SpliceOutput(inputs_embeds, attention_mask, labels, lengths, prefix)
