"""Kaldi data-dir tools; the utils/*.sh scripts are thin wrappers around these subcommands.

Usage:
    python -m espnet_llm.bin.datadir_tool validate data/train                 # utils/validate_data_dir.sh
    python -m espnet_llm.bin.datadir_tool validate --feats data/train         # also require feats.scp
    python -m espnet_llm.bin.datadir_tool fix data/train                      # utils/fix_data_dir.sh
    python -m espnet_llm.bin.datadir_tool subset data/train 100 data/train_100          # evenly spread
    python -m espnet_llm.bin.datadir_tool subset --shuffle --seed 3 data/train 100 data/train_rand100
    python -m espnet_llm.bin.datadir_tool subset --utt-list ids.txt data/train data/train_sub
    python -m espnet_llm.bin.datadir_tool combine data/all data/train data/dev   # utils/combine_data.sh
    python -m espnet_llm.bin.datadir_tool split data/train 4                  # -> data/train/split4/{1..4}
    python -m espnet_llm.bin.datadir_tool split --per-spk data/train 4
    python -m espnet_llm.bin.datadir_tool utt2spk_to_spk2utt data/train/utt2spk > data/train/spk2utt
    python -m espnet_llm.bin.datadir_tool resample --fs 16000 data/mine data/mine_16k   # 16 kHz mono FLAC
    python -m espnet_llm.bin.datadir_tool concat --pause 1.0 data/test data/test_long   # one recording a speaker
    python -m espnet_llm.bin.datadir_tool concat --single data/test data/test_all_long    # one recording of all

Exit status 0 on success; 1 with the problem on stderr when the data dir is invalid or the operation fails.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from espnet_llm import datadir
from espnet_llm.audio import AudioError
from espnet_llm.datadir import DataDirError

SCRIPT_NAMES = {
    "validate": "validate_data_dir.sh",
    "fix": "fix_data_dir.sh",
    "subset": "subset_data_dir.sh",
    "combine": "combine_data.sh",
    "split": "split_data.sh",
    "utt2spk_to_spk2utt": "utt2spk_to_spk2utt.sh",
    "resample": "datadir_tool resample",
    "concat": "datadir_tool concat",
}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """``prog`` names the calling wrapper script in usage and help messages."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def add(verb: str, help_text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(verb, prog=prog, help=help_text, description=help_text)

    p = add("validate", "Check a data dir against Kaldi's rules; print warnings, exit 1 listing every error.")
    p.add_argument("--no-feats", dest="no_feats", action="store_true", default=True,
                   help="do not require feats.scp (the default; accepted for Kaldi compatibility)")
    p.add_argument("--feats", dest="no_feats", action="store_false", help="require feats.scp")
    p.add_argument("--no-text", action="store_true", help="do not require text")
    p.add_argument("--no-wav", action="store_true", help="do not require wav.scp")
    p.add_argument("data_dir", type=Path)

    p = add("fix", "Sort files, drop utterances missing from a file or with empty text, regenerate spk2utt "
                   "(originals of changed files go to <data-dir>/.backup/).")
    p.add_argument("data_dir", type=Path)

    p = add("subset", "Copy part of a data dir: '<src> <n> <dst>', or '--utt-list/--spk-list <file> <src> <dst>'.")
    order = p.add_mutually_exclusive_group()
    for mode in ("first", "last", "shuffle"):
        order.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode,
                           help=f"take the {mode} n utterances" if mode != "shuffle" else "take n at random (--seed)")
    p.set_defaults(mode="spread")
    p.add_argument("--seed", type=int, default=0, help="random seed for --shuffle")
    p.add_argument("--utt-list", type=Path, help="file whose first column lists the utterances to keep")
    p.add_argument("--spk-list", type=Path, help="file whose first column lists the speakers to keep")
    p.add_argument("dirs", nargs="+", metavar="<src> [<n>] <dst>")

    p = add("combine", "Merge data dirs into one; an utterance id in two sources is an error.")
    p.add_argument("dst", type=Path)
    p.add_argument("srcs", type=Path, nargs="+")

    p = add("split", "Split <data-dir> into <data-dir>/split<nj>/{1..nj}; a rerun on unchanged input does nothing.")
    p.add_argument("--per-spk", action="store_true", help="keep each speaker in one part")
    p.add_argument("--per-utt", dest="per_spk", action="store_false", help="split by utterance (the default)")
    p.add_argument("data_dir", type=Path)
    p.add_argument("nj", type=int)

    p = add("resample", "Copy <src> to <dst> with every recording at --fs Hz, mono (FLAC under <dst>/audio/).")
    p.add_argument("--fs", type=int, default=16000, help="sample rate of the copies")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)

    p = add("concat", "One long recording per speaker of <src> (its utterances with --pause s between them) in <dst>, "
                      "with <dst>/reference_segments saying where each utterance lies.")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of silence between utterances")
    p.add_argument("--fs", type=int, default=16000, help="sample rate of the recordings")
    p.add_argument("--single", action="store_true", help="one recording of every utterance (all-long)")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)

    p = add("utt2spk_to_spk2utt", "Print the spk2utt of an utt2spk file (or of stdin).")
    p.add_argument("utt2spk", nargs="?", type=Path)
    return parser


