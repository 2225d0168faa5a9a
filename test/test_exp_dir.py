"""espnet_llm.exp_dir: the lock of an exp dir, atomic torch.save, weights-only loads, checkpoint recovery."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from espnet_llm.exp_dir import (
    DirBusy, atomic_torch_save, clear_done, exclusive, is_done, mark_done, recover_checkpoint, weights_only_torch_load,
)


def test_a_second_writer_is_refused_with_the_owner_and_the_lock_dies_with_its_owner(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from espnet_llm.exp_dir import exclusive
            with exclusive({str(tmp_path)!r}, "training"):
                print("locked", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DirBusy, match=rf"{tmp_path} is in use by pid {holder.pid} on .*\(training: .*\); a second "
                                          "decoding into it would mix two runs' files"):
            with exclusive(tmp_path, "decoding"):
                pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the flock
        holder.wait()
    with exclusive(tmp_path, "decoding") as lock:
        assert f"pid {os.getpid()}" in lock.read_text()


def test_atomic_save_keeps_the_old_file_when_the_write_fails_and_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pth"
    with atomic_torch_save():
        torch.save({"epoch": 1}, path)
        torch.save({"epoch": 2}, path)

        class Unpicklable:
            def __reduce__(self):
                raise RuntimeError("disk full")

        with pytest.raises(RuntimeError, match="disk full"):
            torch.save({"epoch": 3, "x": Unpicklable()}, path)
    assert torch.load(path)["epoch"] == 2
    assert torch.load(tmp_path / "checkpoint.pth.prev")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth", "checkpoint.pth.prev"]  # no temp left
    assert torch.save.__module__.startswith("torch")  # restored


class Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_only_load_refuses_code_and_takes_numpy_scalars(tmp_path):
    import numpy as np

    bad = tmp_path / "bad.pth"
    with open(bad, "wb") as f:
        pickle.dump(Hostile(), f)
    with weights_only_torch_load():
        with pytest.raises(RuntimeError, match=f"{bad} holds Python objects that a model file should not"):
            torch.load(bad, weights_only=False)  # what ESPnet passes
        good = tmp_path / "good.pth"
        torch.save({"acc": np.float64(0.5), "w": torch.ones(2)}, good)
        assert torch.load(good, weights_only=False)["acc"] == 0.5


def _epoch_results(epoch, acc):
    return (f"[vm] 2026-01-01 00:00:00,000 (trainer:394) INFO: {epoch}epoch results: [train] loss=1.0, acc={acc}, "
            f"time=1.5 seconds, total_count=3, [valid] loss=1.0, acc={acc}, time=0.5 seconds, total_count=1\n")


def test_a_truncated_checkpoint_falls_back_to_the_previous_one_then_to_the_newest_epoch_file(tmp_path, caplog):
    with atomic_torch_save():
        torch.save({"model": {"w": torch.zeros(1)}, "reporter": {"epoch": 1}}, tmp_path / "checkpoint.pth")
        torch.save({"model": {"w": torch.ones(1)}, "reporter": {"epoch": 2}}, tmp_path / "checkpoint.pth")
    data = (tmp_path / "checkpoint.pth").read_bytes()
    (tmp_path / "checkpoint.pth").write_bytes(data[: len(data) // 2])
    assert "resuming from the checkpoint before it" in recover_checkpoint(tmp_path)
    assert torch.load(tmp_path / "checkpoint.pth")["reporter"]["epoch"] == 1
    assert (tmp_path / "checkpoint.pth.corrupt").read_bytes() == data[: len(data) // 2]

    # no good .prev: the newest epoch file that loads, with the logged epoch results
    (tmp_path / "checkpoint.pth").write_bytes(b"PK\x03\x04truncated")
    (tmp_path / "checkpoint.pth.prev").write_bytes(b"")
    for epoch in (1, 2, 3):
        torch.save({"w": torch.full((1,), float(epoch))}, tmp_path / f"{epoch}epoch.pth")
    (tmp_path / "3epoch.pth").write_bytes(b"broken")
    (tmp_path / "train.log").write_text("".join(_epoch_results(e, a) for e, a in ((1, 0.1), (2, 0.2), (3, 0.3))))
    assert "resuming after epoch 2 from 2epoch.pth" in recover_checkpoint(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pth", weights_only=False)
    assert state["model"]["w"].item() == 2.0 and state["optimizers"] == [] and state["reporter"]["epoch"] == 2
    assert state["reporter"]["stats"][2]["valid"]["acc"] == 0.2 and 3 not in state["reporter"]["stats"]
    assert recover_checkpoint(tmp_path) is None  # loads now: nothing to do


def test_done_marker(tmp_path):
    assert not is_done(tmp_path)
    mark_done(tmp_path)
    assert is_done(tmp_path)
    clear_done(tmp_path)
    assert not is_done(tmp_path)
