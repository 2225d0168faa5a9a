import pytest
import torch

from espnet_llm.asr.splice import prefix_lengths, splice

D = 3


def rows(batch, frames, start):
    """(batch, frames, D) where element [b, t, :] == start + 100 * b + t: every position is recognisable."""
    values = start + 100 * torch.arange(batch)[:, None] + torch.arange(frames)[None, :]
    return values[:, :, None].float().expand(batch, frames, D).clone()


def test_per_row_packing_with_prompt():
    audio = rows(2, 4, 1000)  # row 0 has 2 valid frames, row 1 has 4
    audio_lengths = torch.tensor([2, 4])
    text = rows(2, 3, 5000)  # row 0 has 3 tokens (incl. EOS), row 1 has 1
    text_lengths = torch.tensor([3, 1])
    text_ids = torch.tensor([[7, 8, 0], [9, -1, -1]])
    prompt = torch.full((2, D), -7.0)

    out = splice(audio, audio_lengths, text, text_lengths, text_ids, prompt)

    # row 0: P P A0 A1 T0 T1 T2 | row 1: P P A0 A1 A2 A3 T0 (both length 7)
    assert out.inputs_embeds.shape == (2, 7, D)
    assert out.lengths.tolist() == [7, 7]
    assert out.prefix_lengths.tolist() == [4, 6]
    first = out.inputs_embeds[:, :, 0]
    assert first[0].tolist() == [-7, -7, 1000, 1001, 5000, 5001, 5002]
    assert first[1].tolist() == [-7, -7, 1100, 1101, 1102, 1103, 5100]
    assert out.labels.tolist() == [[-100, -100, -100, -100, 7, 8, 0], [-100] * 6 + [9]]
    assert out.attention_mask.tolist() == [[1] * 7, [1] * 7]


def test_right_padding_and_labels_without_prompt():
    audio = rows(3, 3, 1000)
    audio_lengths = torch.tensor([1, 3, 2])
    text = rows(3, 2, 5000)
    text_lengths = torch.tensor([2, 1, 0])
    text_ids = torch.tensor([[4, 5], [6, -1], [-1, -1]])

    out = splice(audio, audio_lengths, text, text_lengths, text_ids, None, ignore_id=-100)

    assert out.lengths.tolist() == [3, 4, 2]
    assert out.inputs_embeds.shape == (3, 4, D)
    first = out.inputs_embeds[:, :, 0]
    assert first[0].tolist() == [1000, 5000, 5001, 0]
    assert first[1].tolist() == [1100, 1101, 1102, 5100]
    assert first[2].tolist() == [1200, 1201, 0, 0]
    assert out.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
    assert out.labels.tolist() == [[-100, 4, 5, -100], [-100, -100, -100, 6], [-100] * 4]
    assert out.prefix_lengths.tolist() == [1, 3, 2]


def test_prefix_only_and_per_row_prompt():
    audio = rows(2, 2, 1000)
    prompt = torch.stack([torch.full((1, D), -1.0), torch.full((1, D), -2.0)])  # (Batch, Tp=1, D)
    empty = torch.zeros(2, 0, D)
    out = splice(audio, torch.tensor([2, 1]), empty, torch.tensor([0, 0]), torch.zeros(2, 0, dtype=torch.long), prompt)
    assert out.inputs_embeds[:, :, 0].tolist() == [[-1, 1000, 1001], [-2, 1100, 0]]
    assert out.prefix_lengths.tolist() == [3, 2]
    assert (out.labels == -100).all()
    assert prefix_lengths(torch.tensor([2, 1]), 1).tolist() == [3, 2]


def test_gradients_flow_to_audio_and_text():
    audio = torch.randn(2, 3, D, requires_grad=True)
    text = torch.randn(2, 2, D, requires_grad=True)
    out = splice(audio, torch.tensor([3, 1]), text, torch.tensor([1, 2]), torch.zeros(2, 2, dtype=torch.long))
    out.inputs_embeds.sum().backward()
    assert audio.grad[:, :, 0].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert text.grad[:, :, 0].tolist() == [[1, 0], [1, 1]]


def test_dtype_mismatch_is_an_error():
    with pytest.raises(ValueError, match="dtype"):
        splice(torch.zeros(1, 1, D), torch.tensor([1]), torch.zeros(1, 1, D, dtype=torch.float64),
               torch.tensor([1]), torch.zeros(1, 1, dtype=torch.long))
