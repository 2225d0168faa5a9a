#!/usr/bin/env python3
"""Score the decoding studies of a speech LLM and write their report (RESULTS_studies.md): long recordings, word
times, hotword biasing, the CTC fallback against hallucination.

Usage:
    # what egs/an4/asr1/run_studies.sh runs last (its decodes are under <exp>/studies/)
    cd egs/an4/asr1 && python -m espnet_llm.bin.studies_report --studies_dir exp/llm_asr_whisper_ft_lora/studies \
        --ref_ctm exp/asr_whisper_ctc_att_nosp/align_valid.acc.ave/test/ctm --out RESULTS_studies.md

    # what its step 2 runs: the --split_pause_seconds of the lowest dev_long WER among the grid's decodes (stdout)
    python -m espnet_llm.bin.studies_report --studies_dir exp/llm_asr_whisper_ft_lora/studies \
        --choose_split_pause --split_pause_grid 0.4 0.6 0.8

    # what its step 4 runs: the --hotword_bonus of the lowest dev WER with dev's rare words (stdout)
    python -m espnet_llm.bin.studies_report --studies_dir exp/llm_asr_whisper_ft_lora/studies \
        --choose_hotword_bonus --hotword_bonus_grid 2 4 6

The decode dirs (`llm_asr_inference --output_dir`, each `<study>/<set>/` with `1best_recog/text` and `meta.json`):
- `segments_greedy/<set>` and `longform_greedy/<set>_long` (+ `<set>_all_long`): the reference segments decoded one
  by one, and the long recordings that `datadir_tool concat` made of them (`data/<set>_long/reference_segments`);
  both scored by sclite against the long recordings' text (the segments' hypotheses joined per recording);
  `longform_greedy_pause<seconds>/dev_long`: the same long-form decoding of dev's joined recordings with
  `--split_pause_seconds <seconds>`, the grid that chooses its value (the lowest WER; ties: the longest pause), and
  `longform_pause_greedy/<set>_long` (+ `<set>_all_long`): the long recordings decoded with the chosen value;
- `wordtimes_greedy/test`: `1best_recog/ctm` against `--ref_ctm` (an independent alignment of the references);
- `hotwords_{none,biased,distractors}/<set>`: beam search without a list, with `data/hotwords/biased.txt`, and with
  it plus distractors (`data/hotwords/distractors.txt`): recall of the biased phrases, WER, WER of the utterances
  without a biased phrase; `hotwords_grid_b<bonus>/dev`: dev with its rare words (`data/hotwords/dev_rare.txt`) at
  each `--hotword_bonus` of the grid that chooses it (the lowest WER; ties: the smallest bonus);
- `fallback_none/<set>` and `fallback_{joint,ctc}_t<threshold>/<set>`: greedy search without and with the CTC
  fallback at each threshold, the threshold of the lowest dev WER reported (ties: the highest); `vadgate_greedy/<set>`:
  greedy search behind the VAD gate (`--vad_gate true`); on the stress sets of `make_stress_set` too
  (`stress_nonspeech`, no text: any output is a hallucination; `stress_speech`).

A study whose decode dirs are missing is left out of the report with a line saying so. Scores go to
`<decode dir>/score_study/`; audio durations are read from the data dirs' wav.scp (`--data_root`).
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=UsageHelpFormatter)
    parser.add_argument("--studies_dir", type=Path, required=True, help="<speech LLM exp>/studies")
    parser.add_argument("--data_root", type=Path, default=Path("data"), help="the recipe's data dirs")
    parser.add_argument("--ref_ctm", type=Path, help="the reference alignment of data/test (ctc_align)")
    parser.add_argument("--long_sets", nargs="*", default=["test", "librivox"], help="sets made long by concat")
    parser.add_argument("--pause_dev_set", default="dev",
                        help="the set whose joined recordings (<set>_long) choose --split_pause_seconds")
    parser.add_argument("--split_pause_grid", nargs="*", type=float,
                        help="the --split_pause_seconds values of the choice (default: every one decoded)")
    parser.add_argument("--choose_split_pause", action="store_true",
                        help="only print the --split_pause_seconds of the lowest dev WER (the grid's WERs to stderr)")
    parser.add_argument("--hotword_sets", nargs="*", default=["test", "librivox"])
    parser.add_argument("--hotword_dev_set", default="dev",
                        help="the set whose decodes with its rare words (data/hotwords/<set>_rare.txt) choose "
                             "--hotword_bonus")
    parser.add_argument("--hotword_bonus_grid", nargs="*", type=float,
                        help="the --hotword_bonus values of the choice (default: every one decoded)")
    parser.add_argument("--choose_hotword_bonus", action="store_true",
                        help="only print the --hotword_bonus of the lowest dev WER (ties: the smallest)")
    parser.add_argument("--fallback_sets", nargs="*", default=["dev", "test", "stress_speech", "stress_nonspeech"])
    parser.add_argument("--command", default="./run_studies.sh", help="the command named in the report")
    parser.add_argument("--plot", type=Path, help="a PNG of one utterance's words on its waveform")
    parser.add_argument("--out", type=Path, help="the report (required unless --choose_split_pause)")
    return parser


class Study:
    """One decode dir of a study: its hypotheses, its cost, its data dir."""

    def __init__(self, path: Path, data: Path):
        self.path, self.data = path, data

    @property
    def done(self) -> bool:
        return (self.path / "1best_recog" / "text").is_file()

    def text(self, name: str = "text") -> Dict[str, str]:
        from espnet_llm.scoring import read_text

        path = self.path / "1best_recog" / name
        return read_text(path) if path.is_file() else {}

    def meta(self) -> dict:
        path = self.path / "meta.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def rtf(self, seconds: float) -> Optional[float]:
        decode_s = self.meta().get("decode_s")
        return None if decode_s is None or seconds <= 0 else decode_s / seconds


def durations(data: Path) -> Dict[str, float]:
    """Seconds of each recording of a data dir's wav.scp (soundfile's header)."""
    import soundfile as sf

    from espnet_llm.datadir import read_table

    return {k: sf.info(v).duration for k, v in read_table(data / "wav.scp").items()}


def wer(ref, hyp, out_dir: Path) -> dict:
    from espnet_llm.scoring import score

    return score(ref, hyp, out_dir, unit="word")


def fmt(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


LONG_FORM_OPTIONS = ("--max_segment_seconds", "--merge_segment_seconds", "--split_pause_seconds")
PAUSE_GRID = "longform_greedy_pause"  # + <seconds>/<dev set>_long: the grid of --split_pause_seconds
PAUSE_CHOSEN = "longform_pause_greedy"  # /<set>_long: the long recordings with the chosen value


def grid_dirs(studies: Path, prefix: str, grid: Optional[Sequence[float]]) -> List[Tuple[str, Path]]:
    """(value as the dir names it, dir) of the study dirs `<prefix><number>` under `studies`, only the numbers of
    `grid` if given."""
    out = []
    for path in sorted(studies.glob(f"{prefix}*")):
        value = path.name[len(prefix):]
        try:
            number = float(value)
        except ValueError:
            continue
        if not grid or any(abs(number - g) < 1e-9 for g in grid):
            out.append((value, path))
    return out


def split_pause_grid(args) -> Dict[str, float]:
    """{--split_pause_seconds as its dir names it: WER} of the grid's decodes of the dev set's joined recordings
    (`<studies>/longform_greedy_pause<seconds>/<dev>_long`), only the values of `--split_pause_grid` if given."""
    from espnet_llm.datadir import read_table

    data = args.data_root / f"{args.pause_dev_set}_long"
    out: Dict[str, float] = {}
    for value, path in grid_dirs(args.studies_dir, PAUSE_GRID, args.split_pause_grid):
        study = Study(path / data.name, data)
        if study.done and (data / "text").is_file():
            out[value] = wer(read_table(data / "text"), study.text(), study.path / "score_study")["Err"]
    return dict(sorted(out.items(), key=lambda kv: float(kv[0])))


BONUS_GRID = "hotwords_grid_b"  # + <bonus>/<dev set>: the grid of --hotword_bonus with the dev set's rare words


def hotword_bonus_grid(args) -> Dict[str, Tuple[float, int, int]]:
    """{--hotword_bonus as its dir names it: (WER, rare words found, occurring)} of the grid's decodes of the dev
    set with its rare-word list (`<studies>/hotwords_grid_b<bonus>/<dev>`), only `--hotword_bonus_grid`'s if given."""
    from espnet_llm.decode.hotwords import read_hotwords
    from espnet_llm.scoring import read_text
    from espnet_llm.studies import hotword_recall

    data = args.data_root / args.hotword_dev_set
    words = args.data_root / "hotwords" / f"{args.hotword_dev_set}_rare.txt"
    out: Dict[str, Tuple[float, int, int]] = {}
    if not words.is_file() or not (data / "text").is_file():
        return out
    phrases = read_hotwords(str(words))
    ref = read_text(data / "text")
    for value, path in grid_dirs(args.studies_dir, BONUS_GRID, args.hotword_bonus_grid):
        study = Study(path / data.name, data)
        if study.done:
            hyp = study.text()
            out[value] = (wer(ref, hyp, study.path / "score_study")["Err"], *hotword_recall(ref, hyp, phrases))
    return dict(sorted(out.items(), key=lambda kv: float(kv[0])))


