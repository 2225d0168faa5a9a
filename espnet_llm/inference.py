"""The Python inference API: the speech LLM (``Speech2TextLLM``) and ESPnet's conventional AM (``Speech2TextAM``),
built from an experiment dir or a packed archive (``espnet_llm.bin.pack``), from any working directory.

Usage:
    from espnet_llm.inference import Speech2TextAM, Speech2TextLLM, load_pretrained

    s2t = Speech2TextLLM.from_pretrained("egs/an4/asr1/exp/llm_asr_whisper_ft_lora/packed.zip", text_case="upper")
    s2t.transcribe("speech.flac")                       # any format soundfile reads, any rate, mono or stereo
    s2t.transcribe(samples, sample_rate=44100)          # numpy float (in [-1, 1]) or int16 samples
    s2t.transcribe("speech.wav", return_details=True)   # Transcript(text, tokens, token_ids, score)
    text, token_ids, score = s2t(feats_or_samples)[0]   # the model's own input, n-best list

    am = Speech2TextAM.from_pretrained("egs/an4/asr1/exp/asr_conformer", beam_size=10, ctc_weight=0.3)
    am.transcribe("speech.flac")
    model = load_pretrained("packed.zip")               # either of the two, as the archive's config says

``transcribe`` brings the audio to what the model was trained on, as the config says: raw 16 kHz audio (Whisper
encoder, or an ESPnet frontend at its ``fs``) or the recipe's 80-dim Kaldi fbank features (``frontend: null``;
``espnet_llm.audio.fbank``, as ``espnet_llm.bin.feats_extract`` computes them). Files are read at their own rate
(``sample_rate`` is for arrays only), channels are averaged and the audio is resampled with scipy's polyphase
filter. An array's ``sample_rate`` defaults to the model's rate (16 kHz): give it for audio at any other rate.

Paths: an exp dir's config holds paths relative to its recipe dir; each is taken from the current directory if it
exists there, else from the recipe dir the exp dir lives in. An archive is unpacked once into a cache dir keyed by
its hash (``cache_dir``; default ``$ESPNET_LLM_CACHE`` or ``~/.cache/espnet_llm/packed``); see espnet_llm.packing.
"""
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet.nets.scorers.length_bonus import LengthBonus

from espnet_llm.asr.llm import load_tokenizer
from espnet_llm.audio import fbank, load_audio, waveform_from_array
from espnet_llm.decode.engine import load_engine
from espnet_llm.decode.greedy import DraftStats, greedy_search, max_output_length, speculative_greedy_search
from espnet_llm.decode.guards import RepetitionStop, ctc_greedy_ids, fallback_reason
from espnet_llm.decode.hotwords import HotwordScorer, llm_hotword_sequences
from espnet_llm.decode.llm_scorer import LLMPrefixScorer
from espnet_llm.decode.search import SettledBatchBeamSearch
from espnet_llm.longform import (WHISPER_SECONDS, LongTranscript, check_split_pause, has_speech, needs_segmenting,
                                 segment_limit, speech_segments, transcribe_segments)
from espnet_llm.packing import MODEL_FILES, ModelFiles, PackError, find_model_files, locate, write_config
from espnet_llm.tasks.llm_asr import LLMASRTask

__all__ = ["MODEL_FILES", "SpeechInput", "Speech2TextAM", "Speech2TextLLM", "TEXT_CASES", "Transcript",
           "find_model_files", "load_pretrained", "speech_input"]

TEXT_CASES = ("keep", "upper", "lower")
FALLBACKS = ("none", "joint", "ctc")
FBANK_FS = 16000  # the recipe's features: espnet_llm.bin.feats_extract --fs 16000

Result = Tuple[str, List[int], float]  # (text, token ids without EOS, score)


class Transcript(NamedTuple):
    """The best hypothesis of ``transcribe(..., return_details=True)``."""

    text: str
    tokens: List[str]  # the model's units (LLM tokens, or the AM's BPE pieces)
    token_ids: List[int]
    score: float  # the search's total log score


@dataclass(frozen=True)
class SpeechInput:
    """What a model reads: ``raw`` samples at ``fs``, or ``fbank`` features (``num_mel_bins``) of audio at ``fs``."""

    kind: str
    fs: int
    num_mel_bins: Optional[int] = None


