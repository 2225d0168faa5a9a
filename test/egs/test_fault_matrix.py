"""The fault matrix: bad input and faults on the tiny AN4 recipe, each in a copy of one finished run.

Each case asserts what the user sees (a message naming the file, utterance, option or owner, in run.sh's output or
in the job log that run.sh names) and that every file the run had made before is byte-identical afterwards (apart
from the files the case is about). docs/faults.md lists the cases as a table.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
AN4 = REPO.parent / "shared" / "data" / "an4"
pytestmark = pytest.mark.skipif(not (AN4 / "etc").is_dir(), reason=f"AN4 not found at {AN4}")

SUB = "_sub10"
TEST = f"test{SUB}"


def base_args(llm_dir):
    return [
        "--subset", "10", "--test_sets", "test", "--llm_test_sets", "test", "--llm_input", "fbank", "--nj", "2",
        "--inference_nj", "2", "--nthreads", "1", "--speed_perturb_factors", "",
        "--asr_config", "conf/tuning/train_asr_tiny.yaml", "--asr_inference_config", "conf/decode_asr_tiny.yaml",
        "--llm", str(llm_dir), "--llm_name", "tiny", "--llm_init_encoder", "false", "--llm_asr_first_config", "",
        "--llm_asr_config", "conf/tuning/train_llm_asr_tiny.yaml", "--llm_inference_config", "conf/decode_llm_greedy.yaml",
    ]


def env():
    return dict(os.environ, AN4_ROOT=str(AN4), LIBRIVOX_ROOT=str(AN4.parent / "librivox-clips"),
                LIBRISPEECH_TEXT=str(AN4.parent / "text" / "librispeech-dev-clean"))


def run(recipe: Path, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run([str(recipe / "run.sh"), *map(str, args)], cwd=recipe, capture_output=True, text=True,
                            timeout=timeout, env=env(), check=False)
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result


def seen(recipe: Path, result) -> str:
    """What the user sees: run.sh's output and the job log it names ("log is in <log>")."""
    text = result.stdout + result.stderr
    for log in re.findall(r"log is in (\S+)", text):
        path = recipe / log
        if path.is_file():
            text += "\n" + path.read_text(errors="replace")
    return text


SKIP_IN_SNAPSHOT = re.compile(r"(\.log$|/q/|\.lock$|run_times\.tsv$|command\.txt$|meta\.json$|/\.done$)")


def snapshot(recipe: Path) -> dict:
    files = {}
    for top in ("data", "dump", "exp"):
        for p in sorted((recipe / top).rglob("*")):
            rel = str(p.relative_to(recipe))
            if p.is_file() and not p.is_symlink() and not SKIP_IN_SNAPSHOT.search(rel):
                files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


def assert_kept(before: dict, recipe: Path, changed: str | None = None) -> None:
    """Every file of `before` is still there, byte-identical, except those matching the regex `changed`."""
    after = snapshot(recipe)
    lost = [f for f in before if (changed is None or not re.search(changed, f)) and after.get(f) != before[f]]
    assert not lost, f"changed or lost: {lost[:10]}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_llm_dir, recipe_copy):
    """One tiny run of stages 1-12 (AM, speech LLM, decoding, scoring), the start of every case."""
    root = tmp_path_factory.mktemp("base")
    run(recipe_copy(root), *base_args(tiny_llm_dir), "--stop_stage", "12")
    return root


@pytest.fixture
def recipe(finished, tmp_path):
    """A copy of the finished run for one case."""
    shutil.copytree(finished, tmp_path / "r", symlinks=True)
    recipe = tmp_path / "r" / "egs" / "an4" / "asr1"
    return recipe


def decode_dir(recipe: Path) -> Path:
    (d,) = recipe.glob(f"exp/llm_asr_*/decode_llm_greedy_*/{TEST}")
    return d


def first_utt(recipe: Path) -> str:
    return (recipe / f"data/{TEST}/text").read_text().split()[0]


