"""The package as pip installs it from pyproject.toml: a wheel built offline into a fresh virtualenv that sees the
project venv's packages, its console script transcribing a packed model from /tmp; and the ImportError that says
how to install ESPnet when it is missing."""
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TOP = Path(__file__).resolve().parents[1]


def test_pyproject_declares_the_console_scripts_and_not_espnet():
    project = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]
    assert project["name"] == "espnet_llm"
    assert project["scripts"]["espnet-llm-transcribe"] == "espnet_llm.bin.transcribe:main"
    names = [d.split(";")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower() for d in project["dependencies"]]
    assert "espnet" not in names and {"torch", "transformers", "peft", "soundfile", "kaldiio"} <= set(names)
    assert "pytest" in " ".join(project["optional-dependencies"]["test"])
    assert not (TOP / "setup.py").exists()


def test_missing_espnet_raises_an_import_error_that_says_how_to_install_it():
    """ESPnet hidden from the path finder, as in a Python without it."""
    check = (
        "import importlib.machinery as m, sys\n"
        "class Hidden(m.PathFinder):\n"
        "    @classmethod\n"
        "    def find_spec(cls, name, path=None, target=None):\n"
        "        return None if name.split('.')[0] in ('espnet', 'espnet2') else m.PathFinder.find_spec(name, path, target)\n"
        "sys.meta_path[sys.meta_path.index(m.PathFinder)] = Hidden\n"
        "try:\n"
        "    import espnet_llm.tasks.llm_asr\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ModuleNotFoundError No module named 'espnet")
    assert "tools/install.sh" in proc.stdout and "pip install --no-deps espnet==202511" in proc.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """<tmp>/v: a virtualenv made by this Python, tools/venv's site-packages visible through a .pth file (a venv's
    --system-site-packages shows the base interpreter's, not the project venv's), espnet_llm installed into it with
    `pip install --no-deps --no-build-isolation --no-index` from a copy of the sources (the build writes no files
    into the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(TOP / "espnet_llm", src / "espnet_llm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(TOP / name, src / name)
    venv = root / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    ours = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    project_site = sysconfig.get_paths()["purelib"]  # tools/venv's, where torch and espnet are
    assert project_site in site.getsitepackages() and Path(project_site, "torch").is_dir()
    Path(ours, "project_venv.pth").write_text(project_site + "\n")
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return venv, Path(ours)


def packed_tiny_speech_llm(llm_dir: Path, root: Path) -> Path:
    """A packed untrained speech LLM on 80-dim fbank (a 1-block transformer encoder, the tiny Llama, LoRA)."""
    import torch
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    from espnet_llm.packing import pack
    from espnet_llm.tasks.llm_asr import LLMASRTask

    exp = root / "exp" / "llm_asr_tiny"
    args = LLMASRTask.get_parser().parse_args([
        "--output_dir", str(exp), "--input_size", "80", "--normalize", "utterance_mvn", "--encoder", "transformer",
        "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2", "--encoder_conf", "linear_units=16",
        "--encoder_conf", "num_blocks=1", "--projector_conf", "stack=2", "--llm_conf", f"name_or_path={llm_dir}",
    ])
    torch.manual_seed(0)
    model = LLMASRTask.build_model(args)
    exp.mkdir(parents=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return pack(exp, root / "packed.zip")


def test_wheel_installs_and_its_console_script_transcribes_from_tmp(wheel_venv, tiny_llm_dir, tmp_path):
    from espnet_llm.inference import Speech2TextLLM

    venv, site_dir = wheel_venv
    archive = packed_tiny_speech_llm(tiny_llm_dir, tmp_path / "recipe")
    rng = np.random.default_rng(0)
    flac = tmp_path / "some.flac"
    sf.write(flac, (0.1 * rng.standard_normal((22050, 2))).astype(np.float32), 22050, subtype="PCM_16")
    env = {**os.environ, "ESPNET_LLM_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    run = dict(capture_output=True, text=True, timeout=600, cwd="/tmp", env=env, check=False)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import espnet_llm.tasks.llm_asr, espnet_llm; "
                            "print(espnet_llm.__file__)"], **run)
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.splitlines()[-1] == str(site_dir / "espnet_llm" / "__init__.py")  # the installed copy, not the checkout

    proc = subprocess.run([str(venv / "bin" / "espnet-llm-transcribe"), str(archive), str(flac)], **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = Speech2TextLLM.from_pretrained(archive, cache_dir=tmp_path / "cache").transcribe(flac)
    assert proc.stdout == f"{flac} {expected}\n"
