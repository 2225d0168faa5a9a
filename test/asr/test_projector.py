import pytest
import torch

from espnet_llm.asr.projector.abs_projector import resolve_stack, stack_frames
from espnet_llm.asr.projector.conv import ConvProjector
from espnet_llm.asr.projector.stack import StackLinearProjector, StackMLPProjector

PROJECTORS = [StackLinearProjector, StackMLPProjector, ConvProjector]


@pytest.mark.parametrize("stride_ms", [40, 80, 160, 240, 480, 960])
@pytest.mark.parametrize("cls", PROJECTORS)
def test_strides_shapes_and_lengths(cls, stride_ms):
    torch.manual_seed(0)
    proj = cls(input_size=6, output_size=8, stride_ms=stride_ms, input_frame_shift_ms=40)
    k = stride_ms // 40
    assert proj.output_stride() == k
    assert proj.output_size() == 8
    lengths = torch.tensor([50, 37, 1])
    y, out_lengths = proj(torch.randn(3, 50, 6), lengths)
    expected = [-(-n // k) for n in (50, 37, 1)]  # ceil
    assert y.shape == (3, expected[0], 8)
    assert out_lengths.tolist() == expected


@pytest.mark.parametrize("cls", PROJECTORS)
def test_batch_padding_does_not_leak(cls):
    """An utterance's output equals its output alone: padding frames are zeroed before stacking."""
    torch.manual_seed(0)
    proj = cls(input_size=4, output_size=5, stack=3)
    x = torch.randn(2, 10, 4)
    lengths = torch.tensor([10, 7])
    y, _ = proj(x, lengths)
    alone, alone_lengths = proj(x[1:, :7], torch.tensor([7]))
    assert alone_lengths.tolist() == [3]
    torch.testing.assert_close(y[1, :3], alone[0])


def test_stack_frames_values():
    x = torch.arange(1, 6).float().view(1, 5, 1)  # frames 1..5
    stacked, lengths = stack_frames(x, torch.tensor([5]), 2)
    assert stacked[0].tolist() == [[1, 2], [3, 4], [5, 0]]
    assert lengths.tolist() == [3]


def test_resolve_stack():
    assert resolve_stack(stack=3) == 3
    assert resolve_stack(stride_ms=960, input_frame_shift_ms=40) == 24
    assert resolve_stack(stride_ms=80, input_frame_shift_ms=20) == 4
    with pytest.raises(ValueError, match="multiple"):
        resolve_stack(stride_ms=100, input_frame_shift_ms=40)
    with pytest.raises(ValueError, match="exactly one"):
        resolve_stack(stack=2, stride_ms=80, input_frame_shift_ms=40)
    with pytest.raises(ValueError, match="frame shift"):
        resolve_stack(stride_ms=80)
