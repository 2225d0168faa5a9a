"""egs/TEMPLATE/asr1/setup.sh makes a new corpus recipe, and that recipe runs end to end (stages 1-13) once its
local/data.sh exists: here a corpus made on the spot, a dozen sentences spoken by eSpeak NG voices
(espnet_llm.bin.synth_speech; train: two voices, dev and test: one other voice each), with the tiny configs that
setup.sh copies from AN4 and a tiny Llama as the LLM. It checks that a corpus needs only local/data.sh, and that
every stage hands the right files to the next, not that the tiny models recognise anything.

Everything is made in tmp_path (the `recipe` fixture's copy of egs/TEMPLATE and egs/an4 beside linked utils/ and
espnet_llm/), so the checkout's egs/ is never written.
"""
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

SENTENCES = [
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG", "SHE SELLS SEA SHELLS BY THE SEA SHORE",
    "A BIRD IN THE HAND IS WORTH TWO IN THE BUSH", "THE RAIN IN SPAIN STAYS MAINLY IN THE PLAIN",
    "ALL THAT GLITTERS IS NOT GOLD", "PLEASE CALL STELLA AND ASK HER TO BRING THESE THINGS",
    "WE ALSO NEED A SMALL PLASTIC SNAKE", "SIX SPOONS OF FRESH SNOW PEAS",
    "THE BOX WAS THROWN BESIDE THE PARKED TRUCK", "FOUR HOURS OF STEADY WORK FACED US",
    "A LARGE SIZE IN STOCKINGS IS HARD TO SELL", "THE BIRCH CANOE SLID ON THE SMOOTH PLANKS",
]
DATA_SH = """#!/usr/bin/env bash
# A dozen sentences spoken by eSpeak NG -> data/{train,dev,test}: train in two voices, dev and test in one other each.
set -euo pipefail
# shellcheck disable=SC1091
. ./path.sh
mkdir -p data/local
cat > data/local/text <<'TEXT'
%s
TEXT
for part in "train en-us en-gb" "dev en-gb-x-rp" "test en-029"; do
  read -r name voices <<< "${part}"
  # shellcheck disable=SC2086
  python -m espnet_llm.bin.synth_speech --text data/local/text --out_dir "data/${name}" --max_utts 100 \\
    --min_words 1 --voices ${voices} --nj 2
done
""" % "\n".join(f"s{n:02d} {words}" for n, words in enumerate(SENTENCES, 1))


