"""Whisper's encoder as an ESPnet encoder: raw 16 kHz waveform in, 20 ms frames of ``d_model`` features out.

Use it with ``frontend: null`` and ``wav.scp`` read as ESPnet ``sound`` type, so the collate gives
``speech`` as ``(Batch, Samples)`` float and ``speech_lengths`` in samples. Whisper's log-mel front end
(n_fft 400, hop 160, 80 slaney mels, log10, clamp to max - 8, (x + 4) / 4) runs inside, in torch, batched.

No padding to 30 s. transformers' ``WhisperEncoder.forward`` insists on 3000 mel frames; we call its
``conv1``/``conv2``, add ``embed_positions.weight[:T]``, and run its layers and final ``layer_norm`` ourselves, so
a 2 s utterance costs 100 encoder frames, not 1500. Measured on 20 AN4 test utterances with Whisper tiny.en's own
decoder, teacher-forced on the 30 s-padded model's transcripts: (a) this unpadded output, token accuracy 0.716,
NLL 1.116/token; (b) 30 s padded input, output truncated to the same frames, 0.703 and 1.121; (full 1500 frames:
0.865, 0.571). Unpadded is as good as pad-then-truncate for a consumer that sees only the speech frames, at a
fraction of the cost. Whisper's frozen decoder does lose its end-of-text cue without the padded context (greedy
decoding of (a) and (b) often repeats the transcript until the length limit); the projector + LLM trained on this
output learn their own EOS, so that loss does not carry over.

Masking choice: within a batch, padded frames are (1) zeroed before each convolution, so that they look exactly
like the convolutions' own zero padding, and (2) hidden from self-attention by a key-padding mask. Each utterance's
output therefore equals running it alone, unpadded (batched == one-by-one, tested), and does not depend on what
else is in the batch. Whisper was trained without masks on 30 s padded input; the mask only removes the batch
padding, which Whisper never saw in that form (its padding is silence, ours is whatever length the batch needs).

Output frame shift: 20 ms (10 ms mel hop x conv2 stride 2); ``WhisperEncoder.frame_shift_ms`` gives it so that a
projector can compute its stacking factor as ``stride_ms // WhisperEncoder.frame_shift_ms``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
MAX_SECONDS = 30


def mel_filter_bank(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Slaney-scale, slaney-normalised triangular filters ``(n_mels, n_fft // 2 + 1)``, as Whisper (librosa) uses."""

    def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
        min_log_hz, min_log_mel, logstep = 1000.0, 15.0, math.log(6.4) / 27.0
        mel = 3.0 * hz / 200.0
        return torch.where(hz >= min_log_hz, min_log_mel + torch.log(hz / min_log_hz) / logstep, mel)

    def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
        min_log_hz, min_log_mel, logstep = 1000.0, 15.0, math.log(6.4) / 27.0
        hz = 200.0 * mel / 3.0
        return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), hz)

    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.tensor([0.0, sample_rate / 2], dtype=torch.float64)
    mel_edges = hz_to_mel(edges)
    hz_points = mel_to_hz(torch.linspace(mel_edges[0].item(), mel_edges[1].item(), n_mels + 2, dtype=torch.float64))
    diffs = hz_points[1:] - hz_points[:-1]
    slopes = hz_points[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_freqs)
    down = -slopes[:-2] / diffs[:-1, None]
    up = slopes[2:] / diffs[1:, None]
    filters = torch.clamp(torch.minimum(down, up), min=0.0)
    filters = filters * (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[:, None]
    return filters.to(torch.float32)


def num_mel_frames(num_samples: torch.Tensor) -> torch.Tensor:
    """Whisper's frame count for ``num_samples`` of audio: STFT frames minus the last one (= samples // hop)."""
    return torch.clamp(num_samples // HOP_LENGTH, min=1)


def num_encoder_frames(num_mel: torch.Tensor) -> torch.Tensor:
    """Frames after conv2 (kernel 3, stride 2, padding 1): ceil(num_mel / 2)."""
    return (num_mel - 1) // 2 + 1


class WhisperEncoder(AbsEncoder):
    """Pretrained Whisper encoder on raw audio of any length up to 30 s, without padding to 30 s.

    Args:
        input_size: what ESPnet passes (``input_size`` with ``frontend: null``); unused, the input is raw audio.
        model_dir: Hugging Face Whisper dir (``espnet_llm.bin.whisper_prepare`` writes exp/whisper/tiny.en).
        freeze: no gradients into the encoder (its parameters get ``requires_grad=False``, forward runs under
            ``torch.no_grad``).
        num_layers_to_use: keep only the first N transformer layers (the rest are dropped from the module);
            the final ``layer_norm`` is applied after them. None: all layers.
        whisper_config: instead of ``model_dir``, a ``WhisperConfig`` dict for a randomly initialised encoder
            (tests, training from scratch).
    """

    frame_shift_ms = 20  # HOP_LENGTH / SAMPLE_RATE * 1000 x conv2 stride 2

    def __init__(
        self,
        input_size: int = 1,
        model_dir: Optional[str] = None,
        freeze: bool = True,
        num_layers_to_use: Optional[int] = None,
        whisper_config: Optional[dict] = None,
    ):
        super().__init__()
        if (model_dir is None) == (whisper_config is None):
            raise ValueError("WhisperEncoder: give exactly one of model_dir or whisper_config")
        if model_dir is not None:
            self.encoder = _load_hf_encoder(Path(model_dir))
        else:
            self.encoder = HFWhisperEncoder(WhisperConfig(**whisper_config))
        config = self.encoder.config
        if num_layers_to_use is not None:
            if not 1 <= num_layers_to_use <= len(self.encoder.layers):
                raise ValueError(f"num_layers_to_use={num_layers_to_use}: the encoder has {len(self.encoder.layers)}")
            self.encoder.layers = self.encoder.layers[:num_layers_to_use]
        self.max_mel_frames = config.max_source_positions * 2
        self.register_buffer("mel_filters", mel_filter_bank(config.num_mel_bins), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.freeze = freeze
        if freeze:
            self.encoder.requires_grad_(False)
        self._output_size = config.d_model

    def output_size(self) -> int:
        return self._output_size

    def log_mel(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Whisper's normalised log-mel of each utterance: ``(Batch, Samples)`` -> ``(Batch, n_mels, Frames)``.

        Frames beyond an utterance's length are 0. Samples beyond its length are treated as silence, as
        Whisper's own zero padding to 30 s makes them, so the last frames match Whisper's features.
        """
        batch, num_samples = speech.shape
        in_range = torch.arange(num_samples, device=speech.device)[None, :] < speech_lengths[:, None]
        speech = speech.float().masked_fill(~in_range, 0.0)
        # the extra n_fft // 2 zeros make the STFT's right reflect-padding reflect silence, not the signal
        speech = F.pad(speech, (0, N_FFT // 2))
        stft = torch.stft(speech, N_FFT, HOP_LENGTH, window=self.window, center=True, return_complex=True)
        power = stft.abs() ** 2  # (Batch, n_freqs, Frames)
        mel_lengths = num_mel_frames(speech_lengths)
        num_frames = int(mel_lengths.max())
        mel = self.mel_filters @ power[..., :num_frames]  # (Batch, n_mels, Frames)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        valid = (torch.arange(num_frames, device=speech.device)[None, :] < mel_lengths[:, None])[:, None, :]
        peak = log_spec.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        return log_spec.masked_fill(~valid, 0.0), mel_lengths

    def encode_log_mel(self, log_mel: torch.Tensor, mel_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Whisper encoder on unpadded log-mel ``(Batch, n_mels, Frames)`` -> ``(Batch, ceil(Frames/2), D)``."""
        if log_mel.size(-1) > self.max_mel_frames:
            raise ValueError(
                f"WhisperEncoder: {log_mel.size(-1)} mel frames ({log_mel.size(-1) / 100:.1f} s) exceed Whisper's "
                f"{self.max_mel_frames} ({MAX_SECONDS} s); segment the audio first"
            )
        enc = self.encoder
        mel_valid = torch.arange(log_mel.size(-1), device=log_mel.device)[None, :] < mel_lengths[:, None]
        hidden = F.gelu(enc.conv1(log_mel.masked_fill(~mel_valid[:, None, :], 0.0)))
        hidden = F.gelu(enc.conv2(hidden.masked_fill(~mel_valid[:, None, :], 0.0)))
        hidden = hidden.transpose(1, 2)  # (Batch, Frames, D)
        out_lengths = num_encoder_frames(mel_lengths)
        num_frames = hidden.size(1)
        hidden = hidden + enc.embed_positions.weight[:num_frames]
        hidden = F.dropout(hidden, p=enc.dropout, training=self.training)

        valid = torch.arange(num_frames, device=hidden.device)[None, :] < out_lengths[:, None]
        attention_mask = None
        if not bool(valid.all()):
            # additive key-padding mask (Batch, 1, 1, Frames): padded frames are never attended to
            attention_mask = torch.zeros(valid.shape, dtype=hidden.dtype, device=hidden.device)
            attention_mask = attention_mask.masked_fill(~valid, torch.finfo(hidden.dtype).min)[:, None, None, :]
        for layer in enc.layers:
            hidden = layer(hidden, attention_mask)
        hidden = enc.layer_norm(hidden)
        return hidden.masked_fill(~valid[..., None], 0.0), out_lengths

    def forward(
        self,
        xs_pad: torch.Tensor,
        ilens: torch.Tensor,
        prev_states: torch.Tensor = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Raw audio ``(Batch, Samples)`` at 16 kHz + lengths -> ``(Batch, Frames, D)``, frame lengths, None."""
        if xs_pad.dim() != 2:
            raise ValueError(
                f"WhisperEncoder expects raw audio (Batch, Samples), got {tuple(xs_pad.shape)}: "
                "use frontend: null and wav.scp as 'sound' type"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            log_mel, mel_lengths = self.log_mel(xs_pad, ilens)
            hidden, out_lengths = self.encode_log_mel(log_mel, mel_lengths)
        return hidden, out_lengths, None


def _load_hf_encoder(model_dir: Path) -> HFWhisperEncoder:
    """Only the encoder's weights (``model.encoder.*``) of a Hugging Face Whisper dir; all of them, no others."""
    from safetensors import safe_open

    weights = model_dir / "model.safetensors"
    if not (model_dir / "config.json").is_file() or not weights.is_file():
        raise FileNotFoundError(
            f"WhisperEncoder: {model_dir} is not a Hugging Face Whisper dir (config.json + model.safetensors); "
            "make it with: python -m espnet_llm.bin.whisper_prepare --out_dir " + str(model_dir)
        )
    config = WhisperConfig.from_pretrained(model_dir)
    encoder = HFWhisperEncoder(config)
    prefix = "model.encoder."
    with safe_open(str(weights), framework="pt") as f:
        state_dict = {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    result = encoder.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"WhisperEncoder: loading {weights}: {result}")
    return encoder.eval()
