"""Strided convolution projector: Conv1d(D_enc -> D_llm, kernel k, stride k) over the zero-padded frames."""
from typing import Optional, Tuple

import torch

from espnet_llm.asr.projector.abs_projector import AbsProjector, resolve_stack


class ConvProjector(AbsProjector):
    """Equivalent in receptive field to stacking k frames; the tail is zero-padded to a multiple of k."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        stack: Optional[int] = None,
        stride_ms: Optional[float] = None,
        input_frame_shift_ms: Optional[float] = None,
    ):
        super().__init__()
        self.k = resolve_stack(stack, stride_ms, input_frame_shift_ms)
        self._output_size = output_size
        self.conv = torch.nn.Conv1d(input_size, output_size, kernel_size=self.k, stride=self.k)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        frames = x.shape[1]
        valid = torch.arange(frames, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        x = x.masked_fill(~valid[:, :, None], 0.0)  # (Batch, T, D_enc)
        x = torch.nn.functional.pad(x.transpose(1, 2), (0, (-frames) % self.k))  # (Batch, D_enc, k * T')
        out_lengths = torch.div(lengths + self.k - 1, self.k, rounding_mode="floor")
        return self.conv(x).transpose(1, 2), out_lengths  # (Batch, T', D_llm)

    def output_stride(self) -> int:
        return self.k

    def output_size(self) -> int:
        return self._output_size
