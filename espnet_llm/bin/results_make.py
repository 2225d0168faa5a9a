"""Write RESULTS.md from every scored decoding under the exp dirs (ESPnet's show_asr_result.sh, plus commands).

Usage:
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md
    python -m espnet_llm.bin.results_make --exp_dirs exp/asr_conformer 'exp/llm_asr_*' --out exp/RESULTS.md
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md \
        --baseline exp/asr_conformer/decode_asr_beam10_ctc0.3_valid.acc.ave \
        --first exp/llm_asr_whisper_ft_lora exp/asr_conformer --exclude 'exp/llm_asr_abl_*'

Reads exp/<x>/decode_<tag>/<test_set>/score_{wer,cer}/result.json (or result.txt), the optional
command.txt (exp/<x>/run.sh for training) and meta.json of exp/<x>/ and of each decode_<tag>/.
Writes --out whole, ESPnet's RESULTS.md shape: an environment block, a summary table (system, decoding mode, dataset,
Snt, Wrd, WER, CER, #Ins, #Del), and per system a section with its exp dir, configs, commands and sclite's
`### WER` / `### CER` tables. The systems of --first come first (the recipe's default system, then its baseline).
With --baseline, the summary has a column with sc_stats' matched-pair (MAPSSWE) and sign test verdicts of each
system against that decode dir on the same test set. Nothing of an earlier --out is kept: the file holds exactly
the scored systems under --exp_dirs.
"""
import argparse
import fnmatch
import sys
from pathlib import Path


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dirs", nargs="+", default=["exp/*"],
                        help="exp dirs or glob patterns (quote them to let this program expand them)")
    parser.add_argument("--out", type=Path, default=Path("RESULTS.md"))
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a decode dir (exp/<x>/decode_<tag>): every other system's WER is tested against it "
                             "with sc_stats (MAPSSWE, sign) and the verdict is a column of the summary")
    parser.add_argument("--first", nargs="*", type=Path, default=[],
                        help="exp dirs whose systems lead the report, in this order (the default system first)")
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="glob patterns of exp dirs left out (e.g. an ablation grid with its own report)")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from espnet_llm.results import collect_systems, compare_to_baseline, write_results

    systems = [s for s in collect_systems(args.exp_dirs)
               if not any(fnmatch.fnmatch(s.exp_dir.as_posix(), pattern) for pattern in args.exclude)]
    if not systems:
        print(f"results_make: no decode_*/<test_set>/score_{{wer,cer}}/result.json under {' '.join(args.exp_dirs)}",
              file=sys.stderr)
        return 1
    if args.baseline is not None and compare_to_baseline(systems, args.baseline) is None:
        print(f"results_make: baseline {args.baseline} is not a scored decode dir under {' '.join(args.exp_dirs)}",
              file=sys.stderr)
        return 1
    write_results(systems, args.out, first=args.first)
    rows = sum(len(system.test_sets) for system in systems)
    print(f"{args.out}: {len(systems)} systems, {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