def long_form_row(args, long_set: str, seg: Optional[Study], long: Study) -> Optional[List[str]]:
    """A row of the long-form table: `long` (a long-form decode of data/<long_set>) against `seg` (its reference
    segments decoded one by one, joined per recording; None or not decoded: "-"); None when `long` is not done."""
    from espnet_llm.datadir import read_table
    from espnet_llm.studies import command_options, join_segments

    data = args.data_root / long_set
    if not (long.done and (data / "reference_segments").is_file()):
        return None
    ref = read_table(data / "text")
    secs = durations(data)
    w_long = wer(ref, long.text(), long.path / "score_study")["Err"]
    w_seg = rtf_seg = rss_seg = None
    if seg is not None and seg.done:
        joined = join_segments(seg.text(), read_table(data / "reference_segments"))
        w_seg = wer(ref, joined, seg.path / f"score_study_{long_set}")["Err"]
        rtf_seg, rss_seg = seg.rtf(sum(durations(seg.data).values())), seg.meta().get("decode_peak_rss_gib")
    command = long.path / "command.txt"
    options = command_options(command.read_text(encoding="utf-8"), LONG_FORM_OPTIONS) if command.is_file() else ""
    return [long_set, str(len(ref)), f"{max(secs.values()) / 60:.1f}", str(len(long.text("segments"))),
            fmt(w_seg), fmt(w_long), "-" if w_seg is None else fmt(w_long - w_seg, 1), fmt(rtf_seg, 3),
            fmt(long.rtf(sum(secs.values())), 3), fmt(rss_seg, 2), fmt(long.meta().get("decode_peak_rss_gib"), 2),
            f"`{options}`" if options else "-"]