def setup(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    """egs/TEMPLATE/asr1/setup.sh of the tmp_path copy (`recipe` is its egs/an4/asr1)."""
    return subprocess.run([str(recipe.parents[1] / "TEMPLATE" / "asr1" / "setup.sh"), *args], cwd=recipe.parents[2],
                          capture_output=True, text=True, timeout=60, check=False)


def test_setup_makes_the_recipe_layout_and_a_data_sh_that_says_what_to_write(recipe):
    result = setup(recipe, "egs/mycorpus/asr1")
    assert result.returncode == 0, result.stderr
    new = recipe.parents[1] / "mycorpus" / "asr1"
    assert os.readlink(new / "utils") == "../../../utils" and os.readlink(new / "path.sh") == "../../TEMPLATE/asr1/path.sh"
    assert (new / "utils" / "parse_options.sh").is_file()
    for copied in ("cmd.sh", "db.sh"):
        assert not (new / copied).is_symlink() and (new / copied).read_text() == (
            recipe.parents[1] / "TEMPLATE" / "asr1" / copied).read_text()
    assert os.readlink(new / "conf" / "train_asr.yaml") == "tuning/train_asr_conformer.yaml"
    assert os.readlink(new / "conf" / "train_llm_asr.yaml") == "tuning/train_llm_asr_whisper_lora.yaml"
    assert sorted(p.name for p in (new / "conf").glob("decode_*.yaml")) == sorted(
        p.name for p in (recipe / "conf").glob("decode_*.yaml"))
    assert "llm: exp/llm_text_mycorpus_bpe30" in (new / "conf" / "decode_asr_fusion_labelwise.yaml").read_text()
    assert "--text_llm_corpus mycorpus" in (new / "run.sh").read_text()
    assert "../../TEMPLATE/asr1/llm_asr.sh" in (new / "run.sh").read_text()
    # every training config's header command names configs the new recipe has
    for config in (new / "conf" / "tuning").glob("train_*.yaml"):
        header = [line[1:].strip() for line in config.read_text().splitlines() if line.startswith("#")]
        command = next(line for line in header if line.startswith("./run.sh")).split("  #")[0]
        for path in (w for w in shlex.split(command) if w.endswith(".yaml")):
            assert (new / path).is_file(), f"{config}: {path}"

    stub = subprocess.run([str(new / "run.sh"), "--stop_stage", "1"], cwd=new, capture_output=True, text=True,
                          timeout=60, check=False)
    assert stub.returncode == 1
    assert "local/data.sh: error: not written yet" in stub.stderr and "data/train, data/dev and data/test" in stub.stderr


def test_setup_refuses_an_existing_dir_a_dir_outside_egs_and_no_argument(recipe, tmp_path):
    assert setup(recipe, "egs/mycorpus/asr1").returncode == 0
    again = setup(recipe, "egs/mycorpus/asr1")
    assert again.returncode == 1 and again.stderr.strip() == "setup.sh: error: egs/mycorpus/asr1 already exists"
    outside = setup(recipe, str(tmp_path / "elsewhere" / "asr1"))
    assert outside.returncode == 1 and "a recipe lives at" in outside.stderr
    assert not (tmp_path / "elsewhere").exists()
    assert setup(recipe).returncode == 2


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_new_recipe_end_to_end_tiny(recipe, tiny_llm_dir):
    assert setup(recipe, "egs/mycorpus/asr1").returncode == 0
    new = recipe.parents[1] / "mycorpus" / "asr1"
    (new / "local" / "data.sh").write_text(DATA_SH)
    args = [
        "--test_sets", "test", "--nj", "2", "--inference_nj", "2", "--nthreads", "1",
        "--asr_config", "conf/tuning/train_asr_tiny.yaml", "--asr_inference_config", "conf/decode_asr_tiny.yaml",
        "--text_llm_args", "--max_steps 2 --batch_size 4",
        "--llm", str(tiny_llm_dir), "--llm_name", "tiny", "--llm_input", "fbank",
        "--llm_asr_config", "conf/tuning/train_llm_asr_tiny.yaml", "--llm_inference_config", "conf/decode_llm_greedy.yaml",
    ]
    result = subprocess.run([str(new / "run.sh"), *args], cwd=new, capture_output=True, text=True, timeout=1800,
                            check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    for stage in range(1, 14):
        assert f"Stage {stage}:" in result.stdout, f"stage {stage} did not run"

    for name, n in (("train", 24), ("dev", 12), ("test", 12)):
        assert len((new / "data" / name / "text").read_text().splitlines()) == n
    assert len((new / "data" / "train_sp" / "text").read_text().splitlines()) == 72
    # the text LLMs and the fusion decodings of an LLM other than the default carry its name
    assert (new / "exp" / "llm_text_mycorpus_tiny").is_dir() and (new / "exp" / "llm_text_mycorpus_bpe30_tiny").is_dir()
    decodes = sorted(p.parent.parent.name for p in new.glob("exp/*/decode_*/test/text"))
    assert decodes == ["decode_asr_fusion_delayed_tiny_valid.acc.ave", "decode_asr_fusion_labelwise_tiny_valid.acc.ave",
                       "decode_asr_rescore_nbest10_tiny_valid.acc.ave", "decode_asr_tiny_valid.acc.ave",
                       "decode_llm_greedy_valid.acc.ave"]
    words = sum(len(s.split()) for s in SENTENCES)
    for text in new.glob("exp/*/decode_*/test/text"):
        ids = [line.split(maxsplit=1)[0] for line in text.read_text().splitlines()]
        assert ids == sorted(ids) and len(ids) == 12, text
        score = json.loads((text.parent / "score_wer" / "result.json").read_text())
        assert (score["Snt"], score["Wrd"]) == (12, words)
        assert "Sum/Avg" in (text.parent / "score_wer" / "result.txt").read_text()
        assert "Sum/Avg" in (text.parent / "score_cer" / "result.txt").read_text()

    results = (new / "RESULTS.md").read_text().replace(" ", "")
    assert "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|" in results
    assert "`exp/llm_asr_tiny_tiny`" in results and "`exp/asr_tiny`" in results  # the speech LLM, the AM
    assert results.count(f"\n|test|12|{words}|") >= 5  # a WER table for each of the 5 decodings