def speech_input(train_args) -> SpeechInput:
    """The input a model was trained on, from its config (a dict or ESPnet's argparse.Namespace).

    An ESPnet frontend (``frontend: default``) or the Whisper encoder takes raw audio; ``frontend: null`` with
    another encoder takes features of ``input_size`` mel bins (the recipe's dump/fbank).
    """
    conf = train_args if isinstance(train_args, dict) else vars(train_args)
    if conf.get("frontend") is not None:
        fs = (conf.get("frontend_conf") or {}).get("fs", 16000)
        if isinstance(fs, str):  # ESPnet's frontends take "16k"
            import humanfriendly

            fs = humanfriendly.parse_size(fs)
        return SpeechInput("raw", int(fs))
    if conf.get("encoder") == "whisper":
        return SpeechInput("raw", 16000)
    if not conf.get("input_size"):
        raise PackError("the config has neither a frontend nor an input_size: cannot tell what the model reads")
    return SpeechInput("fbank", FBANK_FS, int(conf["input_size"]))


def apply_text_case(text: str, text_case: str) -> str:
    if text_case not in TEXT_CASES:
        raise ValueError(f"text_case must be one of {TEXT_CASES}, got {text_case!r}")
    return text.upper() if text_case == "upper" else text.lower() if text_case == "lower" else text


