"""Data-parallel training of the speech LLM with torch DDP over gloo: 2 CPU processes, ESPnet's own trainer.

ESPnet's ``--multiprocessing_distributed true`` spawns one process per GPU (it needs ``--ngpu`` > 1), so CPU
processes come from an external launcher: ``torchrun --nproc_per_node 2 -m espnet_llm.bin.llm_asr_train ...
--ngpu 0 --dist_backend gloo --multiprocessing_distributed false`` (ESPnet reads RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT set by torchrun). See docs/cluster.md.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet2.train.distributed_utils import DistributedOption

from espnet_llm.tasks.llm_asr import LLMASRTask

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "egs" / "an4" / "asr1" / "conf" / "tuning" / "train_llm_asr_tiny.yaml"
FEAT_DIM = 8
TRAIN = {
    "fash-an251-b": "YES NO", "fash-an252-b": "ONE TWO THREE", "fash-an253-b": "FOUR FIVE",
    "fash-an254-b": "SIX SEVEN EIGHT NINE", "mgah-an255-b": "ZERO ENTER", "mgah-an256-b": "HELP REPEAT STOP",
}
VALID = {"mmxg-an257-b": "GO ERASE", "mmxg-an258-b": "RUBOUT YES"}
# Records the mini-batches each rank is given, built exactly as ESPnet's main_worker builds them (steps 0 and 7).
SHARD_SCRIPT = """
import json, sys
from espnet2.train.distributed_utils import DistributedOption, resolve_distributed_mode
from espnet2.utils.build_dataclass import build_dataclass
from espnet_llm.tasks.llm_asr import LLMASRTask

args = LLMASRTask.get_parser().parse_args(sys.argv[2:])
resolve_distributed_mode(args)
option = build_dataclass(DistributedOption, args)
option.init_options()
option.init_torch_distributed()
factory = LLMASRTask.build_iter_factory(args=args, distributed_option=option, mode="train")
epochs = {epoch: [list(keys) for keys, _ in factory.build_iter(epoch)] for epoch in (1, 2)}
with open(f"{sys.argv[1]}/batches.{option.dist_rank}.json", "w") as f:
    json.dump(dict(rank=option.dist_rank, world_size=option.dist_world_size, epochs=epochs), f)
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, make_data_dir):
    return make_data_dir(tmp_path_factory.mktemp("data"), TRAIN, VALID)


def train_args(llm_dir, d, out_dir, max_epoch=2):
    return [
        "--config", str(TINY), "--input_size", str(FEAT_DIM), "--llm_conf", f"name_or_path={llm_dir}",
        "--normalize_conf", f"stats_file={d}/feats_stats.npz",
        "--model_conf", "text_mask_prob=0.0",  # masking draws from each process's own RNG
        "--train_data_path_and_name_and_type", f"{d}/train/feats.scp,speech,kaldi_ark",
        "--train_data_path_and_name_and_type", f"{d}/train/text,text,text",
        "--valid_data_path_and_name_and_type", f"{d}/valid/feats.scp,speech,kaldi_ark",
        "--valid_data_path_and_name_and_type", f"{d}/valid/text,text,text",
        "--train_shape_file", f"{d}/train/speech_shape", "--valid_shape_file", f"{d}/valid/speech_shape",
        "--batch_type", "unsorted", "--batch_size", "2", "--output_dir", str(out_dir), "--ngpu", "0",
        "--max_epoch", str(max_epoch), "--use_matplotlib", "false",
    ]


DDP_ARGS = ["--dist_backend", "gloo", "--multiprocessing_distributed", "false"]


