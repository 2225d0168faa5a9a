"""WhisperEncoder on raw audio: a tiny randomly initialised Whisper (from a WhisperConfig) for shapes and
batching; Whisper's real front end (80 mels) checked against transformers' WhisperFeatureExtractor on AN4 audio."""
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers import WhisperFeatureExtractor

from espnet_llm.asr.encoder.whisper_encoder import WhisperEncoder, mel_filter_bank

AN4_FLAC = Path("/work/shared/data/an4/audio/an4test_clstk/fcaw/an406-fcaw-b.flac")
TINY = dict(
    num_mel_bins=80,
    d_model=16,
    encoder_layers=2,
    encoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_layers=1,
    decoder_attention_heads=2,
    decoder_ffn_dim=32,
    vocab_size=100,
    max_source_positions=1500,
)


def tiny_encoder(**kwargs) -> WhisperEncoder:
    torch.manual_seed(0)
    return WhisperEncoder(whisper_config=TINY, **kwargs).eval()


def test_output_size_and_frame_shift():
    encoder = tiny_encoder()
    assert encoder.output_size() == 16
    assert WhisperEncoder.frame_shift_ms == 20
    assert encoder.frame_shift_ms == 20


@pytest.mark.parametrize("num_samples", [320, 1601, 16000, 35_999, 480_000])
def test_shapes_for_several_lengths(num_samples):
    encoder = tiny_encoder()
    speech = torch.randn(1, num_samples) * 0.1
    with torch.no_grad():
        out, out_lengths, states = encoder(speech, torch.tensor([num_samples]))
    mel_frames = num_samples // 160
    expected = (mel_frames + 1) // 2  # 20 ms frames, no padding to 30 s
    assert out.shape == (1, expected, 16)
    assert out_lengths.tolist() == [expected]
    assert states is None
    assert torch.isfinite(out).all()


def test_batched_equals_one_by_one():
    encoder = tiny_encoder()
    torch.manual_seed(1)
    lengths = [16000, 4321, 9600]
    waves = [torch.randn(n) * 0.1 for n in lengths]
    batch = torch.zeros(3, max(lengths))
    for i, wave in enumerate(waves):
        batch[i, : len(wave)] = wave
    batch[1, lengths[1] :] = 0.5  # whatever the collate leaves beyond a length must not matter
    with torch.no_grad():
        out, out_lengths, _ = encoder(batch, torch.tensor(lengths))
        for i, wave in enumerate(waves):
            single, single_lengths, _ = encoder(wave[None], torch.tensor([len(wave)]))
            n = int(single_lengths[0])
            assert int(out_lengths[i]) == n
            torch.testing.assert_close(out[i, :n], single[0], atol=1e-5, rtol=1e-4)
            assert out[i, n:].abs().max() == 0 if n < out.size(1) else True


def test_freeze_means_no_gradients():
    frozen = tiny_encoder(freeze=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    speech = torch.randn(2, 8000, requires_grad=True)
    out, _, _ = frozen(speech, torch.tensor([8000, 6000]))
    assert not out.requires_grad

    trained = tiny_encoder(freeze=False).train()
    out, lengths, _ = trained(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    out.sum().backward()
    grads = [p.grad for p in trained.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert trained.encoder.conv1.weight.grad.abs().sum() > 0
    assert trained.encoder.layers[-1].fc2.weight.grad.abs().sum() > 0


def test_num_layers_to_use_drops_layers():
    encoder = tiny_encoder(num_layers_to_use=1)
    assert len(encoder.encoder.layers) == 1
    out, lengths, _ = encoder(torch.randn(1, 3200), torch.tensor([3200]))
    assert out.shape == (1, 10, 16)
    with pytest.raises(ValueError, match="num_layers_to_use=3"):
        tiny_encoder(num_layers_to_use=3)


def test_errors_are_clear(tmp_path):
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match="exceed Whisper's 3000"):
        encoder(torch.zeros(1, 480_000 + 320), torch.tensor([480_000 + 320]))
    with pytest.raises(ValueError, match="raw audio"):
        encoder(torch.zeros(1, 100, 80), torch.tensor([100]))
    with pytest.raises(FileNotFoundError, match="whisper_prepare"):
        WhisperEncoder(model_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="exactly one"):
        WhisperEncoder()


def test_mel_filters_equal_whisper_feature_extractor():
    reference = WhisperFeatureExtractor(feature_size=80).mel_filters  # (n_freqs, n_mels)
    np.testing.assert_allclose(mel_filter_bank(80).numpy(), reference.T, atol=1e-6)


def test_log_mel_equals_whisper_feature_extractor_on_real_audio():
    wave, rate = soundfile.read(AN4_FLAC, dtype="float32")
    assert rate == 16000
    reference = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, return_tensors="pt").input_features
    encoder = tiny_encoder()
    log_mel, mel_lengths = encoder.log_mel(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    n = len(wave) // 160
    assert mel_lengths.tolist() == [n]
    assert log_mel.shape == (1, 80, n)
    torch.testing.assert_close(log_mel[0], reference[0, :, :n], atol=1e-4, rtol=1e-4)


def test_registered_as_whisper_encoder_choice():
    from espnet_llm.tasks.llm_asr import encoder_choices

    assert encoder_choices.get_class("whisper") is WhisperEncoder
