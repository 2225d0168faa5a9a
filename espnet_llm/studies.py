"""The measurements of the decoding studies (`espnet_llm.bin.studies_report`, `egs/an4/asr1/run_studies.sh`).

- long recordings: the segments' hypotheses of decoding the reference segments one by one, joined per recording
  (`join_segments`), against the long-form hypothesis of the whole recording; both scored by sclite on the same
  reference; a setting of the long-form decoding (`--split_pause_seconds`) is chosen on dev's joined recordings
  (`best_setting`);
- word times: each correctly recognised word's start and end against an independent alignment of the reference
  (`boundary_errors` over two NIST CTM files, words paired by a Levenshtein alignment of the two word sequences);
- hotword biasing: the share of the listed phrases' reference occurrences that the hypothesis has (`hotword_recall`);
- hallucination: non-empty output on recordings without speech, and runaway outputs (`is_runaway`: a word n-gram
  repeated, or more words than speech can hold).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from espnet_llm.decode.guards import loops

PathLike = Union[str, os.PathLike]


class CtmWord(NamedTuple):
    word: str
    start: float
    end: float


def read_ctm(path: PathLike) -> Dict[str, List[CtmWord]]:
    """NIST CTM (`<utt> <channel> <start> <duration> <word> [<confidence>]`) as {utt: words in time order}."""
    out: Dict[str, List[CtmWord]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(";;"):
                continue
            if len(parts) < 5:
                raise ValueError(f"{path}:{lineno}: not a CTM line (<utt> <channel> <start> <dur> <word>): {line!r}")
            try:
                start, dur = float(parts[2]), float(parts[3])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: start and duration must be numbers: {line!r}") from None
            out.setdefault(parts[0], []).append(CtmWord(parts[4], start, start + dur))
    for words in out.values():
        words.sort(key=lambda w: w.start)
    return out


def word_pairs(ref: Sequence[str], hyp: Sequence[str]) -> List[Tuple[int, int]]:
    """(i, j) of the reference and hypothesis words that a minimum-edit alignment pairs as equal (case-insensitive)."""
    r, h = [w.upper() for w in ref], [w.upper() for w in hyp]
    cost = [[0] * (len(h) + 1) for _ in range(len(r) + 1)]
    for i in range(len(r) + 1):
        cost[i][0] = i
    for j in range(len(h) + 1):
        cost[0][j] = j
    for i in range(1, len(r) + 1):
        for j in range(1, len(h) + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (r[i - 1] != h[j - 1]))
    pairs, i, j = [], len(r), len(h)
    while i > 0 and j > 0:
        if r[i - 1] == h[j - 1] and cost[i][j] == cost[i - 1][j - 1]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:  # a deletion or insertion before a substitution of equal cost:
            i -= 1                                # it may leave a pair of equal words to match
        elif cost[i][j] == cost[i][j - 1] + 1:
            j -= 1
        else:
            i, j = i - 1, j - 1
    return pairs[::-1]


def boundary_errors(ref: Mapping[str, Sequence[CtmWord]], hyp: Mapping[str, Sequence[CtmWord]]) -> dict:
    """Absolute start and end differences (s) of the words both alignments share, over the utterances of both.

    Returns {"words": paired words, "ref_words": reference words, "utts": utterances compared, "start": [...],
    "end": [...]} (the differences in the order of the utterances and words)."""
    starts: List[float] = []
    ends: List[float] = []
    ref_words = 0
    utts = sorted(set(ref) & set(hyp))
    for utt in utts:
        r, h = ref[utt], hyp[utt]
        ref_words += len(r)
        for i, j in word_pairs([w.word for w in r], [w.word for w in h]):
            starts.append(abs(r[i].start - h[j].start))
            ends.append(abs(r[i].end - h[j].end))
    return {"words": len(starts), "ref_words": ref_words, "utts": len(utts), "start": starts, "end": ends}


def _phrase_pattern(phrase: str) -> "re.Pattern[str]":
    return re.compile(r"(?<!\S)" + r"\s+".join(map(re.escape, phrase.upper().split())) + r"(?!\S)")


def phrase_count(text: str, phrase: str) -> int:
    """Occurrences of `phrase` (whole words, case-insensitive) in `text`."""
    return len(_phrase_pattern(phrase).findall(" ".join(text.upper().split())))


def hotword_recall(ref: Mapping[str, str], hyp: Mapping[str, str], phrases: Iterable[str]) -> Tuple[int, int]:
    """(found, occurring): of the listed phrases' occurrences in the references, how many the hypotheses of the same
    utterances have (per utterance and phrase, at most as many as the reference has)."""
    phrases = list(phrases)
    found = occurring = 0
    for utt, text in ref.items():
        for phrase in phrases:
            n = phrase_count(text, phrase)
            if n:
                occurring += n
                found += min(n, phrase_count(hyp.get(utt, ""), phrase))
    return found, occurring


def with_phrases(ref: Mapping[str, str], phrases: Iterable[str]) -> List[str]:
    """The utterances whose reference has one of the phrases."""
    phrases = list(phrases)
    return [utt for utt, text in ref.items() if any(phrase_count(text, p) for p in phrases)]


def kaldi_words(text: str) -> List[str]:
    """The words of a Kaldi text file's content (the first field of a line, the utterance id, skipped), upper case."""
    return [w for line in text.splitlines() for w in line.upper().split()[1:]]


