"""Tests of egs/TEMPLATE/asr1/llm_asr.sh through egs/an4/asr1/run.sh (option checks, --help, stage 1), and
shellcheck over every shell script under egs/ and utils/.

The recipe is copied (without data/, dump/, exp/) into tmp_path first, so a run that got past the checks
would write there and not into the recipe dir that a training job may be using.
"""
import os
import re
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
