#!/usr/bin/env python3
"""Decode with the conventional AM (ESPnet's Speech2Text, CTC/attention beam search) fused with a text-only LLM.

Usage:
    # delayed fusion: any HF causal LM (its own tokenizer), scoring every AM token one step late
    # (--delay token, the default; --delay word: only at word ends)
    python -m espnet_llm.bin.asr_fusion_inference --ngpu 0 --config conf/decode_asr_fusion_delayed.yaml \
        --asr_train_config exp/asr_conformer/config.yaml --asr_model_file exp/asr_conformer/valid.acc.ave.pth \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --output_dir exp/asr_conformer/decode_asr_fusion_delayed/test --llm exp/llm_text_an4 --lm_weight 0.3

    # label-wise fusion: an LLM whose vocabulary is the AM's token list (llm_text_train --units am)
    python -m espnet_llm.bin.asr_fusion_inference --fusion labelwise --llm exp/llm_text_an4_bpe30 --lm_weight 0.3 ...

    # hotword biasing (any --fusion): listed words or phrases get a bonus per AM unit, taken back on a failed match
    python -m espnet_llm.bin.asr_fusion_inference --hotwords hotwords.txt --hotword_bonus 1.5 ...

    # N-best rescoring of the AM's 10 best
    python -m espnet_llm.bin.asr_fusion_inference --fusion rescore --nbest_rescore 10 --beam_size 10 --llm ... ...

    # from Python
    s2t = Speech2TextFusion.build("exp/asr_x/config.yaml", "exp/asr_x/valid.acc.ave.pth", fusion="delayed",
                                  llm="exp/llm_text_an4", lm_weight=0.3, beam_size=10, ctc_weight=0.3)
    text, token, token_int, score, terms = s2t(feats)[0]

`--fusion`: `none` (the AM alone, as espnet_llm.bin.asr_inference), `labelwise`, `delayed` (one beam search with
the LLM as ESPnet's `lm` scorer, weight `--lm_weight`; see espnet_llm.decode.fusion), `rescore` (the AM's
`--nbest_rescore` best re-ranked by am_score + lm_weight * llm_score + word_bonus * n_words; see
espnet_llm.decode.rescoring). Writes `{output_dir}/1best_recog/{text,token,token_int,score}` like ESPnet, and
`1best_recog/score_terms` with each term of the chosen hypothesis' score.

`--llm` is a local Hugging Face directory, or a peft LoRA adapter directory (adapter_config.json) whose base model
directory is local; the adapters are merged for decoding.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool, str2triple_str, str_or_none

from espnet_llm.bin import UsageHelpFormatter

# torch, ESPnet's search and the LLM are imported where they are used: --help needs none of them
FUSIONS = ("none", "labelwise", "delayed", "rescore")
TEXT_CASES = ("keep", "lower", "upper")  # espnet_llm.decode.fusion.TEXT_CASES
DELAYS = ("word", "token")
ENGINES = ("hf", "openvino", "onnxruntime")  # espnet_llm.decode.engine.ENGINES (checked by a test)  # espnet_llm.decode.fusion.DelayedLLMScorer.DELAYS
Result = Tuple[str, List[str], List[int], float, Dict[str, float]]  # text, tokens, token ids, score, score terms


def load_fusion_llm(path: Union[str, Path], device: str = "cpu"):
    """(causal LM in eval mode, tokenizer or None) from a local HF directory or a LoRA adapter directory."""
    from transformers import AutoModelForCausalLM

    from espnet_llm.asr.llm import check_llm_dir, load_tokenizer

    path = Path(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftConfig, PeftModel

        base = check_llm_dir(PeftConfig.from_pretrained(str(path)).base_model_name_or_path)
        llm = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
        llm = PeftModel.from_pretrained(llm, str(path), local_files_only=True).merge_and_unload()
        tok_dir = path if (path / "tokenizer_config.json").is_file() else base
    else:
        check_llm_dir(path)
        llm = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        tok_dir = path
    tokenizer = load_tokenizer(tok_dir) if (tok_dir / "tokenizer_config.json").is_file() else None
    return llm.to(device).eval().requires_grad_(False), tokenizer


def with_scorer(beam_search: BeamSearch, name: str, scorer: ScorerInterface, weight: float) -> BeamSearch:
    """A copy of ESPnet's beam search (same class, scorers, weights and options) with one more weighted scorer."""
    import torch

    new = type(beam_search)(
        scorers={**beam_search.scorers, name: scorer},
        weights={**beam_search.weights, name: weight},
        beam_size=beam_search.beam_size,
        vocab_size=beam_search.n_vocab,
        sos=beam_search.sos,
        eos=beam_search.eos,
        token_list=beam_search.token_list,
        pre_beam_ratio=beam_search.pre_beam_size / beam_search.beam_size,
        pre_beam_score_key=beam_search.pre_beam_score_key,
        normalize_length=beam_search.normalize_length,
    )
    return new.to(next(iter(beam_search.parameters()), torch.empty(0)).device).eval()


