"""Recordings of any length: cut at pauses by a voice activity detector, decode the pieces, stitch them with times.

The cuts come from Silero VAD (`silero-vad`, MIT; its model ships inside the wheel, runs offline on CPU in about
1 % of real time, and needs only torch). It was chosen over the speech LLM's own CTC blanks because it works for
every model here (the AM and speech LLMs without a CTC head too) and before any model has to see the audio, so
that no encoder ever gets more than its window; and over an energy threshold because it tells speech from noise
and music.

`speech_segments` merges the detector's speech regions, in order, into segments of at most `max_seconds` (a
region longer than that is cut by the detector itself at its longest pause, else hard), each cut in the middle of
a pause; with `split_pause_seconds` no segment spans a pause at least that long (a sentence's end, not the pause
between two spelled letters). Decoding then sees one segment at a time (or a batch of them), so memory is bounded
by the segment, not by the recording; the recording itself is held as samples (10 minutes at 16 kHz: 38 MB).
"""
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

WHISPER_SECONDS = 30.0  # the Whisper encoder's window
PAD_MS = 100  # Silero VAD's padding of each speech region on either side


class Segment(NamedTuple):
    """A piece of a recording: [start, end) in seconds and its transcript."""
    start: float
    end: float
    text: str


@dataclass
class LongTranscript:
    """The stitched transcript of a recording and its segments."""
    text: str
    segments: List[Segment]


_VAD = None


def vad_model():
    """Silero VAD's TorchScript model from the silero-vad wheel (loaded once)."""
    global _VAD
    if _VAD is None:
        try:
            from silero_vad import load_silero_vad
        except ImportError as e:
            raise ImportError("long recordings need Silero VAD: pip install --no-deps silero-vad==6.2.3 "
                              "(tools/install.sh installs it)") from e
        _VAD = load_silero_vad()
    return _VAD


def speech_regions(wav: np.ndarray, fs: int = 16000, max_seconds: float = WHISPER_SECONDS,
                   min_silence_ms: int = 300, pad_ms: int = PAD_MS) -> List[Tuple[int, int]]:
    """Silero VAD's speech regions [(start, end) in samples], none longer than `max_seconds`."""
    import torch
    from silero_vad import get_speech_timestamps

    if fs not in (8000, 16000):
        raise ValueError(f"the VAD reads 8 or 16 kHz audio, got {fs} Hz")
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), vad_model(),
                                       sampling_rate=fs, max_speech_duration_s=max_seconds - 2 * pad_ms / 1000,
                                       min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms)
    vad_model().reset_states()
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def has_speech(wav: np.ndarray, fs: int = 16000) -> bool:
    """True when the VAD finds speech in `wav`: a region of at least 250 ms (Silero VAD's minimum). The gate of
    `--vad_gate` / `transcribe(vad_gate=True)`: a recording without speech gets an empty transcript and no decoding,
    where a speech LLM would write words over silence, noise or music."""
    return len(wav) > 0 and bool(speech_regions(wav, fs, max_seconds=max(WHISPER_SECONDS, len(wav) / fs + 1.0)))


def check_split_pause(split_pause_seconds: Optional[float]) -> Optional[float]:
    """`split_pause_seconds` as given, when None (no pause rule) or > 0; else a ValueError."""
    if split_pause_seconds is not None and not split_pause_seconds > 0:
        raise ValueError(f"split_pause_seconds must be > 0 (or None: off), got {split_pause_seconds}")
    return split_pause_seconds