def _read_ids(path: Path) -> list[str]:
    return list(datadir.read_table(path))


def _subset(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    with_list = args.utt_list is not None or args.spk_list is not None
    if with_list and len(args.dirs) == 2:
        src, n, dst = args.dirs[0], None, args.dirs[1]
    elif len(args.dirs) == 3:
        src, count, dst = args.dirs
        try:
            n = int(count)
        except ValueError:
            parser.error(f"<n> must be a number of utterances, got {count!r}")
    else:
        parser.error("expected '<src> <n> <dst>', or '<src> <dst>' with --utt-list/--spk-list")
    utts = datadir.subset(
        src, dst, n=n, mode=args.mode, seed=args.seed,
        utt_list=_read_ids(args.utt_list) if args.utt_list else None,
        spk_list=_read_ids(args.spk_list) if args.spk_list else None,
    )
    print(f"{parser.prog}: wrote {len(utts)} utterance(s) of {src} to {dst}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = None
    if len(argv) >= 2 and argv[0] == "--prog":
        prog, argv = argv[1], argv[2:]
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    prog = prog or SCRIPT_NAMES[args.verb]
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        if args.verb == "validate":
            warnings = datadir.validate(args.data_dir, no_feats=args.no_feats, no_text=args.no_text, no_wav=args.no_wav)
            print(f"{prog}: successfully validated data directory {args.data_dir}"
                  + (f" ({len(warnings)} warning(s))" if warnings else ""), file=sys.stderr)
        elif args.verb == "fix":
            report = datadir.fix(args.data_dir)
            print(f"{prog}: {args.data_dir}: {report.summary()}", file=sys.stderr)
        elif args.verb == "subset":
            _subset(args, parser)
        elif args.verb == "combine":
            datadir.combine(args.dst, args.srcs)
            print(f"{prog}: combined {len(args.srcs)} data dir(s) into {args.dst}", file=sys.stderr)
        elif args.verb == "split":
            parts = datadir.split(args.data_dir, args.nj, by_speaker=args.per_spk)
            print(f"{prog}: {args.data_dir} -> {parts[0].parent}/{{1..{len(parts)}}}", file=sys.stderr)
        elif args.verb == "resample":
            count = datadir.resample(args.src, args.dst, args.fs)
            print(f"{prog}: {count} recording(s) of {args.src} at {args.fs} Hz in {args.dst}", file=sys.stderr)
        elif args.verb == "concat":
            count = datadir.concat_speakers(args.src, args.dst, args.pause, args.fs, args.single)
            print(f"{prog}: {count} recording(s), one per speaker of {args.src}, in {args.dst}", file=sys.stderr)
        elif args.verb == "utt2spk_to_spk2utt":
            source = args.utt2spk if args.utt2spk is not None else Path("/dev/stdin")
            spk2utt = datadir.utt2spk_to_spk2utt(datadir.read_table(source))
            sys.stdout.write("".join(f"{spk} {' '.join(utts)}\n" for spk, utts in spk2utt.items()))
    except (DataDirError, AudioError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