def rare_words(words: Iterable[str], train_words: Iterable[str], max_count: int = 0) -> List[str]:
    """The distinct `words` (in order of first occurrence) that `train_words` holds at most `max_count` times:
    the words a biasing list is for (names, terms a model has rarely or never seen)."""
    counts = Counter(w.upper() for w in train_words)
    return [w for w in dict.fromkeys(w.upper() for w in words) if counts[w] <= max_count]


def distractors(texts: Iterable[str], exclude: Iterable[str], n: int, min_letters: int = 6) -> List[str]:
    """The `n` most frequent words of `texts` (letters only, at least `min_letters`, upper case) not in `exclude`;
    ties in alphabetical order, so the list is the same on every run."""
    banned = {w.upper() for w in exclude}
    counts = Counter(w for text in texts for w in re.findall(r"[A-Za-z]+", text.upper())
                     if len(w) >= min_letters and w not in banned)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def is_runaway(text: str, seconds: float, max_words_per_second: float = 5.0, repeat: int = 3) -> bool:
    """A hypothesis that could not have been spoken: some word n-gram (n <= 4) more than `repeat` times, or more
    than `max_words_per_second` words per second of audio (read speech has about 2.5) plus two."""
    words = text.upper().split()
    return loops(words, repeat) or len(words) > max_words_per_second * seconds + 2


def join_segments(hyp: Mapping[str, str], reference_segments: Mapping[str, str]) -> Dict[str, str]:
    """The hypotheses of the segments (`<utt> -> <recording> <start> <end>`, datadir concat's reference_segments)
    joined per recording in time order; a segment without a hypothesis adds nothing."""
    parts: Dict[str, List[Tuple[float, str]]] = {}
    for utt, value in reference_segments.items():
        rec, start, _ = value.split()
        parts.setdefault(rec, []).append((float(start), hyp.get(utt, "")))
    return {rec: " ".join(t for _, t in sorted(p) if t.strip()) for rec, p in parts.items()}


def mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def best_setting(wers: Mapping[str, float], ties: str = "largest") -> str:
    """The setting (a number, as written) of the lowest WER; ties: the `largest` number (the most conservative pause
    rule: it cuts the fewest segments) or the `smallest` (the most conservative hotword bonus)."""
    if not wers:
        raise ValueError("no setting was scored")
    if ties not in ("largest", "smallest"):
        raise ValueError(f"ties must be largest or smallest, got {ties!r}")
    sign = -1.0 if ties == "largest" else 1.0
    return min(wers, key=lambda v: (wers[v], sign * float(v)))


def command_options(command: str, names: Iterable[str]) -> str:
    """The options `names` (`--name value`) of a command line (a decode dir's command.txt), in its order."""
    words, names = command.split(), set(names)
    return " ".join(f"{w} {v}" for w, v in zip(words, words[1:]) if w in names)
