"""Write RESULTS.md from every scored decoding under the exp dirs (ESPnet's show_asr_result.sh, plus commands).

Usage:
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md
    python -m espnet_llm.bin.results_make --exp_dirs exp/asr_conformer 'exp/llm_asr_*' --out exp/RESULTS.md
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md \
        --baseline exp/asr_conformer/decode_asr_beam10_ctc0.3_valid.acc.ave

Reads exp/<x>/decode_<tag>/<test_set>/score_{wer,cer}/result.json (or result.txt), the optional
command.txt (exp/<x>/run.sh for training) and meta.json of exp/<x>/ and of each decode_<tag>/.
Writes an environment block, a summary table (system, decode, dataset, WER, CER, Ins), and per system a
`## exp/<x>/decode_<tag>` section with its metadata line, commands and `### WER` / `### CER` tables.
With --baseline, the summary has a column with sc_stats' matched-pair (MAPSSWE) and sign test verdicts of each
system against that decode dir on the same test set. In an existing --out, everything above the line
`<!-- generated below -->` is kept, and so are the systems of its generated part that are not under --exp_dirs
(marked as kept; --drop_missing leaves them out).
"""
import argparse
import sys
from pathlib import Path

from espnet_llm.results import collect_systems, compare_to_baseline, write_results


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dirs", nargs="+", default=["exp/*"],
                        help="exp dirs or glob patterns (quote them to let this program expand them)")
    parser.add_argument("--out", type=Path, default=Path("RESULTS.md"))
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a decode dir (exp/<x>/decode_<tag>): every other system's WER is tested against it "
                             "with sc_stats (MAPSSWE, sign) and the verdict is a column of the summary")
    parser.add_argument("--drop_missing", action="store_true",
                        help="leave out the systems of an existing --out whose decode dirs are not under --exp_dirs "
                             "(by default they are kept, marked, so a fresh checkout's rerun loses no row)")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    systems = collect_systems(args.exp_dirs)
    if not systems:
        print(f"results_make: no decode_*/<test_set>/score_{{wer,cer}}/result.json under {' '.join(args.exp_dirs)}",
              file=sys.stderr)
        return 1
    if args.baseline is not None and compare_to_baseline(systems, args.baseline) is None:
        print(f"results_make: baseline {args.baseline} is not a scored decode dir under {' '.join(args.exp_dirs)}",
              file=sys.stderr)
        return 1
    write_results(systems, args.out, keep_missing=not args.drop_missing)
    rows = sum(len(system.test_sets) for system in systems)
    print(f"{args.out}: {len(systems)} systems, {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
