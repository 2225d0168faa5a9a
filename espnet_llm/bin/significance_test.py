"""Is one system significantly better than another? sclite alignments + sc_stats MAPSSWE and sign tests.

Usage:
    python -m espnet_llm.bin.significance_test --ref data/test/text \
        --hyps exp/asr_conformer/decode_beam10/test/text exp/llm_asr/decode_beam4/test/text \
        --names conformer llm_asr --out_dir exp/significance/conformer_vs_llm_asr
    python -m espnet_llm.bin.significance_test \
        --score_dirs exp/asr_conformer/decode_beam10/test/score_wer exp/llm_asr/decode_beam4/test/score_wer \
        --names conformer llm_asr --out_dir exp/significance/conformer_vs_llm_asr

Either two hypothesis Kaldi texts on one reference text (normalised and tokenised as wer_score does), or two
score dirs written by wer_score (their ref.trn must hold the same utterances). Writes <out_dir>/significance.txt
(summary, one verdict per test, the sc_stats report) with the sclite sgml alignments beside it (and, with
--hyps, the trn files made from the texts in <out_dir>/input/), and prints a one-line summary.
The sign test pairs utterances (`--sign_unit utterance`, default) or speakers.
"""
import argparse
import logging
import sys
from pathlib import Path

from espnet_llm.scoring import (NORMALIZATIONS, UNITS, align_hyp_to_ref, normalize_text, read_text, read_trn,
                                read_utt2spk, significance_test, to_tokens, write_trn)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--hyps", nargs=2, type=Path, metavar=("HYP_A", "HYP_B"),
                        help="two hypothesis Kaldi texts (needs --ref)")
    inputs.add_argument("--score_dirs", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"),
                        help="two score dirs holding ref.trn and hyp.trn")
    parser.add_argument("--ref", type=Path, help="reference Kaldi text (with --hyps)")
    parser.add_argument("--names", nargs=2, default=["A", "B"], metavar=("NAME_A", "NAME_B"),
                        help="system names in the report (single words)")
    parser.add_argument("--out_dir", required=True, type=Path)
    parser.add_argument("--unit", choices=UNITS, default="word", help="with --hyps: score words or characters")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default="upper", help="with --hyps")
    parser.add_argument("--remove_punct", action="store_true", help="with --hyps")
    parser.add_argument("--sign_unit", choices=("utterance", "speaker"), default="utterance",
                        help="what the sign test pairs")
    return parser


def _trn_from_texts(args, trn_dir: Path):
    """ref.trn and one trn per system from Kaldi texts, normalised as wer_score does."""
    ref = read_text(args.ref)
    utt2spk_path = args.ref.parent / "utt2spk"
    utt2spk = read_utt2spk(utt2spk_path) if utt2spk_path.is_file() else {}
    trn_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, hyp_path in zip(["ref"] + args.names, [args.ref] + args.hyps):
        texts = ref if name == "ref" else align_hyp_to_ref(ref, read_text(hyp_path))[0]
        path = trn_dir / f"{name}.trn"
        write_trn(path, {u: to_tokens(normalize_text(w, args.normalize, args.remove_punct), args.unit)
                         for u, w in texts.items()}, utt2spk)
        paths.append(path)
    return paths[0], paths[1:]


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.hyps and args.ref is None:
        parser.error("--hyps needs --ref")
    if args.score_dirs:
        if args.ref is not None:
            parser.error("--ref is read from the score dirs' ref.trn; do not pass it with --score_dirs")
        ref_trn, hyp_trns = args.score_dirs[0] / "ref.trn", [d / "hyp.trn" for d in args.score_dirs]
        refs = [read_trn(d / "ref.trn") for d in args.score_dirs]
        if refs[0] != refs[1]:
            parser.error(f"{args.score_dirs[0]} and {args.score_dirs[1]} were scored on different references")
        result = significance_test(ref_trn, hyp_trns, args.names, args.out_dir, sign_unit=args.sign_unit)
    else:
        ref_trn, hyp_trns = _trn_from_texts(args, args.out_dir / "input")
        result = significance_test(ref_trn, hyp_trns, args.names, args.out_dir, sign_unit=args.sign_unit)
    print(result["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
