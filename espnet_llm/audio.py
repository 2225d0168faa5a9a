"""Read one utterance's audio as float32 mono, with errors that say which utterance and file went wrong.

``read_audio`` takes what a ``wav.scp`` line holds after the id: a path (any format libsndfile reads: WAV, FLAC,
OGG, ...) or a Kaldi pipe, a shell command ending in ``|`` whose stdout is a WAV file, e.g.
``sph2pipe -f wav -p /corpus/an4/an251-fash-b.sph |``.

``load_audio`` (a file at any sample rate, mono or not) and ``waveform_from_array`` (a numpy array, float or int16)
bring audio to a model's mono rate, resampling with scipy's polyphase filter (``resample``); ``fbank`` is the
Kaldi filterbank of the recipe's features (``espnet_llm.bin.feats_extract``).
"""
from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["AudioError", "check_sample_rates", "fbank", "load_audio", "read_audio", "resample", "waveform_from_array"]


class AudioError(Exception):
    """Audio that cannot be used: missing, unreadable, wrong sample rate, multi-channel or empty."""


def read_audio(
    path_or_wavscp_entry: str | os.PathLike,
    expected_fs: int | None = 16000,
    utt_id: str | None = None,
    allow_stereo: bool = False,
) -> np.ndarray:
    """Return the samples as a float32 array of shape (Samples,) in [-1, 1].

    ``expected_fs``: the sample rate the audio must have (None accepts any). ``utt_id`` is named in errors.
    ``allow_stereo``: average the channels of multi-channel audio instead of raising AudioError.
    """
    samples, fs, source, where = _read(path_or_wavscp_entry, utt_id)
    if expected_fs is not None and fs != expected_fs:
        raise AudioError(f"{where}audio {source} has sample rate {fs} Hz, expected {expected_fs} Hz "
                         f"(resample the data dir: python -m espnet_llm.bin.datadir_tool resample --fs {expected_fs} "
                         "data/<set> data/<set>_16k)")
    channels = samples.shape[1]
    if channels > 1:
        if not allow_stereo:
            raise AudioError(f"{where}audio {source} has {channels} channels, expected mono (make a mono copy of "
                             "the data dir: python -m espnet_llm.bin.datadir_tool resample data/<set> data/<set>_mono)")
        return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32))
    return np.ascontiguousarray(samples[:, 0])


def check_sample_rates(wav_scp: str | os.PathLike, fs: int, keys=None) -> int:
    """Check that every recording of a ``wav.scp`` read as ESPnet's ``sound`` type (which drops the rate) is mono
    at ``fs`` Hz, from the file headers; ``keys``: only these ids. Raises AudioError naming the utterances and
    files (at most 5, and the count). Kaldi pipes are skipped (ESPnet's ``sound`` type cannot read them).
    Returns the number of files checked."""
    from espnet_llm.datadir import read_table

    bad, checked = [], 0
    for key, entry in read_table(wav_scp).items():
        if keys is not None and key not in keys:
            continue
        if entry.rstrip().endswith("|"):
            continue
        try:
            info = sf.info(entry)
        except Exception as e:  # missing, unreadable: named here rather than deep in a data loader worker
            raise AudioError(f"utterance {key}: cannot read {entry} (listed in {wav_scp}): {e}") from None
        checked += 1
        if info.samplerate != fs or info.channels != 1:
            bad.append(f"{key} ({entry}: {info.samplerate} Hz, {info.channels} channel(s))")
    if bad:
        raise AudioError(
            f"{wav_scp}: {len(bad)} recording(s) are not {fs} Hz mono as the model reads: {'; '.join(bad[:5])}"
            f"{' ...' if len(bad) > 5 else ''}. Make a {fs} Hz mono copy of the data dir: python -m "
            f"espnet_llm.bin.datadir_tool resample --fs {fs} <data dir> <data dir>_{fs // 1000}k"
        )
    return checked


def load_audio(path_or_wavscp_entry: str | os.PathLike, fs: int = 16000, utt_id: str | None = None) -> np.ndarray:
    """Audio of any sample rate and channel count as float32 mono (Samples,) at ``fs``: channels averaged,
    resampled with ``resample``. Errors as ``read_audio``'s."""
    samples, file_fs, _, _ = _read(path_or_wavscp_entry, utt_id)
    return resample(samples.mean(axis=1, dtype=np.float32), file_fs, fs)


