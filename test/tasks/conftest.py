"""Fixtures of the task tests: tiny Kaldi-style feature sets (random fbank-like features + AN4-like text)."""
from pathlib import Path

import kaldiio
import numpy as np
import pytest

FEAT_DIM = 8


def write_set(root: Path, texts, seed):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    feats = {utt: rng.standard_normal((int(rng.integers(30, 60)), FEAT_DIM)).astype(np.float32) for utt in texts}
    with kaldiio.WriteHelper(f"ark,scp:{root}/feats.ark,{root}/feats.scp") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    (root / "text").write_text("".join(f"{u} {texts[u]}\n" for u in sorted(texts)))
    (root / "speech_shape").write_text("".join(f"{u} {feats[u].shape[0]},{FEAT_DIM}\n" for u in sorted(feats)))
    return feats


@pytest.fixture(scope="session")
def make_data_dir():
    """make_data_dir(root, train_texts, valid_texts) -> root with train/, valid/ and global CMVN feats_stats.npz."""
    def make(root: Path, train_texts, valid_texts) -> Path:
        train = write_set(root / "train", train_texts, 0)
        write_set(root / "valid", valid_texts, 1)
        stacked = np.concatenate(list(train.values()))
        np.savez(root / "feats_stats.npz", count=len(stacked), sum=stacked.sum(0), sum_square=(stacked**2).sum(0))
        return root
    return make