def merge_regions(regions: Sequence[Tuple[int, int]], total: int, fs: int, max_seconds: float,
                  merge_seconds: Optional[float] = None, split_pause_seconds: Optional[float] = None,
                  pad_seconds: float = 0.0) -> List[Tuple[int, int]]:
    """Consecutive regions joined while the piece stays within `merge_seconds` (default `max_seconds`); each cut in
    the middle of its pause. Sample ranges [start, end) that tile the speech of the recording, every one at most
    max_seconds long. A model trained on short utterances wants a short `merge_seconds`: a 30-s segment of several
    utterances is not what it learnt to transcribe.

    `split_pause_seconds` (default None: off; else > 0): two regions are never joined across a pause at least that
    long, whatever the limits allow, so that a segment does not span the pause between two sentences. The pause is
    the silence between the regions before the detector padded them by `pad_seconds` on either side: the gap
    between them plus 2 * `pad_seconds`; regions that touch (the detector split a pause shorter than two pads in its
    middle) count as no pause."""
    check_split_pause(split_pause_seconds)
    limit = int(max_seconds * fs)
    merge = min(limit, int((max_seconds if merge_seconds is None else merge_seconds) * fs))
    split = None if split_pause_seconds is None else round(split_pause_seconds * fs)
    pad2 = round(2 * pad_seconds * fs)
    pieces: List[List[int]] = []
    for start, end in regions:
        gap = start - pieces[-1][1] if pieces else 0
        pause = gap + pad2 if gap > 0 else 0
        if pieces and end - pieces[-1][0] <= merge and (split is None or pause < split):
            pieces[-1][1] = end
        else:
            pieces.append([start, end])
    out = []
    for i, (start, end) in enumerate(pieces):
        # widen into the pauses around it, up to their middles, as far as the limit allows
        lo = 0 if i == 0 else (pieces[i - 1][1] + start) // 2
        hi = total if i == len(pieces) - 1 else (end + pieces[i + 1][0]) // 2
        spare = max(0, limit - (end - start))
        lo = max(lo, start - spare // 2)
        hi = min(hi, end + (spare - (start - lo)))
        out.append((lo, hi))
    return out


def speech_segments(wav: np.ndarray, fs: int = 16000, max_seconds: float = WHISPER_SECONDS,
                    min_silence_ms: int = 300, merge_seconds: Optional[float] = None,
                    split_pause_seconds: Optional[float] = None) -> List[Tuple[int, int]]:
    """The recording's speech as sample ranges of at most `max_seconds`, cut in pauses (empty: no speech); regions
    are merged into one segment only while it stays within `merge_seconds` (default `max_seconds`) and, with
    `split_pause_seconds`, never across a pause at least that long (the silence the detector heard between two
    regions, before its padding; it cuts only at pauses of at least `min_silence_ms`)."""
    if max_seconds <= 1.0:
        raise ValueError(f"max_seconds must be > 1, got {max_seconds}")
    check_split_pause(split_pause_seconds)
    regions = speech_regions(wav, fs, max_seconds, min_silence_ms, PAD_MS)
    return merge_regions(regions, len(wav), fs, max_seconds, merge_seconds, split_pause_seconds, PAD_MS / 1000)


def transcribe_segments(decode_batch, wav: np.ndarray, fs: int, segments: Sequence[Tuple[int, int]],
                        batch_size: int = 8, to_input=None) -> LongTranscript:
    """Decode `segments` of `wav` `batch_size` at a time with `decode_batch(list of model inputs) -> list of texts`
    (`to_input(samples)`: the model's input of a piece, e.g. its fbank) and stitch the texts in order."""
    out: List[Segment] = []
    for i in range(0, len(segments), batch_size):
        chunk = segments[i:i + batch_size]
        inputs = [wav[a:b] if to_input is None else to_input(wav[a:b]) for a, b in chunk]
        texts = decode_batch(inputs)
        out += [Segment(round(a / fs, 3), round(b / fs, 3), " ".join(t.split())) for (a, b), t in zip(chunk, texts)]
    return LongTranscript(" ".join(s.text for s in out if s.text), out)


def segment_limit(max_seconds: float, merge_seconds: Optional[float] = None) -> float:
    """The longest recording decoded whole: a segment's longest (`merge_seconds` when given, at most `max_seconds`).
    A recording between the two is cut too: a model that wants segments of `merge_seconds` wants them whatever the
    length of the recording they come from."""
    return max_seconds if merge_seconds is None else min(max_seconds, merge_seconds)


def needs_segmenting(n_samples: int, fs: int, max_seconds: Optional[float]) -> bool:
    return max_seconds is not None and n_samples > max_seconds * fs
