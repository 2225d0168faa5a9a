"""Tests of the job runners utils/run.pl (run for real) and utils/slurm.pl (--dry-run, then its job script)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_PL = REPO / "utils" / "run.pl"
SLURM_PL = REPO / "utils" / "slurm.pl"
MY_SHELL_SCRIPTS = ["parse_options.sh", "validate_data_dir.sh", "fix_data_dir.sh", "subset_data_dir.sh",
                    "combine_data.sh", "split_data.sh", "utt2spk_to_spk2utt.sh"]


def run(*args, cwd: Path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
                          env=None if env is None else dict(os.environ, **env))


def test_run_pl_runs_jobs_in_parallel(tmp_path):
    # Each job waits until all three have started: that can only finish if they run at the same time.
    barrier = 'touch started.JOB; for _ in $(seq 100); do [ "$(ls started.* | wc -l)" -ge 3 ] && exit 0; sleep 0.05; done; exit 1'
    result = run(RUN_PL, "--max-jobs-run", 3, "JOB=1:3", "log/wait.JOB.log", barrier, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("started.*")) == ["started.1", "started.2", "started.3"]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs")
def test_run_pl_default_uses_every_cpu_even_with_omp_num_threads_1(tmp_path):
    # path.sh exports OMP_NUM_THREADS=1 for the jobs; GNU nproc would then answer 1 and serialise them.
    barrier = 'touch started.JOB; for _ in $(seq 100); do [ "$(ls started.* | wc -l)" -ge 2 ] && exit 0; sleep 0.05; done; exit 1'
    result = run(RUN_PL, "JOB=1:2", "log/wait.JOB.log", barrier, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr


def test_run_pl_max_jobs_run_1_never_overlaps(tmp_path):
    job = "mkdir lock || echo JOB >> overlaps; sleep 0.1; rmdir lock; echo JOB >> order"
    result = run(RUN_PL, "--max-jobs-run", 1, "JOB=1:4", "log/seq.JOB.log", job, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "overlaps").exists()
    assert (tmp_path / "order").read_text().split() == ["1", "2", "3", "4"]


def test_run_pl_substitutes_job_and_writes_the_log(tmp_path):
    result = run(RUN_PL, "JOB=2:3", "exp/log/echo.JOB.log", "echo", "part JOB of 3", "|", "tr", "a-z", "A-Z",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "exp/log/echo.1.log").exists()
    for job in (2, 3):
        log = (tmp_path / f"exp/log/echo.{job}.log").read_text().splitlines()
        assert log[0] == f'# echo "part {job} of 3" | tr a-z A-Z'
        assert re.fullmatch(r"# Started at .+ on \S+", log[1])
        assert log[3] == f"PART {job} OF 3"
        assert re.fullmatch(r"# Accounting: time=\d+ threads=1", log[4])
        assert re.fullmatch(r"# Ended \(code 0\) at .+, elapsed time \d+ seconds", log[5])


def test_run_pl_names_the_log_of_a_failed_job(tmp_path):
    result = run(RUN_PL, "JOB=1:4", "log/foo.JOB.log", "echo job JOB; test JOB -ne 3", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "run.pl: 1 / 4 failed, log is in log/foo.3.log\n"
    assert "# Ended (code 1)" in (tmp_path / "log/foo.3.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "log/foo.4.log").read_text()

    result = run(RUN_PL, "JOB=1:3", "log/bar.JOB.log", "exit $((JOB * 2))", cwd=tmp_path)
    assert result.stderr.splitlines() == ["run.pl: 3 / 3 failed, log is in log/bar.1.log", "run.pl: failed jobs: 1 2 3"]
    assert "# Ended (code 6)" in (tmp_path / "log/bar.3.log").read_text()


def test_run_pl_single_job_without_job_variable(tmp_path):
    result = run(RUN_PL, "--mem", "4G", "--num-threads", 2, "log/one.log", "echo", "a  b", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "log/one.log").read_text().splitlines()
    assert log[3] == "a  b" and log[4].endswith("threads=2")
    result = run(RUN_PL, "log/two.log", "false", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "run.pl: 1 / 1 failed, log is in log/two.log\n")


def test_run_pl_keeps_the_logs_of_earlier_runs(tmp_path):
    """A rerun (a resumed training) must not overwrite the log of the run before it: x.log -> x.1.log -> x.2.log."""
    for word in ("one", "two", "three"):
        assert run(RUN_PL, "exp/train.log", "echo", word, cwd=tmp_path).returncode == 0
    logs = {p.name: p.read_text().splitlines()[3] for p in (tmp_path / "exp").iterdir()}
    assert logs == {"train.2.log": "one", "train.1.log": "two", "train.log": "three"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper is gone too
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_run_pl_jobs_die_with_the_runner(tmp_path, signal_name):
    """Killing the recipe's process group (SIGKILL included) must not leave a job training on unattended."""
    import signal
    import time

    job = "echo $$ > pid.JOB; sleep 300 | cat; echo finished > done.JOB"  # a pipeline, as recipes run
    proc = subprocess.Popen([str(RUN_PL), "JOB=1:2", "log/x.JOB.log", job], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(100):
        if all((tmp_path / f"pid.{n}").is_file() and (tmp_path / f"pid.{n}").read_text().strip() for n in (1, 2)):
            break
        time.sleep(0.05)
    pids = [int((tmp_path / f"pid.{n}").read_text()) for n in (1, 2)]
    assert all(_alive(p) for p in pids)
    os.killpg(proc.pid, getattr(signal, signal_name))  # run.pl's own group: its jobs each have their own
    proc.wait(timeout=10)
    def job_processes():  # the jobs' shells and every process of their pipelines
        sleeps = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True).stdout.split()
        return [p for p in pids + [int(p) for p in sleeps] if _alive(p)]

    deadline = time.time() + 15
    while time.time() < deadline and job_processes():
        time.sleep(0.1)
    assert not job_processes(), "a job outlived its runner"
    assert not list(tmp_path.glob("done.*"))