def waveform_from_array(samples, sample_rate: int, fs: int = 16000) -> np.ndarray:
    """A numpy array of audio -> float32 mono (Samples,) at ``fs``.

    ``samples``: (Samples,) or (Samples, Channels) as soundfile gives them (channels are averaged); float values
    are taken as they are (in [-1, 1]), int16 is scaled by 1/32768 and int32 by 1/2**31 (PCM).
    """
    array = np.asarray(samples)
    if array.dtype == np.int16:
        array = array.astype(np.float32) / 32768.0
    elif array.dtype == np.int32:
        array = (array.astype(np.float64) / 2.0**31).astype(np.float32)
    elif not np.issubdtype(array.dtype, np.floating):
        raise AudioError(f"audio array of dtype {array.dtype}: expected float (in [-1, 1]), int16 or int32 samples")
    if array.ndim == 2:
        array = array.mean(axis=1)
    elif array.ndim != 1:
        raise AudioError(f"audio array of shape {array.shape}: expected (Samples,) or (Samples, Channels)")
    if array.shape[0] == 0:
        raise AudioError("audio array has no samples (zero length)")
    if not np.isfinite(array).all():
        raise AudioError(f"audio array holds {int((~np.isfinite(array)).sum())} NaN or infinite sample(s)")
    return resample(array.astype(np.float32), int(sample_rate), fs)


def resample(wav: np.ndarray, orig_fs: int, new_fs: int) -> np.ndarray:
    """(Samples,) at ``orig_fs`` -> float32 (Samples',) at ``new_fs``: scipy's polyphase FIR resampler
    (``scipy.signal.resample_poly``, Kaiser window), the rates reduced by their gcd (44100 -> 16000: up 160, down 441)."""
    if orig_fs <= 0 or new_fs <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_fs} -> {new_fs} Hz")
    wav = np.asarray(wav, dtype=np.float32)
    if orig_fs == new_fs:
        return wav
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(orig_fs), int(new_fs))
    return resample_poly(wav, int(new_fs) // g, int(orig_fs) // g).astype(np.float32)


def fbank(wav, fs: int = 16000, num_mel_bins: int = 80):
    """(Samples,) float waveform in [-1, 1] -> (Frames, num_mel_bins) log-mel features, a torch.Tensor.

    Kaldi-compatible fbank (``torchaudio.compliance.kaldi.fbank``: 25 ms window, 10 ms shift, povey window,
    dither 0 so that reruns are bit-identical) on the int16 scale, as the recipe's ``dump/fbank`` features.
    """
    import torch
    from torchaudio.compliance import kaldi

    if len(wav) < fs * 25 // 1000:  # kaldi.fbank asserts on audio shorter than its window
        raise AudioError(f"audio of {len(wav)} samples is shorter than one 25 ms frame at {fs} Hz")
    x = torch.as_tensor(wav, dtype=torch.float32).unsqueeze(0) * 32768  # Kaldi's int16 scale
    return kaldi.fbank(x, num_mel_bins=num_mel_bins, sample_frequency=fs, dither=0.0, energy_floor=0.0)


def _read(path_or_wavscp_entry: str | os.PathLike, utt_id: str | None) -> tuple:
    """(samples (Samples, Channels) float32, sample rate, what to call the source, utterance prefix of errors)."""
    entry = os.fspath(path_or_wavscp_entry).strip()
    where = f"utterance {utt_id}: " if utt_id is not None else ""
    if entry.endswith("|"):
        command = entry[:-1].strip()
        source = f"command '{command}'"
        data = _run_pipe(command, where, source)
    else:
        source = f"file {entry}"
        path = Path(entry)
        if not path.exists():
            raise AudioError(f"{where}audio {source} does not exist")
        if not path.is_file():
            raise AudioError(f"{where}audio {source} is not a regular file")
        if path.stat().st_size == 0:
            raise AudioError(f"{where}audio {source} is empty (0 bytes)")
        data = path

    try:
        samples, fs = sf.read(data, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{where}cannot read audio {source}: corrupt or unsupported format ({err})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{where}audio {source} has no samples (zero length)")
    return samples, fs, source, where


def _run_pipe(command: str, where: str, source: str) -> io.BytesIO:
    # pipefail: in "a | b" a failure of a must fail the read, not hand back a truncated stream.
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()[-500:]
        raise AudioError(f"{where}audio {source} failed with exit status {result.returncode}"
                         + (f": {stderr}" if stderr else ""))
    if not result.stdout:
        raise AudioError(f"{where}audio {source} wrote nothing to stdout")
    return io.BytesIO(result.stdout)
