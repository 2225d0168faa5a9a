"""Read one utterance's audio as float32 mono, with errors that say which utterance and file went wrong.

``read_audio`` takes what a ``wav.scp`` line holds after the id: a path (any format libsndfile reads: WAV, FLAC,
OGG, ...) or a Kaldi pipe, a shell command ending in ``|`` whose stdout is a WAV file, e.g.
``sph2pipe -f wav -p /corpus/an4/an251-fash-b.sph |``.
"""
from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["AudioError", "read_audio"]


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

    if expected_fs is not None and fs != expected_fs:
        raise AudioError(f"{where}audio {source} has sample rate {fs} Hz, expected {expected_fs} Hz "
                         f"(resample it, e.g. 'sox in.wav -r {expected_fs} out.wav')")
    if samples.shape[0] == 0:
        raise AudioError(f"{where}audio {source} has no samples (zero length)")
    channels = samples.shape[1]
    if channels > 1:
        if not allow_stereo:
            raise AudioError(f"{where}audio {source} has {channels} channels, expected mono "
                             "(pass allow_stereo=True to average them, or keep one with 'sox in.wav out.wav remix 1')")
        return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32))
    return np.ascontiguousarray(samples[:, 0])


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
