"""Strided convolution projector: Conv1d(D_enc -> D_llm, kernel k, stride k) over the zero-padded frames."""
from typing import Optional, Tuple

import torch

from espnet_llm.asr.projector.abs_projector import StridedProjector, stack_frames


class ConvProjector(StridedProjector):
    """Equivalent in receptive field to stacking k frames; the tail is zero-padded to a multiple of k."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        stack: Optional[int] = None,
        stride_ms: Optional[float] = None,
        input_frame_shift_ms: Optional[float] = None,
    ):
        super().__init__(output_size, stack, stride_ms, input_frame_shift_ms)
        self.conv = torch.nn.Conv1d(input_size, output_size, kernel_size=self.k, stride=self.k)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        stacked, out_lengths = stack_frames(x, lengths, self.k)  # (Batch, T', k * D_enc), padding zeroed
        batch, steps, _ = stacked.shape
        frames = stacked.reshape(batch, steps * self.k, -1).transpose(1, 2)  # (Batch, D_enc, k * T')
        return self.conv(frames).transpose(1, 2), out_lengths  # (Batch, T', D_llm)