def long_form(args, out: List[str]) -> None:
    rows = []
    grid = split_pause_grid(args)
    if grid:
        from espnet_llm.studies import best_setting

        best = best_setting(grid)
        dev = args.pause_dev_set
        seg = Study(args.studies_dir / "segments_greedy" / dev, args.data_root / dev)
        for value in grid:
            long = Study(args.studies_dir / f"{PAUSE_GRID}{value}" / f"{dev}_long", args.data_root / f"{dev}_long")
            row = long_form_row(args, f"{dev}_long", seg, long)
            if row:
                row[-1] += " (dev grid: chosen)" if value == best else " (dev grid)"
                rows.append(row)
    for base in args.long_sets:
        seg = Study(args.studies_dir / "segments_greedy" / base, args.data_root / base)
        for long_set in (f"{base}_long", f"{base}_all_long"):
            for study in ("longform_greedy", PAUSE_CHOSEN):
                row = long_form_row(args, long_set, seg, Study(args.studies_dir / study / long_set,
                                                               args.data_root / long_set))
                if row:
                    rows.append(row)
    out.append("## Long recordings\n")
    if not rows:
        out.append("Not measured: no long-form decodes under `longform_greedy/`.\n")
        return
    out.append("Each long recording is a speaker's (or, `_all_long`, the whole set's) utterances joined with 1 s of "
               "silence (`datadir_tool concat`); the long-form decoding cuts a recording longer than the encoder's window "
               "at pauses with Silero VAD into segments no longer than the window (`llm_asr_inference --long_form true "
               "--max_segment_seconds`, 30 s in run_studies.sh), joining speech across a pause only up to "
               "`--merge_segment_seconds` (8 s: the speech LLM learnt from single utterances of 1-8 s), and decodes "
               "them in batches (greedy). "
               "Both columns are scored by sclite on the same reference: the long recordings' text, with the "
               "hypotheses of decoding the reference segments one by one joined per recording. RTF: decoding "
               "seconds per audio second; peak RSS of the decoding process. Options: the long-form options of the "
               "decode (its `command.txt`).\n")
    if grid:
        out.append("With `--split_pause_seconds` speech is also never joined across a pause at least that long (the "
                   "silence between the VAD's speech regions, before their padding): the joined recordings pause 1 s "
                   "(plus the utterances' own silences) between utterances, less between the spelled letters inside "
                   f"one. Its value is chosen on `{args.pause_dev_set}_long` ({args.pause_dev_set}'s utterances joined "
                   f"per speaker) among {', '.join(grid)} s: dev WER {', '.join(fmt(w) for w in grid.values())}; "
                   f"the lowest, {best} s (ties: the longest pause), decodes the other sets (`{PAUSE_CHOSEN}/`).\n")
    out.append("|set|recordings|longest (min)|VAD segments|WER segments one by one|WER long-form|difference"
               "|RTF segments|RTF long-form|peak RSS segments (GiB)|peak RSS long-form (GiB)|options|")
    out.append("|" + "---|" * 12)
    out += ["|" + "|".join(r) + "|" for r in rows]
    out.append("")