def point_audio(recipe: Path, make) -> tuple[str, Path]:
    """Point the first test utterance's wav.scp entry at a file that `make(path)` writes."""
    utt = first_utt(recipe)
    path = recipe / "bad_audio" / f"{utt}.wav"
    path.parent.mkdir(exist_ok=True)
    make(path)
    scp = recipe / f"data/{TEST}/wav.scp"
    lines = [f"{utt} {path}" if line.split()[0] == utt else line for line in scp.read_text().splitlines()]
    scp.write_text("\n".join(lines) + "\n")
    return utt, path


def edit_text(recipe: Path, edit) -> None:
    text = recipe / f"data/{TEST}/text"
    text.write_bytes(edit(text.read_bytes()))


# ------------------------------------------------------------------ bad audio and data dirs (stage 3)
AUDIO_CASES = {
    "corrupt": (lambda p: p.write_bytes(b"RIFF this is not audio" * 10), "corrupt or unsupported format"),
    "missing": (lambda p: None, "does not exist"),
    "8 kHz": (lambda p: sf.write(p, np.zeros(8000, np.float32), 8000), "has sample rate 8000 Hz, expected 16000 Hz"),
    "stereo": (lambda p: sf.write(p, np.zeros((16000, 2), np.float32), 16000), "has 2 channels, expected mono"),
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
}


@pytest.mark.parametrize("case", list(AUDIO_CASES))
def test_bad_audio_is_named_at_the_features_stage(recipe, tiny_llm_dir, case):
    make, message = AUDIO_CASES[case]
    before = snapshot(recipe)
    utt, path = point_audio(recipe, make)
    result = run(recipe, *base_args(tiny_llm_dir), "--stage", "3", "--stop_stage", "3", check=False)
    assert result.returncode != 0
    shown = seen(recipe, result)
    assert f"utterance {utt}" in shown and str(path) in shown and message in shown, shown[-3000:]
    assert_kept(before, recipe, changed=rf"data/{TEST}/(wav\.scp|split)|dump/fbank/{TEST}/")