def torchrun(*args, cwd):
    """``torchrun --standalone --nproc_per_node 2 ...`` with one thread per process (2 CPU cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def valid_loss(out_dir: Path, epoch: int) -> float:
    # the reporter holds numpy scalars and timedeltas: ESPnet's own resume loads it with weights_only=False
    states = torch.load(out_dir / "checkpoint.pth", map_location="cpu", weights_only=False)
    return float(states["reporter"]["stats"][epoch]["valid"]["loss"])


def test_two_cpu_processes_train_with_gloo_ddp(tiny_llm_dir, data_dir, tmp_path):
    ddp_out, one_out = tmp_path / "ddp", tmp_path / "one"
    run = torchrun("-m", "espnet_llm.bin.llm_asr_train", *train_args(tiny_llm_dir, data_dir, ddp_out), *DDP_ARGS,
                   cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    config = yaml.safe_load((ddp_out / "config.yaml").read_text())
    assert (config["distributed"], config["dist_backend"], config["ngpu"]) == (True, "gloo", 0)
    # world size 2 (from torchrun's WORLD_SIZE); rank 0 alone logs and writes: one config, one checkpoint per epoch
    assert "[" in run.stderr and ":0/2]" in run.stderr and ":1/2]" not in run.stderr
    assert run.stderr.count("Saving the configuration in") == 1
    assert sorted(p.name for p in ddp_out.glob("*epoch.pth")) == ["1epoch.pth", "2epoch.pth"]
    states = torch.load(ddp_out / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert states["reporter"]["epoch"] == 2
    # 3 mini-batches of 2 per epoch, each split over the 2 ranks; the reporter counts the global steps
    assert [states["reporter"]["stats"][e]["train"]["total_count"] for e in (1, 2)] == [3, 6]

    LLMASRTask.main(cmd=train_args(tiny_llm_dir, data_dir, one_out))
    ddp_model = torch.load(ddp_out / "2epoch.pth", map_location="cpu", weights_only=True)
    one_model = torch.load(one_out / "2epoch.pth", map_location="cpu", weights_only=True)
    assert sorted(ddp_model) == sorted(one_model)
    for epoch in (1, 2):
        ddp_loss, one_loss = valid_loss(ddp_out, epoch), valid_loss(one_out, epoch)
        assert math.isfinite(ddp_loss) and ddp_loss == pytest.approx(one_loss, rel=0.05), epoch
    assert valid_loss(ddp_out, 2) < valid_loss(ddp_out, 1)

    # DDP averages per-process losses (utterance-weighted); one process averages over the batch's tokens, so the
    # two runs differ (more since the CTC loss is put on a per-token scale: each process normalises by its own
    # tokens), but both moved the same way from the same start (seed 0): much closer to each other than to it
    set_all_random_seed(0)
    init = LLMASRTask.build_model(LLMASRTask.get_parser().parse_args(train_args(tiny_llm_dir, data_dir, one_out)))
    init = {k: v for k, v in init.state_dict().items() if k in one_model}
    moved = torch.cat([(one_model[k].double() - init[k].double()).flatten() for k in one_model])
    apart = torch.cat([(ddp_model[k].double() - one_model[k].double()).flatten() for k in one_model])
    assert all(torch.isfinite(v).all() for v in ddp_model.values())
    assert moved.norm() > 0 and apart.norm() < 0.5 * moved.norm()


def test_each_rank_gets_a_disjoint_half_of_every_batch(tiny_llm_dir, data_dir, tmp_path):
    script = tmp_path / "record_batches.py"
    script.write_text(SHARD_SCRIPT)
    args = train_args(tiny_llm_dir, data_dir, tmp_path / "exp")
    run = torchrun(str(script), str(tmp_path), *args, *DDP_ARGS, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"batches.{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]

    for epoch in ("1", "2"):
        mine, theirs = ranks[0]["epochs"][epoch], ranks[1]["epochs"][epoch]
        assert len(mine) == len(theirs) == 3  # same number of steps, so DDP's all-reduce never waits forever
        for a, b in zip(mine, theirs):
            assert len(a) == len(b) == 1 and not set(a) & set(b)
        assert sorted(u for batch in mine + theirs for u in batch) == sorted(TRAIN)

    # together the ranks see, step by step, the mini-batches one process sees
    one = LLMASRTask.build_iter_factory(
        args=LLMASRTask.get_parser().parse_args(args), distributed_option=DistributedOption(), mode="train")
    for epoch in (1, 2):
        alone = [sorted(keys) for keys, _ in one.build_iter(epoch)]
        together = [sorted(a + b) for a, b in zip(ranks[0]["epochs"][str(epoch)], ranks[1]["epochs"][str(epoch)])]
        assert together == alone
