"""utils/slurm.pl against a real one-node Slurm (test/utils/slurm_cluster.py), compared with utils/run.pl.

Skipped where Slurm cannot run (not root, slurm-wlm or munge not installed); .ci/run installs both and fails if
these tests skip.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # pytest.ini's --import-mode=importlib adds no test dir
from slurm_cluster import Cluster, available  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RUN_PL = REPO / "utils" / "run.pl"
SLURM_PL = REPO / "utils" / "slurm.pl"

pytestmark = pytest.mark.skipif(available() is not None, reason=f"no real Slurm here: {available()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield c
    c.stop()


def slurm(cluster, *args, cwd, env=None, timeout=120):
    return subprocess.run([str(SLURM_PL), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**cluster.env, **(env or {})})


def body(log: Path) -> list:
    """A job's own output: the log without the runner's header and footer lines."""
    return [line for line in log.read_text().splitlines() if not line.startswith("#")]


def test_array_job_gives_what_run_pl_gives(cluster, tmp_path):
    cmd = ["JOB=1:3", "log/job.JOB.log", "echo", "part JOB", "&&", "test", "JOB", "-ne", "2"]
    on_slurm = slurm(cluster, *cmd, cwd=tmp_path)
    (tmp_path / "local").mkdir()
    local = subprocess.run([str(RUN_PL), *cmd], cwd=tmp_path / "local", capture_output=True, text=True)
    assert on_slurm.returncode == local.returncode == 1
    assert "1 / 3 failed, log is in log/job.2.log" in on_slurm.stderr
    for n in (1, 2, 3):
        assert body(tmp_path / f"log/job.{n}.log") == body(tmp_path / f"local/log/job.{n}.log")
    header = (tmp_path / "log/job.3.log").read_text().splitlines()[1]
    array_id = re.search(r"\(Slurm job (\d+)_3\)$", header)
    assert array_id, header
    # the array's id, not the task's own job id
    assert sorted(subprocess.run(["squeue", "-t", "all", "--noheader", "--array", f"--jobs={array_id.group(1)}",
                           "--format=%K"], env=cluster.env, capture_output=True, text=True).stdout.split()) == [
        "1", "2", "3"]
    assert (tmp_path / "log/q/job.1-3.sh").is_file()


def test_a_stale_log_of_an_earlier_run_cannot_pass_for_a_job_that_never_ran(cluster, tmp_path):
    (tmp_path / "slurm.conf").write_text("command sbatch\noption partition=* -p $0\noption time=* --time=$0\n")
    (tmp_path / "log").mkdir()
    stale = "# echo hi\n# Started\n#\nhi\n# Ended (code 0) at then, elapsed time 0 seconds\n"
    (tmp_path / "log/train.log").write_text(stale)
    start = time.monotonic()
    # a 10-minute job in a partition with a 1-minute limit: pending with reason PartitionTimeLimit for ever
    result = slurm(cluster, "--config", "slurm.conf", "--partition", "short", "--time", "10", "log/train.log",
                   "echo", "hi", cwd=tmp_path)
    assert result.returncode == 1
    assert re.search(r"slurm.pl: Slurm job \d+ can never start \((PartitionTimeLimit|PartitionConfig)\): it asks for more than the "
                     r"partition allows; cancelled", result.stderr), result.stderr
    assert time.monotonic() - start < 60
    assert (tmp_path / "log/train.1.log").read_text() == stale and not (tmp_path / "log/train.log").exists()


def test_a_job_killed_by_slurm_is_reported_at_once_with_slurms_reason(cluster, tmp_path):
    proc = subprocess.Popen([str(SLURM_PL), "JOB=1:2", "log/sleep.JOB.log", "sleep", "300"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"log/sleep.{n}.log").exists() for n in (1, 2)):
            assert time.monotonic() < deadline and proc.poll() is None, "the jobs did not start"
            time.sleep(0.2)
        job = (tmp_path / "log/sleep.1.log").read_text().splitlines()[1]
        array_id = re.search(r"Slurm job (\d+)_1", job).group(1)
        subprocess.run(["scancel", f"{array_id}_1"], env=cluster.env, check=True)
        cancelled = time.monotonic()
        subprocess.run(["scancel", f"{array_id}_2"], env=cluster.env, check=True)
        _, err = proc.communicate(timeout=60)
    finally:
        subprocess.run(["scancel", "--name=sleep"], env=cluster.env)
        proc.kill()
    assert proc.returncode == 1
    assert time.monotonic() - cancelled < 30  # not 60 s per job waiting for a log line that cannot come
    assert re.search(r"job 1 left no '# Ended' line in log/sleep.1.log \(Slurm: CANCELLED", err), err
    assert "2 / 2 failed" in err


def test_concurrent_calls_with_one_log_pattern_do_not_overwrite_each_others_script(cluster, tmp_path):
    """What the stage script does on a partial rerun: one JOB=n:n call per missing split, all at once."""
    procs = [subprocess.Popen([str(SLURM_PL), f"JOB={n}:{n}", "log/decode.JOB.log", "echo", "split JOB"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cluster.env) for n in (1, 2, 3)]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    for n in (1, 2, 3):
        assert body(tmp_path / f"log/decode.{n}.log") == [f"split {n}"]
        assert (tmp_path / f"log/q/decode.{n}-{n}.sh").is_file()


def test_concurrent_calls_with_one_job_range_and_log_pattern_each_submit_their_own_script(cluster, tmp_path):
    """Two calls with the same JOB=1:1 and log pattern at once: behind a site's sbatch wrapper that takes 2 s, the
    first has written its q/ script and not yet submitted it when the second writes its own."""
    wrapper = tmp_path / "sbatch-slow"
    wrapper.write_text('#!/bin/sh\nsleep 2\nexec sbatch "$@"\n')
    wrapper.chmod(0o755)
    (tmp_path / "slurm.conf").write_text(f"command {wrapper}\n")
    script = tmp_path / "log/q/decode.1-1.sh"

    def call(word):
        return subprocess.Popen([str(SLURM_PL), "--config", "slurm.conf", "JOB=1:1", "log/decode.JOB.log",
                                 f"echo {word} > {word}.txt"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=cluster.env)
    first = call("first")
    deadline = time.monotonic() + 30
    while not (script.is_file() and "first.txt" in script.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, "the first call wrote no script"
        time.sleep(0.05)
    second = call("second")
    for p in (first, second):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # each call's job ran its own command, and each call's script is still there as it submitted it
    assert (tmp_path / "first.txt").read_text() == "first\n" and (tmp_path / "second.txt").read_text() == "second\n"
    scripts = sorted((tmp_path / "log/q").glob("decode.1-1*.sh"))
    assert [(p.name, "first.txt" in p.read_text(), "second.txt" in p.read_text()) for p in scripts] == [
        ("decode.1-1.2.sh", False, True), ("decode.1-1.sh", True, False)]


def test_a_job_past_its_time_limit_is_reported_at_once_with_slurms_reason(cluster, tmp_path):
    """Slurm's TIMEOUT (the --time limit: 1 minute, Slurm's smallest, checked every 30 s by slurmctld) of an array:
    each task is reported as soon as Slurm has ended it, not after 60 s waiting for a log line that cannot come."""
    result = slurm(cluster, "--time", 1, "JOB=1:2", "log/long.JOB.log", "sleep", 300, cwd=tmp_path, timeout=300)
    reported = time.time()
    assert result.returncode == 1
    for n in (1, 2):
        assert re.search(rf"job {n} left no '# Ended' line in log/long.{n}.log \(Slurm: TIMEOUT, TimeLimit\); "
                         rf"Slurm's output is in \S+/log/q/long.1-2-{n}.out\n.*DUE TO TIME LIMIT", result.stderr), \
            result.stderr
    assert "2 / 2 failed, log is in log/long.1.log" in result.stderr
    array_id = re.search(r"\(Slurm job (\d+)_1\)", (tmp_path / "log/long.1.log").read_text()).group(1)
    ends = subprocess.run(["squeue", "-t", "all", "--noheader", "--array", f"--jobs={array_id}", "--format=%T %e"],
                          env=cluster.env, capture_output=True, text=True, check=True).stdout.split("\n")[:-1]
    assert [e.split()[0] for e in ends] == ["TIMEOUT", "TIMEOUT"], ends
    ended = max(time.mktime(time.strptime(e.split()[1], "%Y-%m-%dT%H:%M:%S")) for e in ends)
    assert reported - ended < 20, (reported, ended)  # squeue polled every 10 s at most


def test_export_path_keeps_threads_offline_switches_and_path_sh(cluster, tmp_path):
    """Kaldi's slurm.conf exports only PATH: the job script sets what the jobs read and sources path.sh."""
    (tmp_path / "slurm.conf").write_text("command sbatch --export=PATH\noption mem=* --mem=$0\n")
    (tmp_path / "path.sh").write_text("export FROM_PATH_SH=yes\n")
    result = slurm(cluster, "--config", "slurm.conf", "--mem", "100M", "log/env.log",
                   'echo "$OMP_NUM_THREADS $HF_HUB_OFFLINE ${FROM_PATH_SH:-no} ${OTHER:-unset}"', cwd=tmp_path,
                   env={"OMP_NUM_THREADS": "3", "HF_HUB_OFFLINE": "1", "OTHER": "x"})
    assert result.returncode == 0, result.stderr
    assert body(tmp_path / "log/env.log") == ["3 1 yes unset"]