DATA_CASES = {
    "empty transcript": (lambda r: edit_text(r, lambda b: re.sub(rb"^(\S+) [^\n]*", rb"\1", b, count=1)),
                         r"data/test_sub10/text line 1: utterance \S+ has an empty transcript"),
    "non-UTF-8 transcript": (lambda r: edit_text(r, lambda b: b.replace(b" ", b" CAF\xc9 ", 1)),
                             r"data/test_sub10/text line 1: not valid UTF-8 \(byte 0xc9"),
    "duplicate ids": (lambda r: edit_text(r, lambda b: b.split(b"\n")[0] + b"\n" + b),
                      r"data/test_sub10/text.*duplicate"),
    "unsorted": (lambda r: edit_text(r, lambda b: b"\n".join([b.split(b"\n")[1], b.split(b"\n")[0]]
                                                            + b.split(b"\n")[2:])),
                 r"data/test_sub10/text.*(sort|order)"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_dirs_are_named_before_anything_reads_them(recipe, tiny_llm_dir, case):
    make, message = DATA_CASES[case]
    before = snapshot(recipe)
    make(recipe)
    result = run(recipe, *base_args(tiny_llm_dir), "--stage", "3", "--stop_stage", "3", check=False)
    assert result.returncode != 0
    assert re.search(message, seen(recipe, result)), seen(recipe, result)[-3000:]
    assert_kept(before, recipe, changed=rf"data/{TEST}/text|dump/fbank/{TEST}/")


def test_an_utterance_too_long_for_the_llm_is_named_and_the_other_splits_are_kept(recipe, tiny_llm_dir):
    utt, path = point_audio(recipe, lambda p: sf.write(p, np.random.default_rng(0).normal(0, 0.1, 16000 * 120)
                                                      .astype(np.float32), 16000))  # 2 minutes
    run(recipe, *base_args(tiny_llm_dir), "--stage", "3", "--stop_stage", "3")
    before = snapshot(recipe)
    shutil.rmtree(decode_dir(recipe))
    result = run(recipe, *base_args(tiny_llm_dir), "--stage", "11", "--stop_stage", "11", check=False)
    assert result.returncode != 0
    shown = seen(recipe, result)
    assert f"utterance {utt} is too long for the LLM" in shown, shown[-3000:]
    assert_kept(before, recipe, changed=r"/decode_llm_greedy_")


def test_an_unseen_word_is_scored_as_an_error_not_a_crash(recipe, tiny_llm_dir):
    edit_text(recipe, lambda b: re.sub(rb"^(\S+ )", rb"\1XYLOPHONE ", b, count=1))
    before = snapshot(recipe)
    result = run(recipe, *base_args(tiny_llm_dir), "--stage", "12", "--stop_stage", "12")
    assert "Stage 12: Scoring" in result.stdout
    assert "XYLOPHONE" in (decode_dir(recipe) / "score_wer/result.txt").read_text()
    assert_kept(before, recipe, changed=r"/score_(wer|cer)/")  # only the scores are remade


# ------------------------------------------------------------------ configs, LLM dirs, options
def write_config(recipe: Path, name: str, edit) -> str:
    text = (recipe / "conf/tuning/train_llm_asr_tiny.yaml").read_text()
    (recipe / "conf/tuning" / name).write_text(edit(text))
    return f"conf/tuning/{name}"


CONFIG_CASES = {
    "top-level typo": (lambda t: t + "max_epochh: 2\n", r"unrecognized arguments: max_epochh \(from conf/tuning/bad\.yaml\)"),
    "nested typo": (lambda t: t.replace("    num_blocks: 1", "    num_block: 1"),
                    r"conf/tuning/bad\.yaml: encoder_conf: unknown key\(s\) num_block for transformer"),
    "malformed": (lambda t: t.replace("encoder_conf:", "encoder_conf: [", 1), r'in "conf/tuning/bad\.yaml", line \d+'),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_training_yaml_is_named(recipe, tiny_llm_dir, case):
    edit, message = CONFIG_CASES[case]
    before = snapshot(recipe)
    config = write_config(recipe, "bad.yaml", edit)
    args = base_args(tiny_llm_dir)
    args[args.index("--llm_asr_config") + 1] = config
    result = run(recipe, *args, "--stage", "9", "--stop_stage", "9", check=False)
    assert result.returncode != 0
    assert re.search(message, seen(recipe, result)), seen(recipe, result)[-3000:]
    assert_kept(before, recipe)


def test_llm_dir_missing_or_broken_is_named(recipe, tiny_llm_dir, tmp_path):
    before = snapshot(recipe)
    missing = tmp_path / "no_such_llm"
    result = run(recipe, "--llm", missing, "--llm_name", "other", "--stage", "7", "--stop_stage", "7", check=False)
    assert result.returncode != 0 and str(missing) in seen(recipe, result)
    broken = tmp_path / "broken_llm"
    shutil.copytree(tiny_llm_dir, broken)
    (broken / "config.json").write_text("{ not json")
    result = run(recipe, "--llm", broken, "--llm_name", "other", "--stage", "7", "--stop_stage", "7", check=False)
    assert result.returncode != 0 and str(broken) in seen(recipe, result), seen(recipe, result)[-3000:]
    assert_kept(before, recipe)


def test_a_swapped_llm_under_a_kept_name_is_refused(recipe, tiny_llm_dir, make_tiny_llm):
    before = snapshot(recipe)
    shutil.rmtree(decode_dir(recipe))
    args = base_args(make_tiny_llm("llama", seed=1))  # same architecture and tokenizer, other weights
    run(recipe, *args, "--stage", "7", "--stop_stage", "7")
    result = run(recipe, *args, "--stage", "11", "--stop_stage", "11", check=False)
    assert result.returncode != 0
    assert "trained with another LLM" in seen(recipe, result)
    assert_kept(before, recipe, changed=r"/decode_llm_greedy_")


def test_a_bad_stage_is_refused(recipe):
    before = snapshot(recipe)
    result = run(recipe, "--stage", "99", check=False)
    assert result.returncode == 2 and "--stage 99" in result.stdout + result.stderr
    assert_kept(before, recipe)


# ------------------------------------------------------------------ kills, concurrency, full and read-only disks
def start(recipe: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([str(recipe / "run.sh"), *map(str, args)], cwd=recipe, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env(), start_new_session=True)


def wait_for(condition, timeout=300, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def trainers(exp: str) -> list[int]:
    """pids of the python processes training into `exp` (not the runner or shell lines that name it)."""
    out = subprocess.run(["pgrep", "-af", "--", f"--output_dir {exp}"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()
            if len(line.split()) > 1 and Path(line.split()[1]).name.startswith("python")
            and "espnet_llm.bin.llm_asr_train" in line]


def long_training_args(llm_dir):
    args = base_args(llm_dir)
    return args + ["--llm_asr_tag", "kill", "--llm_asr_args", "--max_epoch 2 --num_iters_per_epoch 400"]


@pytest.mark.parametrize("what", ["the trainer", "the whole recipe"])
def test_sigkill_during_training_then_rerun_resumes(recipe, tiny_llm_dir, what):
    before = snapshot(recipe)
    exp = recipe / "exp/llm_asr_kill"
    proc = start(recipe, *long_training_args(tiny_llm_dir), "--stage", "9", "--stop_stage", "9")
    try:
        wait_for(lambda: (exp / "1epoch.pth").exists(), what="epoch 1")
        (pid,) = trainers("exp/llm_asr_kill")
        if what == "the trainer":
            os.kill(pid, signal.SIGKILL)
            assert proc.wait(timeout=60) != 0
        else:
            os.killpg(proc.pid, signal.SIGKILL)  # run.sh, run.pl and its supervisor; the trainer has its own group
            proc.wait(timeout=60)
        wait_for(lambda: not trainers("exp/llm_asr_kill"), timeout=30, what="the trainer to die with its runner")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run(recipe, *long_training_args(tiny_llm_dir), "--stage", "9", "--stop_stage", "9")
    log = (exp / "train.log").read_text()
    assert "resumed" in log.lower() and (exp / "2epoch.pth").is_file()
    assert_kept(before, recipe)


def test_sigkill_during_decoding_then_rerun_decodes_what_is_missing(recipe, tiny_llm_dir):
    d = decode_dir(recipe)
    reference = (d / "text").read_bytes()
    shutil.rmtree(d)
    before = snapshot(recipe)
    proc = start(recipe, *base_args(tiny_llm_dir), "--stage", "11", "--stop_stage", "11")
    wait_for(lambda: (d / "logdir/output.1").exists() or (d / "logdir/output.2").exists(), what="decoding")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (d / "text").exists() or (d / "text").read_bytes() == reference
    run(recipe, *base_args(tiny_llm_dir), "--stage", "11", "--stop_stage", "11")
    assert (d / "text").read_bytes() == reference
    assert_kept(before, recipe)


def test_concurrent_decodes_into_one_dir_are_refused_or_serialised(recipe, tiny_llm_dir):
    d = decode_dir(recipe)
    reference = (d / "text").read_bytes()
    shutil.rmtree(d)
    procs = [start(recipe, *base_args(tiny_llm_dir), "--stage", "11", "--stop_stage", "11") for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outputs
    for code, out in zip(codes, outputs):
        if code != 0:
            logs = "".join(p.read_text() for p in (d / "logdir").glob("decode.*.log"))
            assert "is being decoded by another run (pid" in out or "is in use by pid" in out + logs
    assert (d / "text").read_bytes() == reference


@pytest.mark.parametrize("how", ["read-only", "full"])
def test_an_unwritable_output_dir_stops_with_the_path(recipe, tiny_llm_dir, how):
    d = decode_dir(recipe)
    shutil.rmtree(d)
    d.mkdir()
    options = "ro,size=1m" if how == "read-only" else "size=16k"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        before = snapshot(recipe)
        result = run(recipe, *base_args(tiny_llm_dir), "--stage", "11", "--stop_stage", "11", check=False)
        assert result.returncode != 0
        shown = seen(recipe, result)
        expected = "Read-only file system" if how == "read-only" else "No space left on device"
        assert expected in shown and str(d.relative_to(recipe)) in shown, shown[-3000:]
    finally:
        subprocess.run(["umount", str(d)], check=True)
    assert_kept(before, recipe, changed=r"/decode_llm_greedy_")
