"""egs/an4/asr1/run_ablations.sh --dry_run true in a copy of the recipe: which systems the grid trains, which it
shares with the base, the configs it writes and the manifest the tables are made from (nothing is trained)."""
import os
import subprocess
from pathlib import Path

import yaml


def dry_run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(recipe / "run_ablations.sh"), "--dry_run", "true", *args], capture_output=True,
                          text=True, timeout=900, check=False, cwd=recipe, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def manifest_rows(recipe: Path) -> list[dict]:
    lines = (recipe / "exp" / "ablations" / "manifest.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if not line.startswith("#")]


def test_small_grid_shares_the_base_and_sets_one_thing_per_variant(recipe):
    proc = dry_run(recipe, "--budget", "small")
    rows = manifest_rows(recipe)
    # the base system serves five studies: trained once, its greedy decoding queued once
    log = proc.stdout.splitlines() + proc.stderr.splitlines()
    runs = [line for line in log if "(run_ablations.sh) ./run.sh " in line]
    base_runs = [line for line in runs if "--llm_asr_tag abl_base " in line + " "]
    assert [("--stage 9 " in line, "--stage 11 " in line) for line in base_runs] == [(True, False), (False, True)]
    exp_of = {(r["study"], r["system"]): r["exp_dir"] for r in rows}
    assert len(rows) == 5 + 4 + 3 + 3 + 2 + 5
    # the variant that equals the base config is the base system, whatever study names it
    for key in [("stride", "stride80"), ("tuning", "frozen"), ("mask", "mask0.0"), ("projector", "linear"),
                ("prompt", "none")]:
        assert exp_of[key] == "exp/llm_asr_abl_base", key
    assert exp_of[("tuning", "lora_r8")] == "exp/llm_asr_abl_tuning_lora_r8"
    # every decode variant decodes one system, the base with a CTC head, each with its own decoding YAML
    decode = [r for r in rows if r["study"] == "decode"]
    assert {r["exp_dir"] for r in decode} == {"exp/llm_asr_abl_decode_system"}
    assert len({r["decode_dir"] for r in decode}) == 5

    conf = recipe / "exp" / "ablations" / "conf"
    load = lambda name: yaml.safe_load((conf / name).read_text())  # noqa: E731
    base = load("train_llm_asr_abl_base.yaml")
    assert base["llm_conf"]["tuning"] == "frozen" and base["max_epoch"] == 2  # small: frozen-LLM base, 2 epochs

    def diff(name):  # {dotted key: value} where the variant's YAML differs from the base's
        a, b = flatten(base), flatten(load(name))
        return {k: b.get(k) for k in set(a) | set(b) if a.get(k) != b.get(k)}

    assert diff("train_llm_asr_abl_tuning_lora_r32.yaml") == {
        "llm_conf.tuning": "lora", "llm_conf.lora.r": 32, "llm_conf.lora.alpha": 64}
    assert diff("train_llm_asr_abl_tuning_full_lr2e-4.yaml") == {"llm_conf.tuning": "full", "optim_conf.lr": 0.0002}
    assert diff("train_llm_asr_abl_stride_stride320.yaml") == {"projector_conf.stride_ms": 320}
    assert diff("train_llm_asr_abl_mask_mask0.25.yaml") == {"model_conf.text_mask_prob": 0.25}
    assert diff("train_llm_asr_abl_projector_conv.yaml") == {"projector": "conv"}
    assert diff("train_llm_asr_abl_prompt_instruction.yaml") == {"model_conf.prompt": "Transcribe the speech."}
    assert diff("train_llm_asr_abl_decode_system.yaml") == {"model_conf.ctc_weight": 0.3}
    assert not (conf / "train_llm_asr_abl_stride_stride80.yaml").exists()  # the base's own copy is not written
    assert yaml.safe_load((conf / "decode_llm_abl_beam10_ctc0.5.yaml").read_text())["ctc_weight"] == 0.5


def test_a_base_with_a_ctc_head_is_also_the_decode_system(recipe):
    dry_run(recipe, "--budget", "small", "--studies", "decode", "--base_config",
            "conf/tuning/train_llm_asr_whisper_lora.yaml")
    rows = manifest_rows(recipe)
    assert {r["exp_dir"] for r in rows} == {"exp/llm_asr_abl_base"} and len(rows) == 5