def am_of(ref_ctm: Path) -> str:
    """The AM exp dir of a `ctc_align` CTM at `<am exp>/align_<model>/<set>/ctm` (else the CTM's own path)."""
    parts = ref_ctm.parts
    return str(Path(*parts[:-3])) if len(parts) > 3 and parts[-3].startswith("align_") else str(ref_ctm)


def word_times(args, out: List[str]) -> None:
    from espnet_llm.studies import boundary_errors, mean, read_ctm

    hyp_path = args.studies_dir / "wordtimes_greedy" / "test" / "1best_recog" / "ctm"
    out.append("## Word times\n")
    if not (hyp_path.is_file() and args.ref_ctm and args.ref_ctm.is_file()):
        out.append("Not measured: no `wordtimes_greedy/test/1best_recog/ctm` or no `--ref_ctm`.\n")
        return
    hyp, ref = read_ctm(hyp_path), read_ctm(args.ref_ctm)
    e = boundary_errors(ref, hyp)
    both = sorted(e["start"] + e["end"])
    median = both[len(both) // 2] if both else None
    within = sum(x <= 0.1 for x in both) / len(both) * 100 if both else None
    monotonic = all(a.end <= b.start + 1e-6 and a.start <= a.end for ws in hyp.values() for a, b in zip(ws, ws[1:]))
    out.append("The speech LLM's 1-best (greedy) aligned on its own CTC head by CTC segmentation "
               "(`llm_asr_inference --word_times true`, `1best_recog/ctm`), against the reference transcripts aligned "
               f"by another model, the CTC of the AM `{am_of(args.ref_ctm)}` (`espnet_llm.bin.ctc_align`, ESPnet's "
               f"CTCSegmentation): the words the two share (a minimum-edit pairing per utterance).\n")
    out.append("|set|utterances|words paired / reference words|mean abs start error (ms)|mean abs end error (ms)"
               "|median abs boundary error (ms)|boundaries within 100 ms|CTM ordered in time|")
    out.append("|---|---|---|---|---|---|---|---|")
    out.append(f"|test|{e['utts']}|{e['words']} / {e['ref_words']}|{fmt(_ms(mean(e['start'])), 0)}|"
               f"{fmt(_ms(mean(e['end'])), 0)}|{fmt(_ms(median), 0)}|{fmt(within)} %|{'yes' if monotonic else 'no'}|")
    out.append("")
    if args.plot:
        utt = plot_word_times(args, hyp, ref)
        if utt:
            out.append(f"![words of {utt} on its waveform]({args.plot.name})\n")
            out.append(f"`{args.plot.name}`: utterance {utt}, the speech LLM's words above the waveform, the "
                       "reference alignment's below.\n")


def _ms(x: Optional[float]) -> Optional[float]:
    return None if x is None else 1000 * x


def plot_word_times(args, hyp, ref) -> Optional[str]:
    """The waveform of the test utterance with the most paired words, the two alignments' words placed on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from espnet_llm.audio import load_audio
    from espnet_llm.datadir import read_table

    utts = sorted(set(hyp) & set(ref), key=lambda u: (-len(ref[u]), u))
    if not utts:
        return None
    utt = utts[0]
    wav = load_audio(read_table(args.data_root / "test" / "wav.scp")[utt], 16000, utt_id=utt)
    t = np.arange(len(wav)) / 16000
    fig, ax = plt.subplots(figsize=(11, 3.2))
    ax.plot(t, wav, color="0.6", linewidth=0.5)
    top = float(np.abs(wav).max()) or 1.0
    for words, y, color in ((hyp[utt], 1.15 * top, "tab:blue"), (ref[utt], -1.15 * top, "tab:orange")):
        for w in words:
            ax.axvspan(w.start, w.end, ymin=0.5 + 0.42 * np.sign(y) - 0.05, ymax=0.5 + 0.42 * np.sign(y) + 0.05,
                       color=color, alpha=0.35)
            ax.text((w.start + w.end) / 2, y, w.word, ha="center", va="center", fontsize=8, color=color)
    ax.set_ylim(-1.4 * top, 1.4 * top)
    ax.set_xlabel("seconds")
    ax.set_yticks([])
    ax.set_title(f"{utt}: speech LLM (CTC head, above) and reference alignment (Whisper-encoder AM, below)", fontsize=9)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    plt.close(fig)
    return utt


def hotwords(args, out: List[str]) -> None:
    from espnet_llm.decode.hotwords import read_hotwords
    from espnet_llm.scoring import read_text
    from espnet_llm.studies import hotword_recall, with_phrases

    biased_file = args.data_root / "hotwords" / "biased.txt"
    out.append("## Hotword biasing\n")
    if not biased_file.is_file():
        out.append("Not measured: no `data/hotwords/biased.txt`.\n")
        return
    phrases = read_hotwords(str(biased_file))
    lists = {"none": "no list", "biased": f"{len(phrases)} phrases"}
    dfile = args.data_root / "hotwords" / "distractors.txt"
    if dfile.is_file():
        lists["distractors"] = f"{len(phrases)} phrases + {len(read_hotwords(str(dfile))) - len(phrases)} distractors"
    grid = hotword_bonus_grid(args)
    if grid:
        from espnet_llm.studies import best_setting

        dev_words = read_hotwords(str(args.data_root / "hotwords" / f"{args.hotword_dev_set}_rare.txt"))
        chosen = best_setting({v: w for v, (w, _, _) in grid.items()}, ties="smallest")
        out.append(f"`--hotword_bonus` is chosen on {args.hotword_dev_set} with a list of its rare words "
                   f"({', '.join(dev_words)}: the words of its transcripts that training's have at most twice; "
                   f"`data/hotwords/{args.hotword_dev_set}_rare.txt`), the lowest WER (ties: the smallest bonus):\n")
        out.append("|bonus|" + "|".join(grid) + "|")
        out.append("|---|" + "---|" * len(grid))
        out.append(f"|{args.hotword_dev_set} WER|" + "|".join(fmt(w) for w, _, _ in grid.values()) + "|")
        out.append("|rare words found|" + "|".join(f"{f} / {n}" for _, f, n in grid.values()) + "|")
        out.append(f"\nChosen: {chosen}.\n")
    rows = []
    for dset in args.hotword_sets:
        ref = read_text(args.data_root / dset / "text")
        plain = set(ref) - set(with_phrases(ref, phrases))
        for name, label in lists.items():
            study = Study(args.studies_dir / f"hotwords_{name}" / dset, args.data_root / dset)
            if not study.done:
                continue
            hyp = study.text()
            found, occurring = hotword_recall(ref, hyp, phrases)
            w_all = wer(ref, hyp, study.path / "score_study")
            w_plain = wer({u: ref[u] for u in plain}, {u: hyp[u] for u in plain if u in hyp},
                          study.path / "score_study_without") if plain else None
            bonus = command_bonus(study.path)
            rows.append([dset, label + (f", bonus {bonus}" if bonus and name != "none" else ""),
                         f"{found} / {occurring}", fmt(w_all["Err"]),
                         fmt(w_plain["Err"]) if w_plain else "-", str(len(plain))])
    if not rows:
        out.append("Not measured: no decodes under `hotwords_*/`.\n")
        return
    out.append(f"Beam search 10 with joint CTC 0.3 (`conf/decode_llm_beam10_ctc0.3.yaml`) and `--hotwords`: a trie "
               f"over the LLM's tokens adds `hotword_bonus` per token of a listed phrase and takes it back when a "
               f"partial match fails. Biased phrases: {', '.join(phrases)} (`local/hotwords.txt`: AN4 test's two "
               f"words never seen in training and a name of the LibriVox clips); distractors: frequent Gutenberg words "
               f"that no transcript of the recipe has (`espnet_llm.bin.hotword_list`). Found: occurrences of the "
               f"biased phrases in the references that the hypothesis has.\n")
    out.append("|set|list|biased phrases found|WER|WER without biased phrases|utterances without|")
    out.append("|---|---|---|---|---|---|")
    out += ["|" + "|".join(r) + "|" for r in rows]
    out.append("")


def command_bonus(path: Path) -> Optional[str]:
    """The --hotword_bonus of a decode dir's command.txt (None: not given there)."""
    from espnet_llm.studies import command_options

    command = path / "command.txt"
    if not command.is_file():
        return None
    options = command_options(command.read_text(encoding="utf-8"), ["--hotword_bonus"]).split()
    return options[1] if len(options) == 2 else None


def fallback(args, out: List[str]) -> None:
    from espnet_llm.scoring import read_text
    from espnet_llm.studies import is_runaway

    out.append("## CTC fallback against hallucination\n")
    none = args.studies_dir / "fallback_none"
    # per mode (joint: decoded again with joint CTC; ctc: the CTC best path), the threshold of the lowest dev WER
    chosen, grids = [], []
    for mode in ("joint", "ctc"):
        dev_wer = {}
        for path in sorted(p for p in args.studies_dir.glob(f"fallback_{mode}_t*") if p.is_dir()):
            study = Study(path / "dev", args.data_root / "dev")
            if study.done:
                dev_wer[path] = wer(args.data_root / "dev" / "text", study.path / "1best_recog" / "text",
                                    study.path / "score_study")["Err"]
        if dev_wer:
            best = min(dev_wer, key=lambda p: (dev_wer[p], -float(p.name.split("_t", 1)[1])))
            chosen.append((f"{mode}, threshold {best.name.split('_t', 1)[1]}", best))
            grids.append(f"`{mode}` among " + ", ".join(p.name.split("_t", 1)[1] for p in dev_wer)
                         + " (dev WER " + ", ".join(f"{w:.1f}" for w in dev_wer.values()) + ")")
    if not none.is_dir() or not chosen:
        out.append("Not measured: no decodes under `fallback_none/` and dev decodes under `fallback_{joint,ctc}_t*/`.\n")
        return
    gate = args.studies_dir / "vadgate_greedy"
    systems = [("none", none)] + ([("none, VAD gate", gate)] if gate.is_dir() else []) + chosen
    rows = []
    for label, root in systems:
        row = [label]
        for dset in args.fallback_sets:
            study = Study(root / dset, args.data_root / dset)
            if not study.done:
                row.append("-")
                continue
            hyp, secs = study.text(), durations(study.data)
            marked = sum(1 for v in study.text("fallback").values() if v.strip() not in ("", "-"))
            runaway = sum(is_runaway(hyp.get(u, ""), s) for u, s in secs.items())
            cell = f"runaway {runaway}/{len(secs)}"
            if (study.data / "text").is_file():
                cell = f"WER {wer(read_text(study.data / 'text'), hyp, study.path / 'score_study')['Err']:.1f}, " + cell
            else:
                cell = f"non-empty {sum(1 for u in secs if hyp.get(u, '').strip())}/{len(secs)}, " + cell
            if root == gate:
                cell += f", gated {sum(1 for v in study.text('vad').values() if v.strip() == 'no_speech')}"
            elif label != "none":
                cell += f", fell back {marked}"
            row.append(cell)
        rows.append(row)
    out.append("Greedy search (`conf/decode_llm_greedy.yaml`, with its repetition stop) without and with "
               "`--fallback joint|ctc`: a 1-best that loops, runs to the length bound or disagrees with the CTC head's "
               "best path by more than the threshold (word error rate between the two) is decoded again with joint "
               "CTC (weight 0.5; `joint`) or replaced by the CTC head's best path (`ctc`). Each mode's threshold is "
               f"chosen on dev: {'; '.join(grids)}. Stress sets (`make_stress_set`): "
               "`stress_nonspeech` has silence, noise and tone melodies (any output is a hallucination), "
               "`stress_speech` very short, 25-s joined and out-of-domain speech. Runaway: a word n-gram repeated "
               "more than 3 times, or more than 5 words per second of audio plus 2. VAD gate (`--vad_gate true`): "
               "a recording in which Silero VAD finds no speech is not decoded (gated: how many).\n")
    out.append("|fallback|" + "|".join(args.fallback_sets) + "|")
    out.append("|---|" + "---|" * len(args.fallback_sets))
    out += ["|" + "|".join(r) + "|" for r in rows]
    out.append("")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.out is None and not (args.choose_split_pause or args.choose_hotword_bonus):
        parser.error("--out is required (unless --choose_split_pause or --choose_hotword_bonus)")
    if not args.studies_dir.is_dir():
        sys.exit(f"studies_report: {args.studies_dir} does not exist (run the studies' decodes first)")
    if args.choose_split_pause:
        from espnet_llm.studies import best_setting

        grid = split_pause_grid(args)
        if not grid:
            sys.exit(f"studies_report: no decodes of {args.pause_dev_set}_long under "
                     f"{args.studies_dir}/{PAUSE_GRID}<seconds>/ to choose --split_pause_seconds from")
        best = best_setting(grid)
        print(f"studies_report: {args.pause_dev_set}_long WER by --split_pause_seconds: "
              f"{', '.join(f'{v}: {w:.1f}' for v, w in grid.items())}; chosen {best}", file=sys.stderr)
        print(best)
        return 0
    if args.choose_hotword_bonus:
        from espnet_llm.studies import best_setting

        grid = hotword_bonus_grid(args)
        if not grid:
            sys.exit(f"studies_report: no decodes of {args.hotword_dev_set} with data/hotwords/"
                     f"{args.hotword_dev_set}_rare.txt under {args.studies_dir}/{BONUS_GRID}<bonus>/ to choose "
                     "--hotword_bonus from")
        best = best_setting({v: w for v, (w, _, _) in grid.items()}, ties="smallest")
        print(f"studies_report: {args.hotword_dev_set} WER (rare words found) by --hotword_bonus: "
              f"{', '.join(f'{v}: {w:.1f} ({f}/{n})' for v, (w, f, n) in grid.items())}; chosen {best}", file=sys.stderr)
        print(best)
        return 0
    from espnet_llm.results import environment

    env = environment()
    out = ["# Decoding studies\n",
           f"Generated by `{args.command}` (its last step, `espnet_llm.bin.studies_report`) from the decodes under "
           f"`{args.studies_dir}`; every decode dir holds its `command.txt`. Figures in %, unless named otherwise; "
           f"timings from one decoding process of 2 threads with nothing else running.\n",
           "## Environments"]
    out += [f"- {k}: `{v}`" for k, v in env.items()]
    out.append("")
    for study in (long_form, word_times, hotwords, fallback):
        study(args, out)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"studies_report: -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
