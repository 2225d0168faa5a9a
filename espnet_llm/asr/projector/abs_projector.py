"""Projector interface: encoder frames (Batch, T, D_enc) -> LLM embeddings (Batch, T', D_llm), T' = ceil(T / k).

A projector reduces the frame rate by an integer factor ``k`` (its ``output_stride()``, in encoder frames) and maps
to the LLM's hidden size. ``k`` is given directly (``stack``) or as a target stride in milliseconds
(``stride_ms``) together with the encoder's frame shift (``input_frame_shift_ms`` = the encoder's own
subsampling x the feature shift, e.g. 4 x 10 ms = 40 ms for a conv2d conformer on 10 ms fbank).
"""
from abc import ABC, abstractmethod
from typing import Optional, Tuple

import torch


def resolve_stack(
    stack: Optional[int] = None, stride_ms: Optional[float] = None, input_frame_shift_ms: Optional[float] = None
) -> int:
    """The stacking factor k from exactly one of ``stack`` or (``stride_ms``, ``input_frame_shift_ms``)."""
    if (stack is None) == (stride_ms is None):
        raise ValueError(f"give exactly one of stack ({stack}) or stride_ms ({stride_ms})")
    if stack is not None:
        if int(stack) != stack or stack < 1:
            raise ValueError(f"stack must be a positive integer, got {stack}")
        return int(stack)
    if input_frame_shift_ms is None or input_frame_shift_ms <= 0:
        raise ValueError(f"stride_ms={stride_ms} needs the encoder frame shift (input_frame_shift_ms), got {input_frame_shift_ms}")
    k = stride_ms / input_frame_shift_ms
    if k < 1 or abs(k - round(k)) > 1e-6:
        raise ValueError(
            f"stride_ms={stride_ms} is not a positive multiple of the encoder frame shift {input_frame_shift_ms} ms"
        )
    return int(round(k))


def stack_frames(x: torch.Tensor, lengths: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Concatenate k consecutive frames: (Batch, T, D) -> (Batch, ceil(T/k), k*D), lengths -> ceil(lengths/k).

    Frames at or beyond ``lengths`` are zeroed first, so the last stacked vector of an utterance holds its own
    frames followed by zeros, whatever the batch padding contained.
    """
    batch, frames, dim = x.shape
    valid = torch.arange(frames, device=x.device)[None, :] < lengths.to(x.device)[:, None]
    x = x.masked_fill(~valid[:, :, None], 0.0)
    pad = (-frames) % k
    if pad:
        x = torch.nn.functional.pad(x, (0, 0, 0, pad))
    out_lengths = torch.div(lengths + k - 1, k, rounding_mode="floor")
    return x.reshape(batch, (frames + pad) // k, k * dim), out_lengths


class AbsProjector(torch.nn.Module, ABC):
    @abstractmethod
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Batch, T, D_enc), (Batch,) -> (Batch, T', D_llm), (Batch,)."""
        raise NotImplementedError

    @abstractmethod
    def output_stride(self) -> int:
        """Encoder frames per output embedding (k)."""
        raise NotImplementedError

    @abstractmethod
    def output_size(self) -> int:
        """D_llm."""
        raise NotImplementedError


class StridedProjector(AbsProjector):
    """A projector with a fixed stacking factor k (from ``stack`` or ``stride_ms``) and output size D_llm."""

    def __init__(
        self,
        output_size: int,
        stack: Optional[int] = None,
        stride_ms: Optional[float] = None,
        input_frame_shift_ms: Optional[float] = None,
    ):
        super().__init__()
        self.k = resolve_stack(stack, stride_ms, input_frame_shift_ms)
        self._output_size = output_size

    def output_stride(self) -> int:
        return self.k

    def output_size(self) -> int:
        return self._output_size
