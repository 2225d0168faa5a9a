"""Scoring with NIST sclite, as ESPnet's asr.sh does, and significance tests with sc_stats.

Layout written by `score` for one decoding of one test set (unit = word or char):

    <out_dir>/ref.trn      `WORDS (spk-uttid)` per line, in reference order
    <out_dir>/hyp.trn      same ids; a hypothesis missing from the hyp text is an empty line
    <out_dir>/result.txt   `sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout`
    <out_dir>/result.json  the `Sum/Avg` percentages and the `Sum` counts (keys as sclite names them)

For characters, tokens are the characters of each word and `<space>` marks word boundaries
("AB C" -> "A B <space> C"), as ESPnet's `tokenize_text --token_type char` writes them.
"""
import json
import logging
import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from espnet_llm.datadir import text_lines

logger = logging.getLogger(__name__)

SCTK_DIR = Path("/usr/lib/sctk/bin")
SCORE_KEYS = ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")
UNITS = ("word", "char")
NORMALIZATIONS = ("upper", "none")
SPACE_TOKEN = "<space>"

TextSource = Union[str, os.PathLike, Mapping[str, str]]


def find_sctk_tool(name: str = "sclite") -> str:
    """Path of an SCTK program: $SCLITE (sc_stats is looked for beside it), PATH, then /usr/lib/sctk/bin."""
    candidates = []
    sclite_env = os.environ.get("SCLITE")
    if sclite_env:
        candidates.append(Path(sclite_env) if name == "sclite" else Path(sclite_env).parent / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(SCTK_DIR / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(
        f"{name} (NIST SCTK) not found: looked at $SCLITE, PATH and {SCTK_DIR}. "
        f"Install it with `apt-get install sctk` or set SCLITE=/path/to/sclite."
    )


def read_text(source: TextSource) -> Dict[str, str]:
    """Kaldi `text` (`<uttid> WORDS...`) as {uttid: words}, in file order; a mapping is copied."""
    if isinstance(source, Mapping):
        return dict(source)
    texts: Dict[str, str] = {}
    for lineno, line in text_lines(source):
        line = line.strip()
        if not line:
            continue
        uttid, _, words = line.partition(" ")
        if uttid in texts:
            raise ValueError(f"{source}:{lineno}: duplicate utterance id {uttid!r}")
        texts[uttid] = words.strip()
    return texts


def read_utt2spk(path: Union[str, os.PathLike]) -> Dict[str, str]:
    return dict(line.split()[:2] for _, line in text_lines(path) if line.strip())


_INNER_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")


def normalize_text(words: str, normalize: str = "upper", remove_punct: bool = False) -> str:
    """Upper-case (AN4 references are upper-case) and optionally drop punctuation.

    Punctuation is any Unicode `P*` character, except an apostrophe inside a word (DON'T). Control characters
    (Unicode `Cc`) separate words.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if remove_punct:
        kept = _INNER_APOSTROPHE.sub("\0", words)
        kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in kept)
        words = kept.replace("\0", "'")
    if normalize == "upper":
        words = words.upper()
    # control characters (a byte-level BPE LLM can emit any byte) would end sclite's line parsing: a word boundary
    words = "".join(" " if unicodedata.category(c) == "Cc" else c for c in words)
    return " ".join(words.split())


def to_tokens(words: str, unit: str) -> List[str]:
    if unit == "word":
        return words.split()
    if unit == "char":
        return list(f" {SPACE_TOKEN} ".join(" ".join(word) for word in words.split()).split())
    raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


def _format_ids(ids: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown} ... and {len(ids) - limit} more"


def align_hyp_to_ref(ref: Mapping[str, str], hyp: Mapping[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """Hypotheses in reference order; missing ones become empty (and are returned), unknown ids are an error."""
    unknown = [uttid for uttid in hyp if uttid not in ref]
    if unknown:
        raise ValueError(f"{len(unknown)} hypothesis ids are not in the reference: {_format_ids(unknown)}")
    missing = [uttid for uttid in ref if uttid not in hyp]
    if missing:
        logger.warning(
            "%d of %d utterances have no hypothesis and are scored as empty: %s",
            len(missing), len(ref), _format_ids(missing),
        )
    return {uttid: hyp.get(uttid, "") for uttid in ref}, missing


def write_trn(path: Union[str, os.PathLike], tokens: Mapping[str, Sequence[str]], utt2spk: Mapping[str, str]) -> None:
    """sclite `trn`: `TOKENS (spk-uttid)` per line, as ESPnet writes it."""
    with open(path, "w", encoding="utf-8") as f:
        for uttid, toks in tokens.items():
            f.write(f"{' '.join(toks)} ({utt2spk.get(uttid, uttid)}-{uttid})\n")


def run_sclite(ref_trn: Path, hyp_trn: Path, result_txt: Path, case_sensitive: bool = False) -> str:
    """Run sclite in the directory of the trn files (its reports name the files relative to it)."""
    cmd = [find_sctk_tool("sclite"), "-r", Path(ref_trn).name, "trn", "-h", Path(hyp_trn).name, "trn",
           "-i", "rm", "-o", "all", "stdout"]
    if case_sensitive:
        cmd.append("-s")
    proc = subprocess.run(cmd, cwd=Path(hyp_trn).parent, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sclite failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    Path(result_txt).write_text(proc.stdout, encoding="utf-8")
    return proc.stdout


_ROW = r"^\s*\|\s*{label}\s*\|([^|]*)\|([^|]*)\|"


def parse_sclite_result(result_txt: str) -> dict:
    """Snt, Wrd and the `Sum/Avg` percentages of an sclite `-o all` report, with the `Sum` counts under `counts`."""
    pct = re.search(_ROW.format(label=re.escape("Sum/Avg")), result_txt, re.MULTILINE)
    cnt = re.search(_ROW.format(label="Sum"), result_txt, re.MULTILINE)
    if pct is None or cnt is None:
        raise ValueError("no `Sum/Avg` and `Sum` rows in the sclite report (was it run with `-o all`?)")
    snt, wrd = (int(x) for x in pct.group(1).split())
    percents = [float(x) for x in pct.group(2).split()]
    counts = [int(x) for x in cnt.group(2).split()]
    if len(percents) != len(SCORE_KEYS) or len(counts) != len(SCORE_KEYS):
        raise ValueError(f"unexpected sclite summary rows: {pct.group(0)!r} / {cnt.group(0)!r}")
    return {"Snt": snt, "Wrd": wrd, **dict(zip(SCORE_KEYS, percents)), "counts": dict(zip(SCORE_KEYS, counts))}


def score(
    ref_text: TextSource,
    hyp_text: TextSource,
    out_dir: Union[str, os.PathLike],
    unit: str = "word",
    normalize: str = "upper",
    remove_punct: bool = False,
    utt2spk: Optional[Mapping[str, str]] = None,
) -> dict:
    """Score a hypothesis `text` against a reference `text` with sclite; returns what result.json holds.

    Speakers come from `utt2spk`, else from the `utt2spk` beside a reference file, else each utterance is
    its own speaker. `normalize="none"` also makes sclite case-sensitive (`-s`).
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    ref = read_text(ref_text)
    hyp, missing = align_hyp_to_ref(ref, read_text(hyp_text))
    if utt2spk is None and not isinstance(ref_text, Mapping):
        beside = Path(ref_text).parent / "utt2spk"
        utt2spk = read_utt2spk(beside) if beside.is_file() else {}
    utt2spk = utt2spk or {}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, texts in (("ref.trn", ref), ("hyp.trn", hyp)):
        tokens = {u: to_tokens(normalize_text(w, normalize, remove_punct), unit) for u, w in texts.items()}
        write_trn(out_dir / name, tokens, utt2spk)
    report = run_sclite(out_dir / "ref.trn", out_dir / "hyp.trn", out_dir / "result.txt",
                        case_sensitive=normalize == "none")
    result = {"unit": unit, **parse_sclite_result(report), "missing_hyp": missing}
    (out_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def read_result(score_dir: Union[str, os.PathLike]) -> dict:
    """result.json of a score dir, or the parse of its result.txt when there is no json."""
    score_dir = Path(score_dir)
    if (score_dir / "result.json").is_file():
        return json.loads((score_dir / "result.json").read_text(encoding="utf-8"))
    return parse_sclite_result((score_dir / "result.txt").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------------------
# Significance: matched-pair sentence-segment (MAPSSWE) and sign tests with sc_stats


_TRN_LINE = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")


def read_trn(path: Union[str, os.PathLike]) -> Dict[str, str]:
    """sclite trn as {id: tokens} (id = what is inside the parentheses), in file order."""
    entries: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            match = _TRN_LINE.match(line.rstrip("\n"))
            if match is None:
                raise ValueError(f"{path}:{lineno}: not a trn line (`TOKENS (spk-uttid)`): {line.strip()!r}")
            tokens, trn_id = match.group(1).strip(), match.group(2)
            if trn_id in entries:
                raise ValueError(f"{path}:{lineno}: duplicate id {trn_id!r}")
            entries[trn_id] = tokens
    return entries


def _write_sig_trn(path: Path, entries: Mapping[str, str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for trn_id, tokens in entries.items():
            f.write(f"{tokens} ({trn_id})\n")


def parse_sc_stats_unified(report: str, names: Sequence[str]) -> List[dict]:
    """Verdicts of a two-system `sc_stats -u` report.

    Each row is `|ABBREV||row system|cell...||ABBREV|`; a filled cell reads `<winner or ~> <p> <stars>`.
    """
    legend = dict(
        (m.group(2), m.group(1).strip())
        for m in re.finditer(r"^\|\s+([^|]*?\S)\s{3,}([A-Z]{2})\s+\|$", report, re.MULTILINE)
    )
    tests = []
    for line in report.splitlines():
        parts = line.split("||")
        if len(parts) != 3:
            continue
        abbrev = parts[0].strip("| ").strip()
        for cell in parts[1].split("|"):
            match = re.fullmatch(r"\s*(\S+)\s+([<>]?\d*\.?\d+)\s*(\**)\s*", cell)
            if match and abbrev in legend:
                winner = match.group(1)
                tests.append({
                    "test": abbrev,
                    "name": legend[abbrev],
                    "significant": winner != "~",
                    "better": None if winner == "~" else winner,
                    "p": match.group(2),
                    "p_text": match.group(2) if match.group(2)[0] in "<>" else f"={match.group(2)}",
                    "level": match.group(3),
                })
    if not tests:
        raise ValueError("no test verdicts found in the sc_stats report")
    unknown = [t["better"] for t in tests if t["better"] not in (None, *names)]
    if unknown:
        raise ValueError(f"sc_stats names systems {unknown} that are not among {list(names)}")
    return tests


def utterance_errors(sgml: str) -> Dict[str, int]:
    """Errors (substitutions + deletions + insertions) per utterance id of one system's sclite sgml alignment."""
    errors, current = {}, None
    for line in sgml.splitlines():
        match = re.match(r'<PATH id="\((.*)\)"', line)
        if match:
            current = match.group(1)
            errors[current] = 0
        elif current is not None and not line.startswith("<"):
            errors[current] += sum(1 for item in line.split(":") if item[:1] in ("S", "D", "I"))
        elif line.startswith("</PATH>"):
            current = None
    return errors


def exact_sign_test(out_dir: Path, names: Sequence[str], alpha: float = 0.05) -> dict:
    """Sign test over utterances from the two sclite alignments: exact binomial p, ties dropped.

    Replaces sc_stats' sign test: sctk 2.4 splits the ties between N(+) and N(-) and reports p < 0.001 for any
    counts once there are more than a few dozen speakers (130 AN4 utterances as speakers: 28 better, 19 worse,
    83 ties gave "p<0.001" where the binomial p is 0.24), and `sc_stats -t sign -v` crashed on identical systems.
    p is `scipy.stats.binomtest(n_worse, n_better + n_worse, 0.5)`, two-sided."""
    from scipy.stats import binomtest

    first, second = (utterance_errors((Path(out_dir) / f"{n}.sgml").read_text(encoding="utf-8")) for n in names)
    if set(first) != set(second):
        raise ValueError(f"{names[0]} and {names[1]} alignments differ in utterances")
    plus = sum(second[u] < first[u] for u in first)  # the second system makes fewer errors
    minus = sum(second[u] > first[u] for u in first)
    p = float(binomtest(minus, plus + minus, 0.5).pvalue) if plus + minus else 1.0
    significant = p < alpha
    return {
        "test": "SI",
        "name": f"sign test over utterances, exact binomial, ties dropped ({names[1]} fewer errors on {plus}, "
                f"more on {minus}, {len(first) - plus - minus} ties)",
        "significant": significant,
        "better": (names[1] if plus > minus else names[0]) if significant else None,
        "p": "<0.001" if p < 0.001 else f"{p:.3f}",
        "p_text": "<0.001" if p < 0.001 else f"={p:.3f}",
        "level": "***" if p < 0.001 else "**" if p < 0.01 else "*" if significant else "",
    }


def significance_test(
    ref_trn: Union[str, os.PathLike],
    hyp_trns: Sequence[Union[str, os.PathLike]],
    names: Sequence[str],
    out_dir: Union[str, os.PathLike],
    sign_unit: str = "utterance",
) -> dict:
    """Compare two hypothesis trn files on one reference trn with sc_stats (MAPSSWE and sign tests).

    MAPSSWE is sc_stats'. The sign test pairs utterances (`sign_unit="utterance"`: `exact_sign_test`, since
    sc_stats' own is wrong with many pairs) or speakers (sc_stats' per-speaker error rates; a test set of 10
    speakers gives it no power).
    Writes <out_dir>/{ref.trn, <name>.trn, <name>.sgml, significance.stats.unified, significance.txt}.
    """
    if len(hyp_trns) != 2 or len(names) != 2:
        raise ValueError("significance_test compares exactly two systems")
    if names[0] == names[1] or any(not re.fullmatch(r"[\w.+-]+", n) or n in ("ref", "significance") for n in names):
        raise ValueError(f"system names must differ, not be 'ref' or 'significance', and be single words"
                         f" of [A-Za-z0-9_.+-]: {list(names)}")
    if sign_unit not in ("utterance", "speaker"):
        raise ValueError(f"sign_unit must be utterance or speaker, got {sign_unit!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    ref = read_trn(ref_trn)
    hyps = [read_trn(path) for path in hyp_trns]
    for name, path, hyp in zip(names, hyp_trns, hyps):
        if set(hyp) != set(ref):
            diff = sorted(set(hyp) ^ set(ref))
            raise ValueError(f"{name} ({path}) and the reference differ in ids: {_format_ids(diff)}")
    _write_sig_trn(out_dir / "ref.trn", ref)
    for name, hyp in zip(names, hyps):
        _write_sig_trn(out_dir / f"{name}.trn", {i: hyp[i] for i in ref})

    sclite = find_sctk_tool("sclite")
    summaries = {}
    for name in names:
        cmd = [sclite, "-r", "ref.trn", "trn", "-h", f"{name}.trn", "trn", name, "-i", "rm",
               "-o", "sgml", "sum", "rsum", "-n", name]
        proc = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True)
        if proc.returncode != 0 or not (out_dir / f"{name}.sgml").is_file():
            raise RuntimeError(f"sclite failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
        summaries[name] = parse_sclite_result(
            "".join((out_dir / f"{name}.{ext}").read_text(encoding="utf-8") for ext in ("sys", "raw"))
        )

    sgml = "".join((out_dir / f"{name}.sgml").read_text(encoding="utf-8") for name in names)
    # the sign test over utterances is exact_sign_test's; sctk's sign test only for speakers
    sign = ["-t", "sign"] if sign_unit == "speaker" else []
    cmd = [find_sctk_tool("sc_stats"), "-p", "-t", "mapsswe", *sign, "-u", "-n", "significance"]
    proc = subprocess.run(cmd, cwd=out_dir, input=sgml, capture_output=True, text=True)
    report_path = out_dir / "significance.stats.unified"
    if proc.returncode != 0 or not report_path.is_file():
        raise RuntimeError(f"sc_stats failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    report = report_path.read_text(encoding="utf-8")
    tests = parse_sc_stats_unified(report, names)
    if sign_unit == "utterance":  # sctk's sign test is wrong with many "speakers" (exact_sign_test)
        tests.append(exact_sign_test(out_dir, names))

    errors = {name: summaries[name]["counts"]["Err"] for name in names}
    better = None if errors[names[0]] == errors[names[1]] else min(names, key=errors.get)
    summary = "; ".join(
        [" vs ".join(f"{n} {summaries[n]['Err']:.1f}% ({errors[n]} errors)" for n in names)]
        + [f"{t['test']}: {t['better'] + ' better' if t['significant'] else 'no significant difference'}"
           f" (p{t['p_text']}{' ' + t['level'] if t['level'] else ''})" for t in tests]
    )
    lines = [
        f"# {summary}",
        f"reference: {ref_trn}",
        *(f"{n}: {p} Err {summaries[n]['Err']:.1f}% ({errors[n]} errors / {summaries[n]['Wrd']} tokens,"
          f" {summaries[n]['Snt']} segments)" for n, p in zip(names, hyp_trns)),
        f"fewer errors: {better or 'tie'}",
        f"sign test unit: {sign_unit}",
        *(f"{t['name']} ({t['test']}): "
          f"{t['better'] + ' better' if t['significant'] else 'no significant difference'} at p=0.05,"
          f" p{t['p_text']} {t['level']}".rstrip() for t in tests),
        "",
        report,
    ]
    (out_dir / "significance.txt").write_text("\n".join(lines), encoding="utf-8")
    return {"names": list(names), "summaries": summaries, "better": better, "tests": tests, "summary": summary}