class _Transcribe:
    """``transcribe`` on files and arrays, for a class with ``speech_input`` and ``_best(model input)``."""

    speech_input: Optional[SpeechInput] = None

    def prepare(self, audio, sample_rate: Optional[int] = None) -> np.ndarray:
        """A path (any format soundfile reads) or an array (float, int16; (Samples,) or (Samples, Channels))
        -> the model's input: mono samples at its rate, or its fbank features (Frames, num_mel_bins)."""
        return self.model_input(self.waveform(audio, sample_rate))

    def model_input(self, wav: np.ndarray) -> np.ndarray:
        """Mono samples at the model's rate -> what the model reads (the samples, or their fbank)."""
        spec = self.speech_input
        return fbank(wav, spec.fs, spec.num_mel_bins).numpy() if spec.kind == "fbank" else wav

    def waveform(self, audio, sample_rate: Optional[int] = None) -> np.ndarray:
        """A path or an array (see ``prepare``) -> mono float samples at the model's rate."""
        spec = self.speech_input
        if spec is None:
            raise ValueError("the model's input is unknown: build it with from_pretrained (the config tells it)")
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise ValueError(f"sample_rate is for arrays; {audio} is read at its own rate")
            wav = load_audio(audio, spec.fs)
        else:
            if isinstance(audio, torch.Tensor):
                audio = audio.detach().cpu().numpy()
            wav = waveform_from_array(audio, spec.fs if sample_rate is None else sample_rate, spec.fs)
        return wav

    @classmethod
    def from_pretrained(
        cls,
        exp_dir: Optional[Union[str, Path]] = None,
        asr_train_config: Optional[Union[str, Path]] = None,
        asr_model_file: Optional[Union[str, Path]] = None,
        device: str = "cpu",
        cache_dir: Optional[Union[str, Path]] = None,
        **kwargs,
    ):
        """Build from an experiment dir or a packed archive (``espnet_llm.bin.pack``), or from (config.yaml, model
        file); with an exp dir, ``asr_model_file`` may name another of its model files. kwargs go to ``from_files``
        (Speech2TextLLM: its constructor; Speech2TextAM: text_case and ESPnet's Speech2Text options)."""
        return cls.from_files(locate(exp_dir, asr_train_config, asr_model_file, cache_dir), device, **kwargs)

    def transcribe(self, audio, sample_rate: Optional[int] = None, return_details: bool = False,
                   long_form: Union[bool, str] = "auto", max_segment_seconds: float = WHISPER_SECONDS,
                   batch_size: int = 8, merge_segment_seconds: Optional[float] = None,
                   split_pause_seconds: Optional[float] = None, vad_gate: bool = False):
        """The best transcript of a recording: ``audio`` is a path or an array (see ``prepare``; an array's
        ``sample_rate`` defaults to the model's, 16 kHz). ``return_details``: a ``Transcript`` instead of the text.

        A recording longer than a segment may be (``long_form="auto"``: ``merge_segment_seconds`` if given, else
        ``max_segment_seconds``; True: every recording; False: none) is cut at
        its pauses by a voice activity detector into segments of at most that length (espnet_llm.longform), decoded
        ``batch_size`` segments at a time, and stitched; with ``return_details`` the result is then a
        ``LongTranscript`` (text, segments with their start and end seconds). Pauses join speech into one segment
        only up to ``merge_segment_seconds`` (default ``max_segment_seconds``): a model trained on short utterances
        transcribes segments of about their length, not 30 s of several. ``split_pause_seconds`` (default None:
        off; else > 0): never across a pause at least that long either (measured between the detector's speech
        regions, before its padding), so that no segment spans a sentence-level pause. ``vad_gate``: a recording in
        which the voice activity detector finds no speech is not decoded: its transcript is empty (with
        ``return_details``, a ``LongTranscript`` without segments)."""
        check_split_pause(split_pause_seconds)
        wav = self.waveform(audio, sample_rate)
        fs = self.speech_input.fs
        if vad_gate and not has_speech(wav, fs):
            return LongTranscript("", []) if return_details else ""
        limit = segment_limit(max_segment_seconds, merge_segment_seconds)
        if long_form is True or (long_form == "auto" and needs_segmenting(len(wav), fs, limit)):
            segments = speech_segments(wav, fs, max_segment_seconds, merge_seconds=merge_segment_seconds,
                                       split_pause_seconds=split_pause_seconds)
            result = transcribe_segments(lambda inputs: [t.text for t in self._best_batch(inputs)], wav, fs,
                                         segments, batch_size, to_input=self.model_input)
            return result if return_details else result.text
        best = self._best(self.model_input(wav))
        return best if return_details else best.text

    def _best(self, speech: np.ndarray) -> Transcript:
        raise NotImplementedError

    def _best_batch(self, inputs: Sequence[np.ndarray]) -> List[Transcript]:
        return [self._best(x) for x in inputs]

    def check_input(self, speech) -> None:
        """``__call__`` takes the model's own input; refuse what would decode garbage or allocate without bound:
        a path (that is ``transcribe``'s), an empty or non-finite array, samples given to a features model."""
        if isinstance(speech, (str, os.PathLike)):
            raise ValueError(f"__call__ takes the model's input as an array; for the file {speech} use transcribe()")
        shape = tuple(getattr(speech, "shape", ()))
        if not shape or shape[0] == 0 or int(np.prod(shape)) == 0:
            raise ValueError(f"empty input (shape {shape})")
        values = speech if isinstance(speech, torch.Tensor) else torch.as_tensor(np.asarray(speech))
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            raise ValueError("the input holds NaN or infinite values")
        spec = self.speech_input
        if spec is None:
            return
        if spec.kind == "fbank" and (len(shape) != 2 or shape[1] != spec.num_mel_bins):
            raise ValueError(f"this model reads fbank features (Frames, {spec.num_mel_bins}), got shape {shape}; for "
                             "audio samples use transcribe(samples, sample_rate)")
        if spec.kind == "raw" and len(shape) != 1:
            raise ValueError(f"this model reads mono samples (Samples,) at {spec.fs} Hz, got shape {shape}; "
                             "transcribe(samples, sample_rate) averages channels and resamples")


def _built(files: ModelFiles, build):
    """``build(config file)`` on the resolved config, written to a temporary file for ESPnet's build_model_from_file;
    the model file loads as weights only (ESPnet's loader would unpickle code: espnet_llm.exp_dir)."""
    from espnet_llm.exp_dir import weights_only_torch_load

    with tempfile.TemporaryDirectory(prefix="espnet_llm_config_") as tmp, weights_only_torch_load():
        return build(write_config(files.config, Path(tmp) / "config.yaml"))


