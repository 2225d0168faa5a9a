"""llm_ctc_remap: a trained CTC head moved onto a larger vocabulary scores every LLM id as before."""
import pytest
import torch
from transformers import AutoConfig

from espnet_llm.asr.ctc import SubsetCTC
from espnet_llm.bin.llm_ctc_remap import main

DIM = 4


def _vocab(path, ids):
    path.write_text("".join(f"{i} tok{i}\n" for i in ids))
    return path


def test_remapped_model_file_keeps_the_scores_and_the_other_weights(tiny_llm_dir, tmp_path):
    vocab_size = AutoConfig.from_pretrained(tiny_llm_dir).vocab_size
    torch.manual_seed(0)
    old = SubsetCTC(vocab_size, [3, 5, 7], DIM)
    state = {"ctc.ctc_lo.weight": old.ctc_lo.weight.data * 3, "ctc.ctc_lo.bias": old.ctc_lo.bias.data,
             "projector.linear.weight": torch.randn(2, 2)}
    old.ctc_lo.load_state_dict({"weight": state["ctc.ctc_lo.weight"], "bias": state["ctc.ctc_lo.bias"]})
    torch.save(state, tmp_path / "in.pth")
    out = tmp_path / "exp" / "init.pth"
    args = ["--model", str(tmp_path / "in.pth"), "--old_vocab", str(_vocab(tmp_path / "old.txt", [3, 5, 7])),
            "--new_vocab", str(_vocab(tmp_path / "new.txt", [2, 3, 5, 7, 11])), "--llm_dir", str(tiny_llm_dir),
            "--out", str(out)]
    assert main(args) == 0
    got = torch.load(out)
    assert torch.equal(got["projector.linear.weight"], state["projector.linear.weight"])
    new = SubsetCTC(vocab_size, [2, 3, 5, 7, 11], DIM)
    new.ctc_lo.load_state_dict({"weight": got["ctc.ctc_lo.weight"], "bias": got["ctc.ctc_lo.bias"]})
    x = torch.randn(1, 3, DIM)
    assert torch.allclose(new.log_softmax(x), old.log_softmax(x), atol=1e-5)
    assert not (tmp_path / "exp" / "init.pth.tmp").exists()


def test_a_vocabulary_that_does_not_fit_the_head_is_named(tiny_llm_dir, tmp_path):
    torch.save({"ctc.ctc_lo.weight": torch.zeros(5, DIM), "ctc.ctc_lo.bias": torch.zeros(5)}, tmp_path / "in.pth")
    old = _vocab(tmp_path / "old.txt", [3, 5])
    args = ["--model", str(tmp_path / "in.pth"), "--old_vocab", str(old), "--new_vocab", str(old),
            "--llm_dir", str(tiny_llm_dir), "--out", str(tmp_path / "out.pth")]
    with pytest.raises(SystemExit, match="old.txt: the CTC output layer has 5 units"):
        main(args)
    torch.save({"encoder.w": torch.zeros(1)}, tmp_path / "noctc.pth")
    args[1] = str(tmp_path / "noctc.pth")
    with pytest.raises(SystemExit, match="has no CTC head"):
        main(args)
    assert not (tmp_path / "out.pth").exists()
