"""Score a hypothesis Kaldi `text` against a reference `text` with sclite: WER into score_wer/, CER into score_cer/.

Usage:
    python -m espnet_llm.bin.wer_score --ref data/test/text --hyp exp/llm_asr/decode_beam4/test/text \
        --out_dir exp/llm_asr/decode_beam4/test
    python -m espnet_llm.bin.wer_score --ref data/test/text --hyp hyp.txt --out_dir out --units word \
        --normalize none --remove_punct

Writes <out_dir>/score_wer/ and <out_dir>/score_cer/, each with ref.trn, hyp.trn, result.txt (sclite
`-o all` report) and result.json (Snt, Wrd, Corr, Sub, Del, Ins, Err, S.Err in % and their counts).
Utterances without a hypothesis are scored as empty and listed in a warning; hypothesis ids that are not in
the reference are an error. sclite is found via $SCLITE, PATH or /usr/lib/sctk/bin (`apt-get install sctk`).
"""
import argparse
import logging
import sys
from pathlib import Path

from espnet_llm.scoring import NORMALIZATIONS, UNITS, read_utt2spk, score

SCORE_DIRS = {"word": "score_wer", "char": "score_cer"}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, type=Path, help="reference Kaldi text (<uttid> WORDS...)")
    parser.add_argument("--hyp", required=True, type=Path, help="hypothesis Kaldi text (<uttid> WORDS...)")
    parser.add_argument("--out_dir", required=True, type=Path, help="writes score_wer/ and score_cer/ here")
    parser.add_argument("--units", nargs="+", choices=UNITS, default=list(UNITS),
                        help="word -> score_wer/, char -> score_cer/")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default="upper",
                        help="upper: upper-case ref and hyp; none: leave them and score case-sensitively")
    parser.add_argument("--remove_punct", action="store_true", help="drop punctuation from ref and hyp")
    parser.add_argument("--utt2spk", type=Path, default=None,
                        help="speakers for the trn ids (default: utt2spk beside --ref if present)")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = get_parser().parse_args(argv)
    try:
        utt2spk = read_utt2spk(args.utt2spk) if args.utt2spk else None
        for unit in args.units:
            out = args.out_dir / SCORE_DIRS[unit]
            result = score(args.ref, args.hyp, out, unit=unit, normalize=args.normalize,
                           remove_punct=args.remove_punct, utt2spk=utt2spk)
            _report(unit, result, out)
    except (ValueError, FileNotFoundError) as e:
        print(f"wer_score: error: {e}", file=sys.stderr)
        return 1
    return 0


def _report(unit, result, out) -> None:
    counts = result["counts"]
    print(f"{'WER' if unit == 'word' else 'CER'} {result['Err']:.1f}% "
          f"[Snt {result['Snt']}, {unit}s {result['Wrd']}: sub {counts['Sub']}, del {counts['Del']}, "
          f"ins {counts['Ins']}] -> {out / 'result.txt'}")


if __name__ == "__main__":
    sys.exit(main())
