#!/usr/bin/env python3
"""Decode with the speech LLM (LLMPrefixASRModel): batched greedy search, or ESPnet's BatchBeamSearch with the LLM
scorer (KV cache), optionally joint with the model's CTC head and a length bonus.

Usage:
    # batched greedy (beam 1), one job over a whole test set, features from dump/
    python -m espnet_llm.bin.llm_asr_inference --exp_dir exp/llm_asr_lora_stride80 \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --output_dir exp/llm_asr_lora_stride80/decode_greedy/test --batch_size 8 --text_case upper

    # joint CTC / LLM beam search, job 3 of an --nj split, options from a decode YAML
    python -m espnet_llm.bin.llm_asr_inference --config conf/decode_llm_ctc0.3_beam10.yaml \
        --asr_train_config exp/llm_asr_x/config.yaml --asr_model_file exp/llm_asr_x/valid.acc.ave.pth \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --key_file exp/llm_asr_x/decode_beam10/test/logdir/keys.3.scp \
        --output_dir exp/llm_asr_x/decode_beam10/test/logdir/output.3 --beam_size 10 --ctc_weight 0.3

    # from Python
    from espnet_llm.bin.llm_asr_inference import Speech2TextLLM
    speech2text = Speech2TextLLM.from_pretrained(exp_dir="egs/an4/asr1/exp/llm_asr_x", beam_size=4)
    text, token_ids, score = speech2text(feats)[0]

Writes Kaldi-style `{output_dir}/1best_recog/{text,token,token_int,score}` (and `2best_recog/...` with --nbest).

Hallucination guards (espnet_llm.decode.guards): the length bound below; `--repeat_ngram N --repeat_max K` ends a
hypothesis (forces EOS) once its last N-gram occurs more than K times, in greedy and beam search alike; and, for a
model with a CTC head, `{output_dir}/1best_recog/ctc_disagreement` holds `<utt> <wer> <flag>` per utterance:
the WER of the LLM's 1-best against the CTC head's greedy output, flag 1 when it exceeds
`--ctc_disagreement_threshold` (a sign of hallucination worth a look, or of a weak CTC head).

Length bound: a transcript has at most `ceil(maxlenratio * T_enc) + maxlen_offset` tokens (EOS included), where
`T_enc` is the number of encoder output frames (the frames the CTC head sees; independent of the projector's
stride). Greedy and beam search use the same bound. An utterance whose prefix plus that bound does not fit in
the LLM's positions is an error that names it.

Beam search (`espnet_llm.decode.search.SettledBatchBeamSearch`) keeps a hypothesis that the length bound ended (ESPnet
appends its EOS unscored) only when none ended on its own (`--drop_forced_ends false`: ESPnet's behaviour, where such
runaways win whenever CTC's end-of-sentence score is poor).

`--beam_size 1` without CTC is batched greedy search (`espnet_llm.decode.greedy`); with `--ctc_weight > 0` it is
ESPnet's beam search with a beam of 1, since CTC prefix scores need the beam search's scorer machinery.
`--minlenratio` forbids EOS before `int(minlenratio * T_enc)` tokens in greedy search; ESPnet's beam search
instead drops hypotheses that end earlier.
"""

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet.nets.scorers.length_bonus import LengthBonus
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool, str2triple_str, str_or_none

from espnet_llm.asr.llm import load_tokenizer
from espnet_llm.decode.greedy import greedy_search, max_output_length
from espnet_llm.decode.guards import RepetitionStop, ctc_greedy_ids, word_error_rate
from espnet_llm.decode.llm_scorer import LLMPrefixScorer
from espnet_llm.decode.search import SettledBatchBeamSearch
from espnet_llm.tasks.llm_asr import FEATS_FRAME_SHIFT_MS, LLMASRTask

# model files an ESPnet exp dir may hold, in order of preference
MODEL_FILES = ("valid.acc.ave.pth", "valid.acc.best.pth", "valid.loss.ave.pth", "valid.loss.best.pth", "latest.pth")
TEXT_CASES = ("keep", "upper", "lower")

Result = Tuple[str, List[int], float]  # (text, token ids without EOS, score)


def find_model_files(exp_dir: Union[str, Path]) -> Tuple[Path, Path]:
    """(config.yaml, model file) of an ESPnet experiment directory."""
    exp_dir = Path(exp_dir)
    config = exp_dir / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{exp_dir} has no config.yaml: not a trained experiment directory")
    for name in MODEL_FILES:
        if (exp_dir / name).exists():
            return config, exp_dir / name
    raise FileNotFoundError(f"{exp_dir} has none of the model files {', '.join(MODEL_FILES)}")


