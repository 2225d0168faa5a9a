"""espnet_llm.config_check: misspelt keys of nested config sections are named with the config file."""
import pytest

from espnet_llm.config_check import ConfigError, check_nested_confs


@pytest.fixture(scope="module")
def asr_task():
    from espnet2.tasks.asr import ASRTask

    return ASRTask


@pytest.mark.parametrize("section, key, message", [
    ("encoder_conf", "num_block=2", "encoder_conf: unknown key(s) num_block for conformer (ConformerEncoder; known: "
                                    "input_size, output_size, attention_heads, linear_units, num_blocks"),
    ("decoder_conf", "num_blocks2=2", "decoder_conf: unknown key(s) num_blocks2 for transformer (TransformerDecoder"),
    ("model_conf", "ctc_weigth=0.3", "model_conf: unknown key(s) ctc_weigth for espnet (ESPnetASRModel"),
    ("optim_conf", "betas1=0.9", "optim_conf: unknown key(s) betas1 for adam (Adam"),
    ("scheduler_conf", "warmup=10", "scheduler_conf: unknown key(s) warmup for warmuplr (WarmupLR; known: optimizer, "
                                    "warmup_steps"),
])
def test_each_nested_section_is_checked_against_its_class(asr_task, tmp_path, section, key, message):
    config = tmp_path / "train.yaml"
    config.write_text("encoder: conformer\ndecoder: transformer\noptim: adam\nscheduler: warmuplr\n")
    args = asr_task.get_parser().parse_args(["--config", str(config), "--token_list", "t", f"--{section}", key])
    with pytest.raises(ConfigError) as err:
        check_nested_confs(asr_task, args)
    assert str(err.value).startswith(f"{config}: ") and message in str(err.value)


def test_the_recipe_entry_point_stops_before_building_anything(tmp_path, capsys):
    from espnet_llm.bin.asr_train import main

    config = tmp_path / "train.yaml"
    config.write_text("encoder: conformer\nencoder_conf:\n    output_size: 16\n    num_block: 1\n")
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(config), "--token_list", "t", "--output_dir", str(tmp_path / "exp")])
    assert f"error: {config}: encoder_conf: unknown key(s) num_block for conformer" in str(stop.value.code)
    assert not (tmp_path / "exp").exists()


def test_a_clean_config_passes(asr_task, tmp_path):
    args = asr_task.get_parser().parse_args(["--encoder", "conformer", "--encoder_conf", "num_blocks=2",
                                             "--token_list", "t"])
    check_nested_confs(asr_task, args)


@pytest.mark.parametrize("section, key, message", [
    ("projector_conf", "strid_ms=80", "projector_conf: unknown key(s) strid_ms for stack_linear"),
    ("model_conf", "ctc_weigth=0.3", "model_conf: unknown key(s) ctc_weigth for llm_prefix"),
])
def test_the_speech_llm_task_sections_are_checked_too(tmp_path, section, key, message):
    from espnet_llm.bin.llm_asr_train import main

    config = tmp_path / "train.yaml"
    config.write_text("encoder: transformer\nprojector: stack_linear\nmodel: llm_prefix\n"
                      "model_conf:\n    prompt: transcribe\n")  # prompt: read by the task, not an error
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(config), f"--{section}", key, "--output_dir", str(tmp_path / "exp")])
    assert f"error: {config}: {message}" in str(stop.value.code) and "prompt" not in str(stop.value.code).split("(")[0]
    assert not (tmp_path / "exp").exists()