class Speech2TextFusion:
    """ESPnet's Speech2Text with an LLM fused in (`fusion`), returning n-best (text, tokens, ids, score, terms).

    Args:
        speech2text: ESPnet's Speech2Text of the AM (its nbest >= nbest_rescore for rescoring).
        fusion: one of FUSIONS.
        llm, tokenizer: the text LLM (tokenizer not needed for labelwise).
        lm_weight: weight of the LLM's scores.
        llm_text_case: case of the text the LLM reads (delayed, rescore).
        word_bonus: per-word bonus of N-best rescoring.
        delay: delayed fusion's "word" (scores at word ends) or "token" (every AM token, one step late).
        hotwords, hotword_bonus: words or phrases biased in the beam search (espnet_llm.decode.hotwords, on the
            AM's BPE units: +bonus per unit of a listed phrase, taken back when the match fails).
    """

    def __init__(
        self,
        speech2text: Speech2Text,
        fusion: str = "none",
        llm: Optional[torch.nn.Module] = None,
        tokenizer=None,
        lm_weight: float = 0.0,
        llm_text_case: str = "lower",
        word_bonus: float = 0.0,
        delay: str = "token",
        hotwords: Optional[Sequence[str]] = None,
        hotword_bonus: float = 1.0,
    ):
        from espnet_llm.decode.fusion import DelayedLLMScorer, LLMTextScorer, labelwise_scorer

        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if fusion != "none" and llm is None:
            raise ValueError(f"--fusion {fusion} needs --llm")
        if fusion in ("delayed", "rescore") and tokenizer is None:
            raise ValueError(f"--fusion {fusion} needs an LLM directory with its tokenizer")
        self.s2t, self.fusion, self.lm_weight, self.word_bonus = speech2text, fusion, lm_weight, word_bonus
        model = speech2text.asr_model
        token_list = list(model.token_list)
        self.text_scorer = None
        if fusion in ("delayed", "rescore"):
            self.text_scorer = LLMTextScorer(llm, tokenizer, text_case=llm_text_case)
        if fusion == "labelwise":
            n_vocab = llm.get_output_embeddings().weight.shape[0]
            if n_vocab != len(token_list):
                raise ValueError(
                    f"label-wise fusion needs the LLM's vocabulary to be the AM's token list: {n_vocab} != "
                    f"{len(token_list)} (fine-tune with llm_text_train --units am, or use --fusion delayed)"
                )
            self.s2t.beam_search = with_scorer(speech2text.beam_search, "lm", labelwise_scorer(llm, model.sos), lm_weight)
        elif fusion == "delayed":
            scorer = DelayedLLMScorer(self.text_scorer, token_list, eos=model.eos, delay=delay)
            self.s2t.beam_search = with_scorer(speech2text.beam_search, "lm", scorer, lm_weight)
        if hotwords:
            from espnet_llm.decode.hotwords import HotwordScorer, unit_hotword_sequences

            bpemodel = getattr(speech2text.asr_train_args, "bpemodel", None)
            if not bpemodel:
                raise ValueError("hotwords need the AM's bpemodel (its config's bpemodel)")
            sequences = unit_hotword_sequences(bpemodel, token_list, hotwords)
            scorer = HotwordScorer(sequences, len(token_list), hotword_bonus)
            self.s2t.beam_search = with_scorer(self.s2t.beam_search, "hotword", scorer, 1.0)

    @classmethod
    def build(
        cls,
        asr_train_config: Union[str, Path],
        asr_model_file: Union[str, Path],
        fusion: str = "none",
        llm: Optional[Union[str, Path]] = None,
        lm_weight: float = 0.0,
        llm_text_case: str = "lower",
        word_bonus: float = 0.0,
        nbest_rescore: int = 10,
        delay: str = "token",
        device: str = "cpu",
        hotwords: Optional[Sequence[str]] = None,
        hotword_bonus: float = 1.0,
        llm_engine: str = "hf",
        llm_precision: str = "f32",
        llm_engine_dir: Optional[Union[str, Path]] = None,
        **speech2text_kwargs,
    ) -> "Speech2TextFusion":
        """Build ESPnet's Speech2Text (kwargs: beam_size, ctc_weight, penalty, ...) and the LLM, then fuse them;
        the LLM's forward runs on `llm_engine` (espnet_llm.decode.engine)."""
        kwargs = dict(speech2text_kwargs)
        if fusion == "rescore":
            kwargs["nbest"] = max(nbest_rescore, kwargs.get("nbest", 1))
            if kwargs.get("beam_size", 20) < kwargs["nbest"]:
                raise ValueError(f"--nbest_rescore {kwargs['nbest']} needs --beam_size >= it")
        import espnet_llm.tasks.asr  # noqa: F401  the project's encoders among ESPnet's choices
        from espnet2.bin.asr_inference import Speech2Text

        kwargs["lm_weight"] = 0.0  # ESPnet's own LM slot stays empty; the LLM is added below
        s2t = Speech2Text(asr_train_config=asr_train_config, asr_model_file=asr_model_file, device=device, **kwargs)
        model, tokenizer = load_fusion_llm(llm, device) if fusion != "none" else (None, None)
        if model is not None and llm_engine != "hf":
            from espnet_llm.decode.engine import load_engine

            if llm_engine_dir is None and Path(llm).is_dir() and not Path(llm).is_symlink():
                llm_engine_dir = Path(llm) / "export" / f"{llm_engine}_{llm_precision}"
            model = load_engine(model, llm_engine, llm_precision, llm_engine_dir)
        return cls(s2t, fusion, model, tokenizer, lm_weight, llm_text_case, word_bonus, delay, hotwords, hotword_bonus)

    def __call__(self, speech: Union[np.ndarray, torch.Tensor]) -> List[Result]:
        import torch

        with torch.no_grad():
            return self._decode(speech)

    def _decode(self, speech: Union[np.ndarray, torch.Tensor]) -> List[Result]:
        from espnet_llm.decode.rescoring import rescore_nbest

        results = self.s2t(speech)  # [(text, token, token_int, hyp)], best first
        if self.fusion != "rescore":
            out = []
            for text, token, token_int, hyp in results:
                terms = {k: float(v) for k, v in hyp.scores.items()}
                out.append((text, token, token_int, float(hyp.score), terms))
            return out
        by_text = {}
        for text, token, token_int, hyp in results:
            by_text.setdefault(text, (token, token_int, float(hyp.score)))
        ranked = rescore_nbest([(t, v[2]) for t, v in by_text.items()], self.text_scorer, self.lm_weight, self.word_bonus)
        return [
            (h.text, by_text[h.text][0], by_text[h.text][1], h.total,
             dict(am=h.am_score, llm=h.llm_score, n_words=float(h.n_words), total=h.total))
            for h in ranked
        ]