class Speech2TextLLM:
    """Speech -> n-best (text, token_ids, score) with a trained LLMPrefixASRModel.

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
        self.device = device
        self.eos = int(model.eos_id)
        self.beam_size, self.ctc_weight, self.penalty = beam_size, ctc_weight, penalty
        self.maxlenratio, self.maxlen_offset, self.minlenratio = maxlenratio, maxlen_offset, minlenratio
        self.nbest, self.text_case = nbest, text_case
        self.n_vocab = model.llm.get_output_embeddings().weight.shape[0]
        config = model.llm.config.get_text_config(decoder=True)
        self.max_positions = getattr(config, "max_position_embeddings", None)

        self.use_greedy = beam_size == 1 and ctc_weight == 0.0
        self.llm_scorer = LLMPrefixScorer(model.llm)
        scorers = dict(decoder=self.llm_scorer, length_bonus=LengthBonus(self.n_vocab))
        weights = dict(decoder=1.0 - ctc_weight, length_bonus=penalty)
        self.repeat_stop = (repeat_ngram, repeat_max) if repeat_ngram > 0 else None
        if self.repeat_stop is not None:
            scorers["repetition"] = RepetitionStop(repeat_ngram, repeat_max, self.eos, self.n_vocab)
            weights["repetition"] = 1.0
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
    def from_pretrained(
        cls,
        exp_dir: Optional[Union[str, Path]] = None,
        asr_train_config: Optional[Union[str, Path]] = None,
        asr_model_file: Optional[Union[str, Path]] = None,
        device: str = "cpu",
        **kwargs,
    ) -> "Speech2TextLLM":
        """Build from an experiment directory, or from (config.yaml, model file); kwargs go to the constructor."""
        if exp_dir is not None:
            asr_train_config, asr_model_file = find_model_files(exp_dir)
        if asr_model_file is None:
            raise ValueError("give exp_dir, or asr_model_file (and asr_train_config)")
        model, train_args = LLMASRTask.build_model_from_file(asr_train_config, asr_model_file, device)
        tokenizer = load_tokenizer(train_args.llm_conf["name_or_path"], train_args.llm_conf.get("trust_remote_code", False))
        speech2text = cls(model, tokenizer, device=device, **kwargs)
        speech2text.train_args = train_args
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
        encs, prefixes = zip(*(self.encode(speech[i, : int(speech_lengths[i])]) for i in range(len(keys))))
        bounds = [self.length_bounds(enc.shape[0]) for enc in encs]
        for key, p, (maxlen, _) in zip(keys, prefixes, bounds):
            if self.max_positions is not None and p.shape[0] + maxlen > self.max_positions:
                raise ValueError(
                    f"utterance {key} is too long for the LLM: {p.shape[0]} prefix positions + up to {maxlen} "
                    f"tokens > max_position_embeddings {self.max_positions} (split the audio or lower maxlenratio)"
                )
        ctc_texts = [self.ctc_text(enc) for enc in encs] if getattr(self.model, "ctc", None) is not None else None
        if self.use_greedy:
            results = greedy_search(
                self.model.llm, prefixes, [b[0] for b in bounds], self.eos, min_lens=[b[1] for b in bounds],
                repeat_stop=self.repeat_stop,
            )
            return [
                [self._result(r.token_ids, r.score + self.penalty * (len(r.token_ids) + int(r.ended)))]
                for r in results
            ], ctc_texts
        return [self._beam(p, enc, *b) for p, enc, b in zip(prefixes, encs, bounds)], ctc_texts

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
        if self.text_case == "upper":
            text = text.upper()
        elif self.text_case == "lower":
            text = text.lower()
        return text, ids, score


def audio_seconds(speech_lengths: torch.Tensor, speech: torch.Tensor, fs: int) -> float:
    """Duration of a batch: raw audio (Batch, Samples) at `fs`, or features (Batch, Frames, Dim) at 10 ms."""
    if speech.dim() == 2:
        return float(speech_lengths.sum()) / fs
    return float(speech_lengths.sum()) * FEATS_FRAME_SHIFT_MS / 1000.0


def inference(args: argparse.Namespace) -> None:
    device = "cuda" if args.ngpu > 0 else "cpu"
    torch.manual_seed(args.seed)
    speech2text = Speech2TextLLM.from_pretrained(
        exp_dir=args.exp_dir,
        asr_train_config=args.asr_train_config,
        asr_model_file=args.asr_model_file,
        device=device,
        beam_size=args.beam_size,
        ctc_weight=args.ctc_weight,
        penalty=args.penalty,
        maxlenratio=args.maxlenratio,
        maxlen_offset=args.maxlen_offset,
        minlenratio=args.minlenratio,
        normalize_length=args.normalize_length,
        nbest=args.nbest,
        text_case=args.text_case,
        repeat_ngram=args.repeat_ngram,
        repeat_max=args.repeat_max,
        drop_forced_ends=args.drop_forced_ends,
    )
    train_args = speech2text.train_args
    batch_size = args.batch_size if speech2text.use_greedy else 1
    loader = LLMASRTask.build_streaming_iterator(
        args.data_path_and_name_and_type,
        dtype="float32",
        batch_size=batch_size,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=LLMASRTask.build_preprocess_fn(train_args, False),
        collate_fn=LLMASRTask.build_collate_fn(train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys,
        inference=True,
    )
    fs = (train_args.frontend_conf or {}).get("fs", 16000)
    mode = "greedy" if speech2text.use_greedy else f"beam {args.beam_size}, ctc_weight {args.ctc_weight}"
    logging.info(f"decoding ({mode}, batch {batch_size}) into {args.output_dir}")

    start, seconds, done, next_log = time.perf_counter(), 0.0, 0, args.log_interval
    with DatadirWriter(args.output_dir) as writer:
        for keys, batch in loader:
            lengths = batch.get("speech_lengths")
            if lengths is None:
                lengths = torch.full((len(keys),), batch["speech"].shape[1], dtype=torch.long)
            try:
                nbests, ctc_texts = speech2text.decode_batch_with_ctc(batch["speech"], lengths, keys)
            except RuntimeError as e:
                raise RuntimeError(f"decoding utterance(s) {', '.join(keys)} failed: {e}") from e
            for key, nbest in zip(keys, nbests):
                for n, (text, ids, score) in enumerate(nbest, 1):
                    out = writer[f"{n}best_recog"]
                    out["text"][key] = text
                    out["token"][key] = " ".join(speech2text.tokenizer.convert_ids_to_tokens(ids))
                    out["token_int"][key] = " ".join(map(str, ids))
                    out["score"][key] = str(score)
            for key, nbest, ctc_text in zip(keys, nbests, ctc_texts or []):
                wer = word_error_rate(ctc_text, nbest[0][0])
                flag = int(wer > args.ctc_disagreement_threshold)
                writer["1best_recog"]["ctc_disagreement"][key] = f"{wer:.4f} {flag}"
                if flag:
                    logging.warning(f"{key}: LLM and CTC disagree (WER {wer:.2f}): {nbest[0][0]!r} vs {ctc_text!r}")
            seconds += audio_seconds(lengths, batch["speech"], fs)
            done += len(keys)
            if done >= next_log:
                elapsed = time.perf_counter() - start
                logging.info(f"{done} utterances, {elapsed:.1f} s, RTF {elapsed / max(seconds, 1e-9):.3f}")
                next_log += args.log_interval
    elapsed = time.perf_counter() - start
    logging.info(f"done: {done} utterances, {seconds:.1f} s of audio in {elapsed:.1f} s, RTF {elapsed / max(seconds, 1e-9):.3f}")


def get_parser() -> argparse.ArgumentParser:
    parser = config_argparse.ArgumentParser(
        description="Speech LLM decoding (greedy or beam search with CTC)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--log_level", default="INFO", choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"))
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: one GPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--log_interval", type=int, default=50, help="log progress every N utterances")

    group = parser.add_argument_group("Input data")
    group.add_argument("--data_path_and_name_and_type", type=str2triple_str, required=True, action="append")
    group.add_argument("--key_file", type=str_or_none, help="decode only these utterances (one --nj split)")
    group.add_argument("--allow_variable_data_keys", type=str2bool, default=False)

    group = parser.add_argument_group("The model")
    group.add_argument("--exp_dir", type=str_or_none, help="experiment dir with config.yaml and a model file")
    group.add_argument("--asr_train_config", type=str_or_none, help="config.yaml (instead of --exp_dir)")
    group.add_argument("--asr_model_file", type=str_or_none, help="model .pth (instead of --exp_dir)")

    group = parser.add_argument_group("Search")
    group.add_argument("--batch_size", type=int, default=1, help="utterances per batch (greedy search only)")
    group.add_argument("--beam_size", type=int, default=1, help="1: greedy (batched unless ctc_weight > 0)")
    group.add_argument("--ctc_weight", type=float, default=0.0, help="CTC prefix score weight (needs a CTC head)")
    group.add_argument("--penalty", type=float, default=0.0, help="length bonus per token")
    group.add_argument("--maxlenratio", type=float, default=0.5, help="max tokens per encoder frame")
    group.add_argument("--maxlen_offset", type=int, default=10, help="tokens added to the max length")
    group.add_argument("--minlenratio", type=float, default=0.0, help="min tokens per encoder frame")
    group.add_argument("--normalize_length", type=str2bool, default=False, help="rank hypotheses by score / length")
    group.add_argument("--nbest", type=int, default=1)
    group.add_argument("--drop_forced_ends", type=str2bool, default=True,
                       help="beam search: drop hypotheses ended by the length bound (EOS unscored) when any ended "
                            "on its own (espnet_llm.decode.search; false: ESPnet's behaviour)")
    group.add_argument("--text_case", default="keep", choices=TEXT_CASES, help="upper: score against AN4")

    group = parser.add_argument_group("Hallucination guards")
    group.add_argument("--repeat_ngram", type=int, default=0, help="N of the repetition stop (0: off)")
    group.add_argument("--repeat_max", type=int, default=2, help="end a hypothesis whose last N-gram occurs > this")
    group.add_argument("--ctc_disagreement_threshold", type=float, default=0.5,
                       help="flag utterances whose LLM 1-best has a WER above this against the CTC greedy output")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if args.exp_dir is None and args.asr_model_file is None:
        sys.exit("give --exp_dir, or --asr_train_config and --asr_model_file")
    try:
        inference(args)
    except (ValueError, FileNotFoundError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
