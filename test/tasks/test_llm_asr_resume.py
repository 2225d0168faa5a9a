"""Resume after a hard kill: ESPnet's checkpoint.pth brings training back to the uninterrupted run's parameters.

Also records what of ESPnet's output loads with ``torch.load(..., weights_only=True)``: the model files
(``<N>epoch.pth``, ``valid.*.pth``) do; ``checkpoint.pth`` does not by default, because its reporter holds
numpy scalars and a ``datetime.timedelta`` (ESPnet's own resume loads it with ``weights_only=False``).
"""
import datetime
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from espnet_llm.tasks.llm_asr import LLMASRTask

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "egs" / "an4" / "asr1" / "conf" / "tuning" / "train_llm_asr_tiny.yaml"
FEAT_DIM = 8
TRAIN = {"fash-an251-b": "YES NO", "fash-an252-b": "ONE TWO THREE", "fash-an253-b": "FOUR FIVE",
         "mgah-an255-b": "ZERO ENTER"}
VALID = {"mmxg-an257-b": "GO ERASE", "mmxg-an258-b": "RUBOUT YES"}
ITERS_PER_EPOCH = 150  # long enough epochs (seconds) to kill the run inside epoch 2
# the extra types ESPnet's checkpoint.pth needs under weights_only=True (all in reporter statistics)
CHECKPOINT_SAFE_GLOBALS = [np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, datetime.timedelta]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, make_data_dir):
    return make_data_dir(tmp_path_factory.mktemp("data"), TRAIN, VALID)


def train_args(llm_dir, d, out_dir, max_epoch=3):
    return [
        "--config", str(TINY), "--input_size", str(FEAT_DIM), "--llm_conf", f"name_or_path={llm_dir}",
        "--normalize_conf", f"stats_file={d}/feats_stats.npz",
        # text masking draws from torch's global RNG, whose state checkpoint.pth does not keep
        "--model_conf", "text_mask_prob=0.0",
        "--train_data_path_and_name_and_type", f"{d}/train/feats.scp,speech,kaldi_ark",
        "--train_data_path_and_name_and_type", f"{d}/train/text,text,text",
        "--valid_data_path_and_name_and_type", f"{d}/valid/feats.scp,speech,kaldi_ark",
        "--valid_data_path_and_name_and_type", f"{d}/valid/text,text,text",
        "--train_shape_file", f"{d}/train/speech_shape", "--valid_shape_file", f"{d}/valid/speech_shape",
        "--batch_type", "unsorted", "--batch_size", "2", "--num_iters_per_epoch", str(ITERS_PER_EPOCH),
        "--output_dir", str(out_dir), "--ngpu", "0", "--max_epoch", str(max_epoch), "--resume", "true",
        "--use_matplotlib", "false", "--keep_nbest_models", "3",
    ]