def test_resources_reach_sbatch(cluster, tmp_path):
    result = slurm(cluster, "--num-threads", 2, "--mem", "200M", "log/res.log",
                   "scontrol show job $SLURM_JOB_ID | grep -o 'NumCPUs=[0-9]*\\|mem=[0-9]*M'", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert body(tmp_path / "log/res.log") == ["NumCPUs=2", "mem=200M"]


AN4 = REPO.parent / "shared" / "data" / "an4"


@pytest.mark.skipif(not (AN4 / "etc").is_dir(), reason=f"AN4 not found at {AN4}")
def test_recipe_stages_1_to_3_through_slurm_give_run_pls_features(cluster, tmp_path):
    import contextlib
    import shutil

    import kaldiio
    import numpy as np

    feats = {}
    for backend in ("local", "slurm"):
        root = tmp_path / backend
        for part in ("utils", "tools", "espnet_llm"):
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            (root / part).symlink_to(REPO / part)
        shutil.copytree(REPO / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
        shutil.copytree(REPO / "egs" / "an4" / "asr1", root / "egs" / "an4" / "asr1", symlinks=True,
                        ignore=shutil.ignore_patterns("data", "dump", "exp", "RESULTS*.md"))
        recipe = root / "egs" / "an4" / "asr1"
        result = subprocess.run(
            ["./run.sh", "--stage", "1", "--stop_stage", "3", "--subset", "6", "--test_sets", "test",
             "--llm_test_sets", "test", "--speed_perturb_factors", "", "--nj", "2"],
            cwd=recipe, capture_output=True, text=True, timeout=600,
            env={**cluster.env, "cmd_backend": backend, "AN4_ROOT": str(AN4),
                 "LIBRIVOX_ROOT": str(AN4.parent / "librivox-clips")})
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        with contextlib.chdir(recipe):  # feats.scp holds paths relative to the recipe
            feats[backend] = {s: {k: v for k, v in kaldiio.load_scp(f"dump/fbank/{s}/feats.scp").items()}
                              for s in ("train_sub6", "dev_sub6", "test_sub6")}
        if backend == "slurm":
            assert list((recipe / "dump/fbank/test_sub6/log/q").glob("feats.1-2.sh"))  # it went through Slurm
    for s, local in feats["local"].items():
        assert sorted(local) == sorted(feats["slurm"][s]) and len(local) == 6
        for key, value in local.items():
            np.testing.assert_array_equal(value, feats["slurm"][s][key])
