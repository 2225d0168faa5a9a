"""Tests of espnet_llm.bin.tokenizer_train: Kaldi text -> sentencepiece model and ESPnet token list."""
import collections
from pathlib import Path

import pytest
import sentencepiece as spm

from espnet_llm.bin.tokenizer_train import main  # imports espnet2 (slow): once for the module

WORDS = "YES NO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO ENTER ERASE RUBOUT STOP GO HELP REPEAT START".split()


@pytest.fixture
def text(tmp_path) -> Path:
    lines = []
    for i in range(60):
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(1 + i % 4)] + ["A", "B", "C"][i % 3:][:i % 2]
        lines.append(f"spk{i % 3}-utt{i:03d} {' '.join(words)}\n")
    path = tmp_path / "data" / "train" / "text"
    path.parent.mkdir(parents=True)
    path.write_text("".join(lines))
    return path


def sentences(text: Path) -> list[str]:
    return [line.split(None, 1)[1] for line in text.read_text().splitlines()]


@pytest.mark.parametrize("token_type", ["bpe", "unigram"])
def test_sentencepiece_token_list_in_espnet_order(text, tmp_path, token_type):
    out = tmp_path / "token_list" / f"{token_type}30"
    main(["--text", str(text), "--token_type", token_type, "--nbpe", "30", "--out_dir", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["bpe.model", "tokens.txt"]
    tokens = out.joinpath("tokens.txt").read_text().splitlines()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>"
    assert len(tokens) == len(set(tokens))
    sp = spm.SentencePieceProcessor(model_file=str(out / "bpe.model"))
    assert sp.get_piece_size() == 30 and sp.id_to_piece(0) == "<unk>"
    pieces = collections.Counter(p for s in sentences(text) for p in sp.encode(s, out_type=str))
    assert "<unk>" not in pieces and 0 not in {i for s in sentences(text) for i in sp.encode(s)}
    # units: every piece the training text uses, most frequent first
    assert set(tokens[2:-1]) == set(pieces)
    counts = [pieces[t] for t in tokens[2:-1]]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    assert all(sp.decode(sp.encode(s)) == s for s in sentences(text))


def test_char_token_list_in_espnet_order(tmp_path):
    text = tmp_path / "text"
    text.write_text("a-1 YES YES\na-2 NO\nb-1 SEE\n")  # E 5, S 4, Y 2, <space> 1, N 1, O 1
    out = tmp_path / "char"
    main(["--text", str(text), "--token_type", "char", "--out_dir", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["tokens.txt"]
    tokens = out.joinpath("tokens.txt").read_text().splitlines()
    assert tokens[:5] == ["<blank>", "<unk>", "E", "S", "Y"] and tokens[-1] == "<sos/eos>"
    assert sorted(tokens[5:-1]) == ["<space>", "N", "O"]
