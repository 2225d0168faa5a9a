"""Every config under egs/*/asr1/conf/ is taken by its task's parser, and a training config's header says what it is
and gives the one run.sh command that trains it from a clean checkout: options the stage script has, configs that
exist, and the config itself among them (or, for the plain `./run.sh`, among run.sh's defaults)."""
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGE_SCRIPT = REPO / "egs" / "TEMPLATE" / "asr1" / "llm_asr.sh"
CONFIGS = sorted(p for p in REPO.glob("egs/*/asr1/conf/**/*.yaml") if "TEMPLATE" not in p.parts)
OPTIONS = set(re.findall(r"^([a-z][a-z0-9_]*)=", STAGE_SCRIPT.read_text().split("help_message=")[0], re.M))


def recipe_of(config: Path) -> Path:
    return next(p for p in config.parents if p.name == "asr1")


def header(config: Path) -> list:
    lines = []
    for line in config.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def header_command(config: Path) -> str:
    """The `./run.sh ...` of the header, its continuation lines joined, its trailing comment dropped."""
    lines = header(config)
    start = next((i for i, line in enumerate(lines) if line.startswith("./run.sh")), None)
    assert start is not None, f"{config}: the header gives no ./run.sh command"
    command = lines[start]
    while command.endswith("\\"):
        start += 1
        command = command[:-1] + " " + lines[start]
    return command.split("  #")[0].strip()


def run_sh_defaults(recipe: Path) -> set:
    """The training configs run.sh uses, as conf/tuning/ paths (conf/train_*.yaml links followed)."""
    named = re.findall(r"(conf/\S+\.yaml)", (recipe / "run.sh").read_text())
    return {(recipe / name).resolve() for name in named}


@pytest.mark.parametrize("config", [c for c in CONFIGS if not c.is_symlink()], ids=lambda c: str(c.relative_to(REPO)))
def test_header_says_what_and_how(config):
    lines = header(config)
    assert lines and lines[0], f"{config}: no header line saying what the config is"
    text = " ".join(lines)
    assert not re.search(r"session|round [0-9]|issue [0-9]", text, re.I), f"{config}: history in its header"
    if not config.name.startswith("train_"):
        return
    recipe = recipe_of(config)
    words = shlex.split(header_command(config))
    assert words[0] == "./run.sh"
    given = [w[2:] for w in words if w.startswith("--")]
    assert not set(given) - OPTIONS, f"{config}: options the stage script lacks: {set(given) - OPTIONS}"
    paths = [w for w in words if w.endswith(".yaml")]
    for path in paths:
        assert (recipe / path).is_file(), f"{config}: its command names {path}, which does not exist"
    named = {(recipe / path).resolve() for path in paths}
    overridden = {"--asr_config", "--llm_asr_config", "--llm_asr_first_config"} & set(words)
    defaults = {d for d in run_sh_defaults(recipe)
                if not any(f"--{o}" in overridden and d == (recipe / p).resolve()
                           for o, p in re.findall(r"--(\w+) (conf/\S+\.yaml)", (recipe / "run.sh").read_text()))}
    assert config.resolve() in named | defaults, f"{config}: its command does not train it"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c.relative_to(REPO)))
def test_task_parser_takes_it(config, tmp_path):
    """The YAML through the parser that reads it in the recipe (an unknown or misspelt key is an error there)."""
    name = config.name
    if name.startswith("train_llm_asr"):
        from espnet_llm.tasks.llm_asr import LLMASRTask

        from espnet_llm.config_check import check_nested_confs

        args = LLMASRTask.get_parser().parse_args(["--config", str(config)])
        assert args.llm_conf and args.projector
        check_nested_confs(LLMASRTask, args, skip={"model_conf": ("prompt",)})  # encoder_conf, optim_conf, ...
    elif name.startswith("train_asr"):
        from espnet_llm.tasks.asr import ASRTask  # ESPnet's, with the project's encoders and encoder_lr_scale

        from espnet_llm.config_check import check_nested_confs

        args = ASRTask.get_parser().parse_args(["--config", str(config)])
        assert args.encoder and args.max_epoch >= 1
        check_nested_confs(ASRTask, args)
    elif name.startswith("decode_llm"):
        from espnet_llm.bin.llm_asr_inference import get_parser

        args = get_parser().parse_args(["--config", str(config), "--output_dir", str(tmp_path),
                                        "--data_path_and_name_and_type", "x.scp,speech,sound"])
        assert args.beam_size >= 1
    elif name.startswith("decode_asr"):
        import yaml

        fusion = "fusion" in (yaml.safe_load(config.read_text()) or {})
        if fusion:
            from espnet_llm.bin.asr_fusion_inference import get_parser
        else:
            from espnet2.bin.asr_inference import get_parser
        args = get_parser().parse_args(["--config", str(config), "--output_dir", str(tmp_path),
                                        "--data_path_and_name_and_type", "x.scp,speech,kaldi_ark",
                                        "--asr_train_config", "config.yaml", "--asr_model_file", "model.pth"])
        assert args.beam_size >= 1
    else:
        pytest.fail(f"{config}: not a train_* or decode_* config")


def test_conf_defaults_link_into_tuning():
    for recipe in sorted(REPO.glob("egs/*/asr1")):
        if recipe.parent.name == "TEMPLATE":
            continue
        run_sh = (recipe / "run.sh").read_text()
        for link in ("train_asr.yaml", "train_llm_asr.yaml"):
            if link == "train_asr.yaml" and '--asr_config ""' in run_sh:
                continue  # a recipe without an AM
            path = recipe / "conf" / link
            assert path.is_symlink() and path.resolve().parent.name == "tuning", path
            assert f"conf/{link}" in (recipe / "run.sh").read_text(), f"{recipe}/run.sh does not use conf/{link}"
