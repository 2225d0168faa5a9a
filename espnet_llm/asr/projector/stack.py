"""Frame stacking projectors (Fathullah et al.): stack k frames into one vector, then a linear map or a 2-layer MLP."""
from typing import Optional, Tuple

import torch

from espnet_llm.asr.projector.abs_projector import StridedProjector, stack_frames


class StackLinearProjector(StridedProjector):
    """Stack k frames (zero-padding the tail), then one Linear(k * D_enc -> D_llm)."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        stack: Optional[int] = None,
        stride_ms: Optional[float] = None,
        input_frame_shift_ms: Optional[float] = None,
    ):
        super().__init__(output_size, stack, stride_ms, input_frame_shift_ms)
        self.linear = torch.nn.Linear(self.k * input_size, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        stacked, out_lengths = stack_frames(x, lengths, self.k)  # (Batch, T', k * D_enc)
        return self.linear(stacked), out_lengths  # (Batch, T', D_llm)


class StackMLPProjector(StridedProjector):
    """Stack k frames, then Linear(k * D_enc -> hidden) -> GELU -> Linear(hidden -> D_llm); hidden defaults to D_llm."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        stack: Optional[int] = None,
        stride_ms: Optional[float] = None,
        input_frame_shift_ms: Optional[float] = None,
        hidden_size: Optional[int] = None,
    ):
        super().__init__(output_size, stack, stride_ms, input_frame_shift_ms)
        hidden_size = hidden_size or output_size
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(self.k * input_size, hidden_size),
            torch.nn.GELU(),
            torch.nn.Linear(hidden_size, output_size),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        stacked, out_lengths = stack_frames(x, lengths, self.k)  # (Batch, T', k * D_enc)
        return self.mlp(stacked), out_lengths  # (Batch, T', D_llm)