@pytest.mark.parametrize("args, message", [
    (["JOB=1:3", "log/shared.log", "true"], "run.pl: 3 jobs would share the log file log/shared.log; put JOB in its name"),
    (["--memory", "4G", "log/x.log", "true"], "run.pl: unknown option --memory (known: --config, --gpu, --max-jobs-run"),
    (["--max-jobs-run", "0", "log/x.log", "true"], "run.pl: --max-jobs-run must be a positive integer, got '0'"),
    (["JOB=3:1", "log/x.JOB.log", "true"], "run.pl: empty job range JOB=3:1"),
])
def test_run_pl_usage_errors(tmp_path, args, message):
    result = run(RUN_PL, *args, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(message)
    assert not (tmp_path / "log").exists()


def test_slurm_pl_dry_run_builds_the_sbatch_command_and_script(tmp_path):
    result = run(SLURM_PL, "--dry-run", "--mem", "4G", "--num-threads", 2, "--gpu", 1, "--max-jobs-run", 2,
                 "JOB=1:3", "exp/log/decode.JOB.log", "echo", "part JOB", ";", "test", "JOB", "-ne", 2,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    q = tmp_path / "exp/log/q"
    assert result.stderr == (
        f"slurm.pl: dry run: would run: sbatch --gres=gpu:1 --mem=4G --cpus-per-task=2 --job-name=decode --parsable "
        f"--chdir={tmp_path} --array=1-3%2 --output={q}/decode.1-3-%a.out {q}/decode.1-3.sh\n")
    script = result.stdout
    assert script == (q / "decode.1-3.sh").read_text()
    assert f"  2) log={tmp_path}/exp/log/decode.2.log; cmd='echo \"part 2\" ; test 2 -ne 2' ;;" in script.splitlines()
    assert not list((tmp_path / "exp/log").glob("decode.*.log"))

    # The script is what each Slurm array task runs; run tasks 1 and 2 as Slurm would.
    for task, code in (("1", 0), ("2", 1)):
        done = run("bash", q / "decode.1-3.sh", cwd=tmp_path, env={"SLURM_ARRAY_TASK_ID": task, "SLURM_JOB_ID": "77"})
        assert done.returncode == code
        log = (tmp_path / f"exp/log/decode.{task}.log").read_text().splitlines()
        assert log[0] == f'# echo "part {task}" ; test {task} -ne 2'
        assert log[1].endswith(f"(Slurm job 77_{task})")
        assert log[3] == f"part {task}"
        assert re.fullmatch(r"# Accounting: time=\d+ threads=2", log[4])
        assert re.fullmatch(rf"# Ended \(code {code}\) at .+", log[5])


def test_slurm_pl_single_job_and_config_rules(tmp_path):
    (tmp_path / "slurm.conf").write_text(
        "command sbatch --export=PATH\n"
        "option mem=* --mem-per-cpu $0\n"
        "default gpu=0\n"
        "option gpu=0 -p cpu\n"
        "option gpu=* -p gpu --gres=gpu:$0 -c $0  # as in ESPnet's conf/slurm.conf\n"
        "option partition=* -p $0\n")
    result = run(SLURM_PL, "--config", "slurm.conf", "--mem", "2G", "--dry-run", "log/train.log", "echo hi | tr a-z A-Z",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("slurm.pl: dry run: would run: sbatch --export=PATH -p cpu --mem-per-cpu 2G "
                                    "--job-name=train --parsable")
    assert "--array" not in result.stderr
    assert "cmd='echo hi | tr a-z A-Z'" in result.stdout
    assert run("bash", tmp_path / "log/q/train.sh", cwd=tmp_path).returncode == 0
    assert (tmp_path / "log/train.log").read_text().splitlines()[3] == "HI"

    result = run(SLURM_PL, "--config", "slurm.conf", "--gpu", 2, "--dry-run", "log/g.log", "true", cwd=tmp_path)
    assert "sbatch --export=PATH -p gpu --gres=gpu:2 -c 2 --job-name=g" in result.stderr
    result = run(SLURM_PL, "--partition", "big", "--dry-run", "log/x.log", "true", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "slurm.pl: option --partition has no rule in the config (known: gpu mem num_threads time)\n"


def test_help_of_the_runners():
    for runner in (RUN_PL, SLURM_PL):
        result = run(runner, "--help", cwd=REPO)
        assert result.returncode == 0 and result.stdout.startswith(f"Usage: {runner.name} [options] [JOB=1:N] <log-file>")


@pytest.mark.skipif(shutil.which("shellcheck", path=f"{REPO}/tools/venv/bin:{os.environ['PATH']}") is None,
                    reason="shellcheck is not installed")
def test_shell_scripts_are_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=f"{REPO}/tools/venv/bin:{os.environ['PATH']}")
    result = run(shellcheck, *(REPO / "utils" / s for s in MY_SHELL_SCRIPTS), cwd=REPO)
    assert result.returncode == 0, result.stdout