def inference(args: argparse.Namespace, cost: Optional[dict] = None) -> None:
    import torch
    from espnet2.fileio.datadir_writer import DatadirWriter
    from espnet_llm.decode.hotwords import read_hotwords
    from espnet_llm.tasks.asr import ASRTask  # ESPnet's, with the project's encoders

    device = "cuda" if args.ngpu > 0 else "cpu"
    torch.manual_seed(args.seed)
    s2t = Speech2TextFusion.build(
        args.asr_train_config,
        args.asr_model_file,
        fusion=args.fusion,
        llm=args.llm,
        lm_weight=args.lm_weight,
        llm_text_case=args.llm_text_case,
        word_bonus=args.word_bonus,
        delay=args.delay,
        nbest_rescore=args.nbest_rescore,
        device=device,
        beam_size=args.beam_size,
        ctc_weight=args.ctc_weight,
        penalty=args.penalty,
        maxlenratio=args.maxlenratio,
        minlenratio=args.minlenratio,
        normalize_length=args.normalize_length,
        nbest=args.nbest,
        hotwords=read_hotwords(args.hotwords) if args.hotwords else None,
        llm_engine=args.llm_engine,
        llm_precision=args.llm_precision,
        llm_engine_dir=args.llm_engine_dir,
        hotword_bonus=args.hotword_bonus,
    )
    loader = ASRTask.build_streaming_iterator(
        args.data_path_and_name_and_type,
        dtype="float32",
        batch_size=1,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=ASRTask.build_preprocess_fn(s2t.s2t.asr_train_args, False),
        collate_fn=ASRTask.build_collate_fn(s2t.s2t.asr_train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys,
        inference=True,
    )
    if cost is not None:
        cost["loaded"] = time.time()
    logging.info(f"decoding (fusion {args.fusion}, lm_weight {args.lm_weight}, beam {args.beam_size}) into {args.output_dir}")
    with DatadirWriter(args.output_dir) as writer:
        for keys, batch in loader:
            batch = {k: v[0] for k, v in batch.items() if not k.endswith("_lengths")}
            try:
                results = s2t(**batch)
            except RuntimeError as e:
                raise RuntimeError(f"decoding utterance {keys[0]} failed: {e}") from e
            for n, (text, token, token_int, score, terms) in enumerate(results[: args.nbest], 1):
                out = writer[f"{n}best_recog"]
                out["text"][keys[0]] = text
                out["token"][keys[0]] = " ".join(token)
                out["token_int"][keys[0]] = " ".join(map(str, token_int))
                out["score"][keys[0]] = str(score)
                out["score_terms"][keys[0]] = " ".join(f"{k}={v:.4f}" for k, v in terms.items())


def get_parser() -> argparse.ArgumentParser:
    parser = config_argparse.ArgumentParser(
        description=__doc__,
        formatter_class=UsageHelpFormatter,
    )
    parser.add_argument("--log_level", default="INFO", choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"))
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: one GPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=1)

    group = parser.add_argument_group("Input data")
    group.add_argument("--data_path_and_name_and_type", type=str2triple_str, required=True, action="append")
    group.add_argument("--key_file", type=str_or_none, help="decode only these utterances (one --nj split)")
    group.add_argument("--allow_variable_data_keys", type=str2bool, default=False)

    group = parser.add_argument_group("The models")
    group.add_argument("--asr_train_config", required=True, help="the AM's config.yaml")
    group.add_argument("--asr_model_file", required=True, help="the AM's model .pth")
    group.add_argument("--llm", type=str_or_none, help="local HF causal LM dir (or LoRA adapter dir)")
    group.add_argument("--llm_engine", default="hf", choices=ENGINES,
                       help="what runs the LLM's forward (espnet_llm.decode.engine; exported once into <llm>/export/)")
    group.add_argument("--llm_precision", default="f32", choices=("f32", "bf16", "int8"),
                       help="openvino: f32, bf16 or int8 weights; onnxruntime and hf: f32")
    group.add_argument("--llm_engine_dir", type=str_or_none, default=None, help="the exported graph's directory")

    group = parser.add_argument_group("Search and fusion")
    group.add_argument("--fusion", default="none", choices=FUSIONS)
    group.add_argument("--lm_weight", type=float, default=0.3, help="weight of the LLM's log-probs")
    group.add_argument("--ctc_weight", type=float, default=0.3, help="CTC weight of the AM (decoder gets 1 - it)")
    group.add_argument("--beam_size", type=int, default=10)
    group.add_argument("--penalty", type=float, default=0.0, help="length bonus per AM token")
    group.add_argument("--maxlenratio", type=float, default=0.0, help="0: up to the encoder length")
    group.add_argument("--minlenratio", type=float, default=0.0)
    group.add_argument("--normalize_length", type=str2bool, default=False, help="rank ended hyps by score / length")
    group.add_argument("--nbest", type=int, default=1, help="hypotheses written ({n}best_recog)")
    group.add_argument("--nbest_rescore", type=int, default=10, help="N of N-best rescoring (--fusion rescore)")
    group.add_argument("--word_bonus", type=float, default=0.0, help="per-word bonus of N-best rescoring")
    group.add_argument("--delay", default="token", choices=DELAYS,
                       help="delayed fusion: LLM scores at word ends (word) or per AM token, one step late (token)")
    group.add_argument("--llm_text_case", default="lower", choices=TEXT_CASES, help="case the LLM was tuned on")
    group.add_argument("--hotwords", type=str_or_none, default=None,
                       help="file of words or phrases (one a line) to bias the beam search towards")
    group.add_argument("--hotword_bonus", type=float, default=1.0, help="score bonus per unit of a listed phrase")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    from espnet_llm.exp_dir import DirBusy, clear_done, exclusive, mark_done, weights_only_torch_load
    from espnet_llm.runinfo import record_decode

    try:
        with exclusive(args.output_dir, "decoding"), weights_only_torch_load():
            clear_done(args.output_dir)
            with record_decode(args.output_dir) as cost:
                inference(args, cost)
            mark_done(args.output_dir)
    except (ValueError, FileNotFoundError, DirBusy) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