def kill_after_first_epoch(cmd, out_dir: Path, log: Path) -> int:
    """Start training in a subprocess; SIGKILL it once epoch 1 is fully saved (latest.pth is ESPnet's last write)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "espnet_llm.bin.llm_asr_train", *cmd], stdout=f, stderr=f,
                                env=env)
    try:
        deadline = time.monotonic() + 240
        while not (out_dir / "latest.pth").is_symlink():
            assert proc.poll() is None, f"training exited ({proc.returncode}) before epoch 1 was saved: {log}"
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_llm_dir, data_dir, tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    returncode = kill_after_first_epoch(train_args(tiny_llm_dir, data_dir, killed), killed, tmp_path / "killed.log")
    assert returncode == -signal.SIGKILL
    with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
        at_kill = torch.load(killed / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert at_kill["reporter"]["epoch"] < 3 and not (killed / "3epoch.pth").exists()
    epochs_done = at_kill["reporter"]["epoch"]

    # the killed run had one thread (OMP_NUM_THREADS=1): another thread count changes the order of float sums
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        LLMASRTask.main(cmd=train_args(tiny_llm_dir, data_dir, killed))
        LLMASRTask.main(cmd=train_args(tiny_llm_dir, data_dir, straight))
    finally:
        torch.set_num_threads(threads)

    with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
        resumed = torch.load(killed / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert resumed["reporter"]["epoch"] == 3 and sorted(resumed["reporter"]["stats"]) == [1, 2, 3]
    # the epochs before the kill were not run again: their statistics are the saved ones
    for epoch in range(1, epochs_done + 1):
        assert resumed["reporter"]["stats"][epoch]["valid"] == at_kill["reporter"]["stats"][epoch]["valid"]
    assert resumed["reporter"]["stats"][3]["train"]["total_count"] == 3 * ITERS_PER_EPOCH

    final_resumed = torch.load(killed / "3epoch.pth", map_location="cpu", weights_only=True)
    final_straight = torch.load(straight / "3epoch.pth", map_location="cpu", weights_only=True)
    assert sorted(final_resumed) == sorted(final_straight) and any(k.startswith("llm.") for k in final_straight)
    for key, value in final_straight.items():
        torch.testing.assert_close(final_resumed[key], value, msg=lambda m: f"{key}: {m}")
    straight_stats = torch.load(straight / "checkpoint.pth", map_location="cpu", weights_only=False)["reporter"]
    loss = straight_stats["stats"][3]["valid"]["loss"]
    assert math.isfinite(loss) and resumed["reporter"]["stats"][3]["valid"]["loss"] == pytest.approx(loss, rel=1e-5)


def test_checkpoint_needs_exactly_the_reporter_types_under_weights_only(tiny_llm_dir, data_dir, tmp_path):
    out = tmp_path / "exp"
    LLMASRTask.main(cmd=train_args(tiny_llm_dir, data_dir, out, max_epoch=1) + ["--num_iters_per_epoch", "2"])
    for name in ("1epoch.pth", "valid.acc.best.pth", "valid.acc.ave.pth"):
        state = torch.load(out / name, map_location="cpu", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values()), name
    with pytest.raises(Exception, match="numpy._core.multiarray.scalar"):
        torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert sorted(torch.serialization.get_unsafe_globals_in_checkpoint(out / "checkpoint.pth")) == [
        "datetime.timedelta", "numpy._core.multiarray.scalar", "numpy.dtype"]
    with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
        states = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert sorted(states) == ["model", "optimizers", "reporter", "scaler", "schedulers"]
    assert states["reporter"]["epoch"] == 1 and states["optimizers"][0]["param_groups"][0]["lr"] == 0.002


def test_entry_point_resumes_past_a_truncated_checkpoint_from_the_newest_epoch_file(tiny_llm_dir, data_dir, tmp_path,
                                                                                    caplog):
    from espnet_llm.bin.llm_asr_train import main as train_main

    import logging

    caplog.set_level(logging.INFO)
    out = tmp_path / "exp"
    short = ["--num_iters_per_epoch", "2"]
    train_main(train_args(tiny_llm_dir, data_dir, out, max_epoch=2) + short)
    (out / "train.log").write_text(caplog.text)  # what run.pl makes of the trainer's output
    assert (out / "checkpoint.pth.prev").is_file()  # the entry point saves atomically, keeping the one before
    data = (out / "checkpoint.pth").read_bytes()
    (out / "checkpoint.pth").write_bytes(data[: len(data) // 3])  # as a kill during ESPnet's in-place save left it
    (out / "checkpoint.pth.prev").unlink()
    epoch1 = (out / "1epoch.pth").read_bytes()
    train_main(train_args(tiny_llm_dir, data_dir, out, max_epoch=3) + short)
    assert "resuming after epoch 2 from 2epoch.pth with a fresh optimizer and scheduler state" in caplog.text
    assert (out / "checkpoint.pth.corrupt").read_bytes() == data[: len(data) // 3]
    with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
        states = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert states["reporter"]["epoch"] == 3 and sorted(states["reporter"]["stats"]) == [1, 2, 3]
    assert (out / "1epoch.pth").read_bytes() == epoch1 and (out / "3epoch.pth").is_file()