class Speech2TextLLM(_Transcribe):
    """Speech -> n-best (text, token_ids, score) with a trained LLMPrefixASRModel; ``transcribe`` on audio.

    Args:
        model: the trained model (its `.llm`, `.ctc`, `.eos_id`, `encode_frames`, `project`, `prefix_from_audio`).
        tokenizer: the LLM's tokenizer.
        beam_size: 1 = greedy (batched; beam search with a beam of 1 when ctc_weight > 0).
        ctc_weight: weight of the CTC prefix score (the LLM gets 1 - ctc_weight); needs the model's CTC head.
        penalty: length bonus per token (EOS included).
        maxlenratio, maxlen_offset: length bound `ceil(maxlenratio * T_enc) + maxlen_offset` tokens.
        minlenratio: at least `int(minlenratio * T_enc)` tokens (see the module doc).
        normalize_length: rank beam-search hypotheses by score / length.
        nbest: hypotheses returned (beam search only; greedy gives one).
        text_case: "keep", "upper" or "lower" for the returned text (AN4 references are upper case).
        repeat_ngram, repeat_max: end a hypothesis whose last `repeat_ngram`-gram occurs more than `repeat_max`
            times (0: off).
        speculative: greedy search verifying the CTC head's best path as a draft, `draft_window` tokens per LLM
            forward (espnet_llm.decode.greedy.speculative_greedy_search): greedy's output, fewer LLM forwards.
            Needs a CTC head; `draft_stats` sums what it did.
        hotwords, hotword_bonus: words or phrases biased in the beam search (espnet_llm.decode.hotwords: +bonus
            per LLM token of a listed phrase, taken back when the match fails); turns greedy into a beam search.
        hotword_lowercase: tokenise the hotwords lower-cased (a model trained with text_lowercase;
            from_pretrained sets it from the training config).
        fallback: "none", "joint" or "ctc": when the 1-best loops (an n-gram, n <= 4, more than `fallback_repeat`
            times), runs to the length bound, or differs from the CTC head's best path by a word error rate above
            `fallback_threshold`, the utterance is decoded again by a joint CTC beam search at
            `fallback_ctc_weight` ("joint") or gets the CTC best path ("ctc"); `fallbacks` says which and why.
        llm_engine, llm_precision, llm_engine_dir: what runs the LLM's forward in every search
            (espnet_llm.decode.engine): "hf" (the Hugging Face model, the default), "openvino" (f32, bf16, int8)
            or "onnxruntime" (f32), exported into `llm_engine_dir` (reused while the weights are the same; None: a
            temporary dir); or an engine already built.
        device: torch device.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        beam_size: int = 1,
        ctc_weight: float = 0.0,
        penalty: float = 0.0,
        maxlenratio: float = 0.5,
        maxlen_offset: int = 10,
        minlenratio: float = 0.0,
        normalize_length: bool = False,
        nbest: int = 1,
        text_case: str = "keep",
        repeat_ngram: int = 0,
        repeat_max: int = 2,
        drop_forced_ends: bool = True,
        speculative: bool = False,
        draft_window: int = 16,
        hotwords: Optional[Sequence[str]] = None,
        hotword_bonus: float = 1.0,
        hotword_lowercase: bool = False,
        fallback: str = "none",
        fallback_threshold: float = 0.5,
        fallback_ctc_weight: float = 0.5,
        fallback_repeat: int = 4,
        llm_engine: Union[str, torch.nn.Module] = "hf",
        llm_precision: str = "f32",
        llm_engine_dir: Optional[Union[str, Path]] = None,
        device: str = "cpu",
    ):
        if beam_size < 1 or nbest < 1 or nbest > beam_size:
            raise ValueError(f"need 1 <= nbest ({nbest}) <= beam_size ({beam_size})")
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if ctc_weight > 0.0 and getattr(model, "ctc", None) is None:
            raise ValueError("ctc_weight > 0 needs a model trained with a CTC head (model_conf.ctc_weight > 0)")
        if text_case not in TEXT_CASES:
            raise ValueError(f"text_case must be one of {TEXT_CASES}, got {text_case!r}")
        max_output_length(1, maxlenratio, maxlen_offset)  # raises on negative values
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.train_args = None  # the training config (from_pretrained)
        self.device = device
        self.eos = int(model.eos_id)
        self.beam_size, self.ctc_weight, self.penalty = beam_size, ctc_weight, penalty
        self.maxlenratio, self.maxlen_offset, self.minlenratio = maxlenratio, maxlen_offset, minlenratio
        self.nbest, self.text_case = nbest, text_case
        if isinstance(llm_engine, str):
            if llm_engine != "hf" and device != "cpu":
                raise ValueError(f"LLM engine {llm_engine} runs on the CPU; use llm_engine hf on {device}")
            llm_engine = load_engine(self.model.llm, llm_engine, llm_precision, llm_engine_dir)
        self.llm = llm_engine  # what runs the LLM's forward (the HF model itself for "hf")
        self.n_vocab = model.llm.get_output_embeddings().weight.shape[0]
        config = model.llm.config.get_text_config(decoder=True)
        self.max_positions = getattr(config, "max_position_embeddings", None)

        self.use_greedy = beam_size == 1 and ctc_weight == 0.0 and not hotwords
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        if fallback != "none" and getattr(model, "ctc", None) is None:
            raise ValueError("a CTC fallback needs a model trained with a CTC head (model_conf.ctc_weight > 0)")
        self.fallback, self.fallback_threshold = fallback, fallback_threshold
        self.fallback_ctc_weight, self.fallback_repeat = fallback_ctc_weight, fallback_repeat
        self._fallback_search: Optional["Speech2TextLLM"] = None
        self.fallbacks: List[str] = []  # per utterance of the last batch: why it fell back ("" when it did not)
        self.hotword_lowercase = hotword_lowercase  # the LLM reads lower-cased text (hotwords, word times)
        if speculative and (not self.use_greedy or getattr(model, "ctc", None) is None):
            raise ValueError("speculative decoding is greedy search (beam_size 1, ctc_weight 0) with a CTC head's draft")
        if draft_window < 1:
            raise ValueError(f"draft_window must be >= 1, got {draft_window}")
        self.speculative, self.draft_window = speculative, draft_window
        self.draft_stats = DraftStats(0, 0, 0, 0)
        self.llm_scorer = LLMPrefixScorer(self.llm)
        scorers = dict(decoder=self.llm_scorer, length_bonus=LengthBonus(self.n_vocab))
        weights = dict(decoder=1.0 - ctc_weight, length_bonus=penalty)
        self.repeat_stop = (repeat_ngram, repeat_max) if repeat_ngram > 0 else None
        if self.repeat_stop is not None:
            scorers["repetition"] = RepetitionStop(repeat_ngram, repeat_max, self.eos, self.n_vocab)
            weights["repetition"] = 1.0
        self.hotword_scorer = None
        if hotwords:
            sequences = llm_hotword_sequences(tokenizer, hotwords, lowercase=hotword_lowercase)
            self.hotword_scorer = HotwordScorer(sequences, self.n_vocab, hotword_bonus)
            scorers["hotword"] = self.hotword_scorer
            weights["hotword"] = 1.0
        if ctc_weight > 0.0:
            ctc_vocab = getattr(model.ctc, "vocab_size", model.ctc.ctc_lo.out_features)  # SubsetCTC: the LLM's
            if ctc_vocab != self.n_vocab:
                raise ValueError(f"CTC vocab {ctc_vocab} != LLM vocab {self.n_vocab}")
            scorers["ctc"] = CTCPrefixScorer(ctc=model.ctc, eos=self.eos)
            weights["ctc"] = ctc_weight
        self.beam_search = SettledBatchBeamSearch(  # ESPnet's, ending once the n-best cannot change
            nbest=nbest,
            drop_forced_ends=drop_forced_ends,
            scorers=scorers,
            weights=weights,
            beam_size=beam_size,
            vocab_size=self.n_vocab,
            sos=self.eos,  # a start marker the LLM scorer never feeds (see espnet_llm.decode.llm_scorer)
            eos=self.eos,
            token_list=None,
            pre_beam_score_key=None if ctc_weight == 1.0 else "full",
            normalize_length=normalize_length,
        ).to(device).eval()

    @classmethod
    def from_files(cls, files: ModelFiles, device: str = "cpu", **kwargs) -> "Speech2TextLLM":
        """Build from a located system (``espnet_llm.packing.locate``)."""
        if files.kind != "speech_llm":
            raise PackError(f"{files.config_file} is an ESPnet ASR model's config: load it with Speech2TextAM")
        model, train_args = _built(files, lambda config: LLMASRTask.build_model_from_file(config, files.model_file, device))
        tokenizer = load_tokenizer(train_args.llm_conf["name_or_path"], train_args.llm_conf.get("trust_remote_code", False))
        kwargs.setdefault("hotword_lowercase", bool(getattr(train_args, "text_lowercase", False)))
        speech2text = cls(model, tokenizer, device=device, **kwargs)
        speech2text.train_args = train_args
        speech2text.speech_input = speech_input(train_args)
        return speech2text

    def length_bounds(self, encoder_frames: int) -> Tuple[int, int]:
        """(max, min) tokens of the transcript of an utterance with `encoder_frames` encoder output frames.

        With CTC, at most `encoder_frames` tokens: CTC cannot emit more labels than frames, and ESPnet's
        CTCPrefixScoreTH fails with an IndexError on a hypothesis longer than the encoder output.
        """
        maxlen = max_output_length(encoder_frames, self.maxlenratio, self.maxlen_offset)
        if self.ctc_weight > 0.0:
            maxlen = min(maxlen, max(1, encoder_frames))
        return maxlen, min(int(self.minlenratio * encoder_frames), maxlen)

    @torch.no_grad()
    def __call__(self, speech: Union[np.ndarray, torch.Tensor]) -> List[Result]:
        """One utterance, (Samples,) or (Frames, Dim) -> n-best list of (text, token_ids, score), best first."""
        self.check_input(speech)
        speech = torch.as_tensor(np.asarray(speech) if isinstance(speech, np.ndarray) else speech)
        lengths = torch.tensor([speech.shape[0]])
        return self.decode_batch(speech[None], lengths)[0]

    @torch.no_grad()
    def decode_batch(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, keys: Optional[Sequence[str]] = None
    ) -> List[List[Result]]:
        """A padded batch (Batch, Samples or Frames[, Dim]) -> one n-best list per utterance."""
        return self.decode_batch_with_ctc(speech, speech_lengths, keys)[0]

    @torch.no_grad()
    def decode_batch_with_ctc(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, keys: Optional[Sequence[str]] = None
    ) -> Tuple[List[List[Result]], Optional[List[str]]]:
        """`decode_batch`, and the CTC head's greedy text per utterance (None without a CTC head)."""
        keys = list(keys) if keys is not None else [f"input {i}" for i in range(len(speech))]
        encoded = []
        for i, key in enumerate(keys):
            try:
                encoded.append(self.encode(speech[i, : int(speech_lengths[i])]))
            except (RuntimeError, ValueError, AssertionError) as e:  # e.g. longer than the encoder's window
                seconds = int(speech_lengths[i]) / (self.speech_input.fs if self.speech_input else 16000)
                raise ValueError(f"utterance {key} ({int(speech_lengths[i])} samples or frames, "
                                 f"{seconds:.1f} s if samples) cannot be encoded: {e}") from e
        encs, prefixes = zip(*encoded)
        bounds = [self.length_bounds(enc.shape[0]) for enc in encs]
        for key, p, (maxlen, _) in zip(keys, prefixes, bounds):
            if self.max_positions is not None and p.shape[0] + maxlen > self.max_positions:
                raise ValueError(
                    f"utterance {key} is too long for the LLM: {p.shape[0]} prefix positions + up to {maxlen} "
                    f"tokens > max_position_embeddings {self.max_positions} (split the audio or lower maxlenratio)"
                )
        ctc_texts = [self.ctc_text(enc) for enc in encs] if getattr(self.model, "ctc", None) is not None else None
        if self.use_greedy and self.speculative:
            drafts = [ctc_greedy_ids(self.model.ctc.log_softmax(enc[None])[0]) for enc in encs]
            results, stats = speculative_greedy_search(
                self.llm, prefixes, drafts, [b[0] for b in bounds], self.eos, min_lens=[b[1] for b in bounds],
                repeat_stop=self.repeat_stop, window=self.draft_window,
            )
            self.draft_stats = DraftStats(*(a + b for a, b in zip(self.draft_stats, stats)))
            nbests = [[self._result(r.token_ids, r.score + self.penalty * (len(r.token_ids) + int(r.ended)))]
                      for r in results]
        elif self.use_greedy:
            results = greedy_search(
                self.llm, prefixes, [b[0] for b in bounds], self.eos, min_lens=[b[1] for b in bounds],
                repeat_stop=self.repeat_stop,
            )
            nbests = [[self._result(r.token_ids, r.score + self.penalty * (len(r.token_ids) + int(r.ended)))]
                      for r in results]
        else:
            nbests = [self._beam(p, enc, *b) for p, enc, b in zip(prefixes, encs, bounds)]
        self.fallbacks = [""] * len(nbests)
        if self.fallback != "none":
            for i, (enc, prefix, (maxlen, minlen)) in enumerate(zip(encs, prefixes, bounds)):
                reason = fallback_reason(nbests[i][0][1], nbests[i][0][0], ctc_texts[i], maxlen,
                                         self.fallback_threshold, self.fallback_repeat)
                if reason:
                    self.fallbacks[i] = reason
                    nbests[i] = self._fall_back(enc, prefix, ctc_texts[i])
        return nbests, ctc_texts

    def _fall_back(self, enc: torch.Tensor, prefix: torch.Tensor, ctc_text: str) -> List[Result]:
        """The CTC head's best path (fallback "ctc"), or a joint CTC beam search at fallback_ctc_weight ("joint")."""
        if self.fallback == "ctc":
            ids = ctc_greedy_ids(self.model.ctc.log_softmax(enc[None])[0])
            return [self._result(ids, 0.0)]
        if self._fallback_search is None:
            self._fallback_search = Speech2TextLLM(
                self.model, self.tokenizer, beam_size=max(self.beam_size, 4), ctc_weight=self.fallback_ctc_weight,
                maxlenratio=self.maxlenratio, maxlen_offset=self.maxlen_offset, text_case=self.text_case,
                repeat_ngram=self.repeat_stop[0] if self.repeat_stop else 0,
                repeat_max=self.repeat_stop[1] if self.repeat_stop else 2, llm_engine=self.llm, device=self.device)
        other = self._fallback_search
        return other._beam(prefix, enc, *other.length_bounds(enc.shape[0]))[:1]

    @torch.no_grad()
    def word_times(self, speech: Union[np.ndarray, torch.Tensor], text: Optional[str] = None) -> List["WordTime"]:
        """Start and end seconds of each word of `text` (default: the 1-best) in one utterance (the model's input),
        by CTC segmentation on the model's CTC head (espnet_llm.decode.timestamps)."""
        from espnet_llm.decode.timestamps import align_words

        if getattr(self.model, "ctc", None) is None:
            raise ValueError("word times need a model trained with a CTC head (model_conf.ctc_weight > 0)")
        self.check_input(speech)
        speech = torch.as_tensor(np.asarray(speech) if isinstance(speech, np.ndarray) else speech)
        if text is None:
            text = self(speech)[0][0]
        enc, _ = self.encode(speech)
        kind = self.speech_input.kind if self.speech_input is not None else ("raw" if speech.dim() == 1 else "fbank")
        seconds = speech.shape[0] / (self.speech_input.fs if self.speech_input else 16000) if kind == "raw" \
            else speech.shape[0] * 0.01  # fbank: 10 ms frames
        words = text.split()
        units = []
        for i, word in enumerate(words):
            form = (word.lower() if self.hotword_lowercase else word) if i == 0 else " " + (
                word.lower() if self.hotword_lowercase else word)
            ids = self.tokenizer(form, add_special_tokens=False)["input_ids"]
            units.append(self.model.ctc.to_units(torch.tensor(ids)).tolist() if hasattr(self.model.ctc, "to_units")
                         else ids)
        if hasattr(self.model.ctc, "unit_log_softmax"):
            log_probs = self.model.ctc.unit_log_softmax(enc[None])[0]
        else:
            log_probs = self.model.ctc.log_softmax(enc[None])[0]
        return align_words(log_probs.cpu().numpy(), words, units, seconds / enc.shape[0])

    def ctc_text(self, enc: torch.Tensor) -> str:
        """The CTC head's best path over encoder output (T_enc, D_enc), as text in `text_case`."""
        return self._result(ctc_greedy_ids(self.model.ctc.log_softmax(enc[None])[0]), 0.0)[0]

    def encode(self, speech: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One utterance (Samples or Frames[, Dim]) -> encoder output (T_enc, D_enc) and prefix (P, D_llm).

        Utterances are encoded one at a time: ESPnet's conv2d subsampling gives a padded utterance one more
        frame than the same utterance alone, so batched encoding would make results depend on --batch_size.
        Only the LLM search is batched.
        """
        speech = speech[None].to(self.device, dtype=torch.float32)
        lengths = torch.tensor([speech.shape[1]], device=self.device)
        enc, enc_lens = self.model.encode_frames(speech, lengths)  # (1, T_enc, D_enc)
        audio, audio_lens = self.model.project(enc, enc_lens)  # (1, T', D_llm)
        prefix, prefix_lens = self.model.prefix_from_audio(audio, audio_lens)  # (1, P, D_llm)
        return enc[0, : int(enc_lens[0])], prefix[0, : int(prefix_lens[0])]

    def _beam(self, prefix: torch.Tensor, enc: torch.Tensor, maxlen: int, minlen: int) -> List[Result]:
        self.llm_scorer.set_prefix(prefix)
        # negative ratios are ESPnet's way of giving the bounds as token counts
        hyps = self.beam_search(x=enc, maxlenratio=-maxlen, minlenratio=-minlen if minlen > 0 else 0.0)
        results = []
        for hyp in hyps[: self.nbest]:
            ids = hyp.yseq[1:].tolist()
            while ids and ids[-1] == self.eos:
                ids.pop()
            results.append(self._result(ids, float(hyp.score)))
        return results or [self._result([], float("-inf"))]

    def _result(self, ids: List[int], score: float) -> Result:
        text = " ".join(self.tokenizer.decode(ids, skip_special_tokens=True).split())
        return apply_text_case(text, self.text_case), ids, score

    def _best(self, speech: np.ndarray) -> Transcript:
        text, ids, score = self(speech)[0]
        return Transcript(text, list(self.tokenizer.convert_ids_to_tokens(ids)), list(ids), float(score))

    def _best_batch(self, inputs: Sequence[np.ndarray]) -> List[Transcript]:
        """Segments of a long recording: one padded batch (greedy search is batched; a beam search goes one by one)."""
        for x in inputs:
            self.check_input(x)
        lengths = torch.tensor([len(x) for x in inputs])
        padded = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(np.asarray(x)) for x in inputs], batch_first=True)
        nbests = self.decode_batch(padded, lengths, keys=[f"segment {i}" for i in range(len(inputs))])
        return [Transcript(text, list(self.tokenizer.convert_ids_to_tokens(ids)), list(ids), float(score))
                for (text, ids, score), *_ in nbests]


class Speech2TextAM(_Transcribe):
    """ESPnet's ``Speech2Text`` (CTC/attention beam search) of a conventional AM, with ``transcribe`` on audio.

    Args:
        speech2text: ``espnet2.bin.asr_inference.Speech2Text`` of the AM.
        text_case: "keep", "upper" or "lower" for ``transcribe``'s text.
    """

    def __init__(self, speech2text, text_case: str = "keep"):
        apply_text_case("", text_case)
        self.speech2text = speech2text
        self.text_case = text_case
        self.train_args = speech2text.asr_train_args
        self.speech_input = speech_input(self.train_args)

    @classmethod
    def from_files(cls, files: ModelFiles, device: str = "cpu", text_case: str = "keep", **kwargs) -> "Speech2TextAM":
        """Build from a located system (``espnet_llm.packing.locate``)."""
        import espnet_llm.tasks.asr  # noqa: F401  the project's encoders among ESPnet's choices
        from espnet2.bin.asr_inference import Speech2Text

        if files.kind != "asr":
            raise PackError(f"{files.config_file} is a speech LLM's config: load it with Speech2TextLLM")
        speech2text = _built(
            files, lambda config: Speech2Text(asr_train_config=config, asr_model_file=files.model_file,
                                              device=device, **kwargs)
        )
        return cls(speech2text, text_case)

    def __call__(self, speech: Union[np.ndarray, torch.Tensor]):
        """ESPnet's n-best [(text, tokens, token_ids, hypothesis)] of the model's own input (samples or features)."""
        self.check_input(speech)
        return self.speech2text(speech)

    def _best(self, speech: np.ndarray) -> Transcript:
        text, tokens, token_ids, hyp = self.speech2text(speech)[0]
        return Transcript(apply_text_case(text, self.text_case), list(tokens), [int(i) for i in token_ids],
                          float(hyp.score))


def load_pretrained(
    model: Union[str, Path],
    asr_model_file: Optional[Union[str, Path]] = None,
    device: str = "cpu",
    cache_dir: Optional[Union[str, Path]] = None,
    **kwargs,
) -> Union[Speech2TextLLM, Speech2TextAM]:
    """A speech LLM's Speech2TextLLM or an AM's Speech2TextAM, as the config of the exp dir or archive says;
    kwargs go to its constructor (both take text_case, beam_size, ctc_weight, penalty, nbest)."""
    files = locate(model, asr_model_file=asr_model_file, cache_dir=cache_dir)
    cls = Speech2TextLLM if files.kind == "speech_llm" else Speech2TextAM
    return cls.from_files(files, device, **kwargs)
