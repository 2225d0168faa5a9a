"""Write RESULTS.md from every scored decoding under the exp dirs (ESPnet's show_asr_result.sh, plus commands).

Usage:
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md
    python -m espnet_llm.bin.results_make --exp_dirs exp/asr_conformer 'exp/llm_asr_*' --out exp/RESULTS.md
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md \
        --baseline exp/asr_conformer/decode_asr_beam10_ctc0.3_valid.acc.ave \
        --first exp/llm_asr_whisper_ft_lora exp/asr_conformer --exclude 'exp/llm_asr_abl_*'
    # a comparison table first: per block an AM (its first exp dir), its fusions and the speech LLMs
    python -m espnet_llm.bin.results_make --exp_dirs 'exp/*' --out RESULTS.md \
        --compare "Whisper tiny.en encoder=exp/asr_whisper_ctc_att_nosp,exp/llm_asr_whisper_ft_lora" \
        --compare "conformer from scratch=exp/asr_conformer" --compare_sets test dev \
        --am_reference decode_asr_beam10_ctc0.3_valid.acc.ave --llm_reference decode_llm_beam10_ctc0.3_valid.acc.ave

Reads exp/<x>/decode_<tag>/<test_set>/score_{wer,cer}/result.json (or result.txt), the optional
command.txt (exp/<x>/run.sh for training) and meta.json of exp/<x>/ and of each decode_<tag>/.
Writes --out whole, ESPnet's RESULTS.md shape: an environment block, a summary table (system, decoding mode, dataset,
Snt, Wrd, WER, CER, #Ins, #Del), and per system a section with its exp dir, configs, commands and sclite's
`### WER` / `### CER` tables. The systems of --first come first (the recipe's default system, then its baseline).
With --baseline, the summary has a column with sc_stats' matched-pair (MAPSSWE) and sign test verdicts of each
system against that decode dir on the same test set. With --compare, a comparison table leads: per block
(`Title=exp/dir,...`, the first exp dir the block's AM) its decodings with WER/CER/#Ins/#Del on the first of
--compare_sets and WER on the others, the decoding RTF (`decode_s` of the jobs' meta.json over the audio of
`<dumpdir>/fbank/<set>/utt2num_samples`), trained parameters, training time, and the significance against the
block's AM decoding (--am_reference) and the speech LLM's (--llm_reference). Nothing of an earlier --out is kept: the file holds exactly
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
    parser.add_argument("--compare", action="append", default=[], metavar="TITLE=EXP,EXP...",
                        help="a block of the comparison table (repeatable); its first exp dir is its AM")
    parser.add_argument("--compare_sets", nargs="+", default=["test", "dev"], help="the table's sets, in order")
    parser.add_argument("--am_reference", default=None, help="decode dir name of each block's AM reference")
    parser.add_argument("--llm_reference", default=None, help="decode dir name of the speech LLM reference")
    parser.add_argument("--dumpdir", type=Path, default=Path("dump"), help="where utt2num_samples are (the RTF)")
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
    comparison = None
    if args.compare:
        from espnet_llm.results import Block, render_comparison

        try:
            blocks = [Block.parse(text) for text in args.compare]
        except ValueError as e:
            print(f"results_make: {e}", file=sys.stderr)
            return 2
        comparison = render_comparison(systems, blocks, args.compare_sets, args.am_reference, args.llm_reference,
                                       args.dumpdir)
    write_results(systems, args.out, first=args.first, comparison=comparison)
    rows = sum(len(system.test_sets) for system in systems)
    print(f"{args.out}: {len(systems)} systems, {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
