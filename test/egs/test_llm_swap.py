"""Your own LLM by one option: the tiny AN4 recipe (30 utterances a set, stages 1-8 once), then the speech LLM's
stages 9-11 on tiny causal LMs of six architectures (Llama, Qwen2, GPT-2, Phi, Gemma, Gemma 3 with a sliding-window
layer) built from configs, with LoRA on peft's default targets for each (no target_modules in the YAML) and full
tuning. Each LLM gets its own exp dir, named for it; an exp dir whose LLM is swapped under the same --llm_name refuses
to resume or decode."""
import os
import subprocess
from pathlib import Path

import pytest
import yaml

AN4 = Path(__file__).resolve().parents[3] / "shared" / "data" / "an4"
pytestmark = pytest.mark.skipif(not (AN4 / "etc").is_dir(), reason=f"AN4 not found at {AN4}")
COMMON = ["--subset", "30", "--test_sets", "test", "--llm_test_sets", "test", "--llm_input", "fbank", "--nj", "2",
          "--inference_nj", "1", "--nthreads", "1", "--speed_perturb_factors", "",
          "--asr_config", "conf/tuning/train_asr_tiny.yaml", "--asr_inference_config", "conf/decode_asr_tiny.yaml",
          "--text_llm_args", "--max_steps 1 --batch_size 4", "--llm_init_encoder", "false",
          "--llm_asr_first_config", "", "--llm_inference_config", "conf/decode_llm_greedy.yaml",
          "--fusion_inference_configs", ""]  # the speech LLM's stages; the fusions have their own tests


def run(recipe: Path, *args, check=True):
    env = dict(os.environ, AN4_ROOT=str(AN4), LIBRIVOX_ROOT=str(AN4.parent / "librivox-clips"))
    result = subprocess.run([str(recipe / "run.sh"), *COMMON, *args], cwd=recipe, capture_output=True, text=True,
                            timeout=900, env=env, check=False)
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result


def tiny_config(recipe: Path, name: str, tuning: str) -> str:
    """conf/tuning/train_llm_asr_tiny.yaml with LoRA on peft's default targets (none named) or full tuning."""
    conf = yaml.safe_load((recipe / "conf/tuning/train_llm_asr_tiny.yaml").read_text())
    conf["llm_conf"]["tuning"] = tuning
    conf["llm_conf"]["lora"].pop("target_modules")
    conf["model_conf"]["ctc_weight"] = 0.0
    path = recipe / "conf" / "tuning" / f"train_llm_asr_{name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    return str(path.relative_to(recipe))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, make_tiny_llm, recipe_copy):
    """A tiny AN4 recipe after stages 1-8 with the tiny Llama as its LLM (exp/llm/tiny-llama-0)."""
    recipe = recipe_copy(tmp_path_factory.mktemp("swap"))
    run(recipe, "--stage", "1", "--stop_stage", "8", "--llm", str(make_tiny_llm("llama")))
    return recipe


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "phi", "gemma", "gemma3"])
def test_each_architecture_trains_and_decodes_with_lora_on_peft_targets(prepared, make_tiny_llm, arch):
    llm = make_tiny_llm(arch)
    config = tiny_config(prepared, "tiny_lora_auto", "lora")
    run(prepared, "--stage", "7", "--stop_stage", "7", "--llm", str(llm))
    run(prepared, "--stage", "9", "--stop_stage", "11", "--llm", str(llm), "--llm_asr_config", config)
    exp = prepared / "exp" / f"llm_asr_tiny_lora_auto_{llm.name}"
    assert (exp / "valid.acc.ave.pth").is_file()
    assert (prepared / "exp" / "llm" / llm.name).resolve() == llm.resolve()
    assert yaml.safe_load((exp / "config.yaml").read_text())["llm_conf"]["name_or_path"] == f"exp/llm/{llm.name}"
    hyps = (exp / "decode_llm_greedy_valid.acc.ave" / "test_sub30" / "text").read_text().splitlines()
    assert len(hyps) == 30


def test_full_tuning_and_a_swap_after_a_default_run(prepared, make_tiny_llm):
    default = tiny_config(prepared, "tiny_default", "lora")
    run(prepared, "--stage", "9", "--stop_stage", "11", "--llm_name", "tiny-llama-0", "--llm_asr_config", default)
    assert (prepared / "exp" / "llm_asr_tiny_default_tiny-llama-0" / "valid.acc.ave.pth").is_file()
    qwen = make_tiny_llm("qwen2")
    # the README's swap: one option, and a new exp dir named for that LLM (never a resume of the Llama one)
    run(prepared, "--stage", "7", "--stop_stage", "7", "--llm", str(qwen))
    run(prepared, "--stage", "9", "--stop_stage", "11", "--llm", str(qwen), "--llm_asr_config", default)
    swapped = prepared / "exp" / f"llm_asr_tiny_default_{qwen.name}"
    assert (swapped / "valid.acc.ave.pth").is_file() and "Resuming" not in (swapped / "train.log").read_text()
    full = tiny_config(prepared, "tiny_full", "full")
    run(prepared, "--stage", "9", "--stop_stage", "11", "--llm", str(qwen), "--llm_asr_config", full)
    assert (prepared / "exp" / f"llm_asr_tiny_full_{qwen.name}" / "decode_llm_greedy_valid.acc.ave" / "test_sub30"
            / "text").is_file()


def test_another_llm_under_a_kept_name_is_refused(prepared, make_tiny_llm):
    llama = make_tiny_llm("llama")
    config = tiny_config(prepared, "tiny_refuse", "lora")
    run(prepared, "--stage", "7", "--stop_stage", "7", "--llm", str(llama), "--llm_name", "mine")
    run(prepared, "--stage", "9", "--stop_stage", "9", "--llm_name", "mine", "--llm_asr_config", config)
    other = make_tiny_llm("llama", seed=1)  # same architecture and tokenizer, other weights
    run(prepared, "--stage", "7", "--stop_stage", "7", "--llm", str(other), "--llm_name", "mine")
    decode = run(prepared, "--stage", "11", "--stop_stage", "11", "--llm_name", "mine", "--llm_asr_config", config,
                 check=False)
    assert decode.returncode != 0
    logs = "".join(p.read_text() for p in (prepared / "exp").glob("llm_asr_tiny_refuse_mine/decode_*/test_sub30/logdir/*.log"))
    assert "trained with another LLM" in logs
