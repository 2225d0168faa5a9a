#!/usr/bin/env python3
"""Pick a fusion decoding config by its WER on the dev set: the lowest of a grid of decodings wins.

Usage:
    # the stage script's --fusion_tune_grid "lm_weight=0.1,0.3 penalty=0,1" decodes dev with each grid YAML
    # (config_overlay of the fusion YAML), scores it, then calls:
    python -m espnet_llm.bin.fusion_tune --set dev --ref data/dev/text \
        --configs exp/asr_x/fusion_tune/tune_asr_fusion_delayed_lm_weight0.1_penalty0.yaml ... \
        --decode_dirs exp/asr_x/decode_tune_asr_fusion_delayed_lm_weight0.1_penalty0_valid.acc.ave ... \
        --out exp/asr_x/fusion_tune/decode_asr_fusion_delayed_devtuned.yaml \
        --table exp/asr_x/fusion_tune/decode_asr_fusion_delayed_grid.md

Each decode dir's `<set>/text` is scored against `--ref` with sclite (espnet_llm.bin.wer_score; an existing
`<set>/score_wer/result.json` newer than the text is reused). The config of the lowest WER (ties: the earlier in
--configs, so list the grid from the plainest point) is copied to --out under a header that names the grid, the
winner and its decode dir (`# Decoded in: <dir>`: the recipe takes that dir's dev decoding for the tuned config's
instead of decoding dev again); --table gets the grid's WERs as a Markdown table. Only the dev set is read: the test
sets stay unseen.
"""
import argparse
import json
import re
import sys
from pathlib import Path
from typing import List, Optional

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=UsageHelpFormatter)
    parser.add_argument("--configs", nargs="+", required=True, type=Path, help="the grid's decoding YAMLs")
    parser.add_argument("--decode_dirs", nargs="+", required=True, type=Path, help="their decode dirs, same order")
    parser.add_argument("--set", required=True, help="the tuning set's name (a subdirectory of each decode dir)")
    parser.add_argument("--ref", required=True, type=Path, help="its Kaldi text")
    parser.add_argument("--out", required=True, type=Path, help="the winner's YAML")
    parser.add_argument("--table", type=Path, default=None, help="the grid's WERs (Markdown)")
    return parser


def dev_wer(decode_dir: Path, set_name: str, ref: Path) -> dict:
    """sclite's WER result of `<decode_dir>/<set>/text` (scored here when its result is missing or older)."""
    from espnet_llm.bin import wer_score

    set_dir = decode_dir / set_name
    hyp, result = set_dir / "text", set_dir / "score_wer" / "result.json"
    if not hyp.is_file():
        raise FileNotFoundError(f"{hyp}: the grid point was not decoded")
    if not result.is_file() or result.stat().st_mtime < max(hyp.stat().st_mtime, ref.stat().st_mtime):
        if wer_score.main(["--ref", str(ref), "--hyp", str(hyp), "--out_dir", str(set_dir)]) != 0:
            raise RuntimeError(f"scoring {hyp} failed")
    return json.loads(result.read_text(encoding="utf-8"))


def grid_label(config: Path) -> str:
    """The keys the grid point sets (config_overlay's header: `# Generated ... from X: --set a=1 --set b=2`)."""
    header = config.read_text(encoding="utf-8").split("\n", 1)[0]
    sets = re.findall(r"--set(?:_str)? (\S+)", header) if header.startswith("# Generated") else []
    return ", ".join(sets) or config.stem


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    if len(args.configs) != len(args.decode_dirs):
        print(f"fusion_tune: {len(args.configs)} configs but {len(args.decode_dirs)} decode dirs", file=sys.stderr)
        return 2
    try:
        results = [dev_wer(d, args.set, args.ref) for d in args.decode_dirs]
    except (FileNotFoundError, RuntimeError) as e:
        print(f"fusion_tune: {e}", file=sys.stderr)
        return 1
    wers = [float(r["Err"]) for r in results]
    best = min(range(len(wers)), key=lambda i: (wers[i], i))
    rows = ["|grid point|" + args.set + " WER|#Sub|#Del|#Ins|", "|---|---|---|---|---|"]
    for i, (config, result) in enumerate(zip(args.configs, results)):
        mark = " (chosen)" if i == best else ""
        counts = result.get("counts", {})
        rows.append(f"|{grid_label(config)}{mark}|{result['Err']:.1f}|{counts.get('Sub', '-')}|"
                    f"{counts.get('Del', '-')}|{counts.get('Ins', '-')}|")
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    body = [line for line in args.configs[best].read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    header = [f"# Tuned on {args.set} (lowest WER of {len(wers)} grid points, {wers[best]:.1f} %): "
              f"{grid_label(args.configs[best])}.",
              f"# Grid: {args.table or ', '.join(str(c) for c in args.configs)}",
              f"# Decoded in: {args.decode_dirs[best]}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("\n".join(header + body) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"{args.out}: {grid_label(args.configs[best])} ({args.set} WER {wers[best]:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
