"""End-to-end tests of espnet_llm.bin.asr_fusion_inference: a tiny ESPnet ASRTask model (saved like an exp dir),
features in a Kaldi ark, the tiny Llama of conftest, and LLMs that share the AM's units."""

import random

import kaldiio
import numpy as np
import pytest
import torch
import yaml
from espnet2.tasks.asr import ASRTask
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from espnet_llm.bin import asr_inference, tokenizer_train
from espnet_llm.bin.asr_fusion_inference import Speech2TextFusion, main
from espnet_llm.bin.llm_text_train import read_token_list
from espnet_llm.decode.fusion import LLMTextScorer, am_tokens_to_text

FEAT_DIM = 8
WORDS = "YES NO ONE TWO THREE FOUR".split()


TRANSCRIPTS = {"spk-u0": "YES NO ONE", "spk-u1": "TWO THREE", "spk-u2": "FOUR ONE YES"}


def utterances():
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal((n, FEAT_DIM)).astype(np.float32) for k, n in zip(TRANSCRIPTS, (40, 56, 48))}


@pytest.fixture(scope="module")
def am_dir(tmp_path_factory):
    """exp/asr_tiny with config.yaml + valid.acc.ave.pth: a transformer CTC/attention AM fitted to 3 utterances."""
    root = tmp_path_factory.mktemp("am")
    rng = random.Random(0)
    text = root / "text"
    text.write_text("".join(f"u{i:03d} " + " ".join(rng.choice(WORDS) for _ in range(3)) + "\n" for i in range(30)))
    tokenizer_train.main(["--text", str(text), "--token_type", "bpe", "--nbpe", "20", "--out_dir", str(root / "bpe")])
    exp = root / "asr_tiny"
    args = ASRTask.get_parser().parse_args(
        [
            "--output_dir", str(exp), "--input_size", str(FEAT_DIM), "--normalize", "none",
            "--token_type", "bpe", "--token_list", str(root / "bpe" / "tokens.txt"),
            "--bpemodel", str(root / "bpe" / "bpe.model"),
            "--encoder", "transformer", "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
            "--encoder_conf", "linear_units=16", "--encoder_conf", "num_blocks=1",
            "--decoder", "transformer", "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=16",
            "--decoder_conf", "num_blocks=1", "--model_conf", "ctc_weight=0.3",
        ]
    )
    args.frontend = None  # features in, as the recipe's `frontend: null`
    torch.manual_seed(0)
    model = ASRTask.build_model(args)
    fit(model, root / "bpe")
    exp.mkdir()
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp


def fit(model, bpe_dir, steps=150):
    """A few Adam steps on the test utterances, so that the AM emits words and ends its hypotheses itself."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(bpe_dir / "bpe.model"))
    index = {t: i for i, t in enumerate(read_token_list(str(bpe_dir / "tokens.txt")))}
    feats = list(utterances().values())
    ids = [[index.get(p, 1) for p in sp.encode(t, out_type=str)] for t in TRANSCRIPTS.values()]
    speech = torch.zeros(3, max(len(f) for f in feats), FEAT_DIM)
    text = torch.full((3, max(map(len, ids))), -1, dtype=torch.long)
    for i, (f, y) in enumerate(zip(feats, ids)):
        speech[i, : len(f)] = torch.from_numpy(f)
        text[i, : len(y)] = torch.tensor(y)
    optim = torch.optim.Adam(model.parameters(), lr=0.005)
    model.train()
    for _ in range(steps):
        loss, _, _ = model(speech, torch.tensor([len(f) for f in feats]), text, torch.tensor([len(y) for y in ids]))
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    root = tmp_path_factory.mktemp("feats")
    utts = utterances()
    with kaldiio.WriteHelper(f"ark,scp:{root / 'feats.ark'},{root / 'feats.scp'}") as writer:
        for key, mat in utts.items():
            writer(key, mat)
    return root / "feats.scp", utts


@pytest.fixture(scope="module")
def unit_llm_dir(am_dir, tmp_path_factory):
    """An LLM whose vocabulary is the AM's token list (what llm_text_train --units am saves)."""
    token_list = read_token_list(str(am_dir.parent / "bpe" / "tokens.txt"))
    sos_eos = len(token_list) - 1
    config = LlamaConfig(
        vocab_size=len(token_list), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=sos_eos, eos_token_id=sos_eos,
        initializer_range=0.5,
    )
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("llm") / "unit_llm"
    LlamaForCausalLM(config).save_pretrained(str(out))
    return out


def run(am_dir, feats_scp, out, *opts):
    main([
        "--asr_train_config", str(am_dir / "config.yaml"), "--asr_model_file", str(am_dir / "valid.acc.ave.pth"),
        "--data_path_and_name_and_type", f"{feats_scp},speech,kaldi_ark", "--output_dir", str(out),
        "--beam_size", "3", "--ctc_weight", "0.3", "--maxlenratio", "0.0", *opts,
    ])
    recog = out / "1best_recog"
    read = lambda name: dict(l.split(" ", 1) if " " in l else (l, "") for l in (recog / name).read_text().splitlines())
    return read("text"), read("score"), read("score_terms"), read("token_int")


def maxlen(am_dir, speech):
    """ESPnet's length bound of the beam search with maxlenratio 0: the number of encoder frames."""
    model, _ = ASRTask.build_model_from_file(am_dir / "config.yaml", am_dir / "valid.acc.ave.pth", "cpu")
    with torch.no_grad():
        _, lengths = model.encode(torch.from_numpy(speech)[None], torch.tensor([len(speech)]))
    return int(lengths[0])


def split_eos(am_dir, speech, token_int, eos):
    """(token ids without EOS, whether the hypothesis ended with EOS itself rather than at the length bound)."""
    ids = [int(i) for i in token_int.split()]
    if ids and ids[-1] == eos:  # chose EOS at the last step; ESPnet then appends another one, kept in the output
        return ids[:-1], True
    return ids, len(ids) < maxlen(am_dir, speech)


def terms_of(line):
    return {k: float(v) for k, v in (t.split("=") for t in line.split())}


def test_no_fusion_equals_espnet_asr_inference(am_dir, feats, tmp_path):
    feats_scp, utts = feats
    text, score, _, _ = run(am_dir, feats_scp, tmp_path / "none", "--fusion", "none")
    conf = tmp_path / "decode.yaml"
    conf.write_text(yaml.safe_dump(dict(beam_size=3, ctc_weight=0.3, lm_weight=0.0, penalty=0.0, maxlenratio=0.0)))
    asr_inference.main([
        "--config", str(conf), "--asr_train_config", str(am_dir / "config.yaml"),
        "--asr_model_file", str(am_dir / "valid.acc.ave.pth"),
        "--data_path_and_name_and_type", f"{feats_scp},speech,kaldi_ark", "--output_dir", str(tmp_path / "espnet"),
    ])
    espnet_text = (tmp_path / "espnet" / "1best_recog" / "text").read_text().splitlines()
    assert sorted(text) == sorted(utts)
    assert [l.split(" ", 1)[0] for l in espnet_text] == sorted(utts)
    for line in espnet_text:
        key, _, hyp = line.partition(" ")
        assert text[key] == hyp


def test_delayed_fusion_adds_the_llm_sentence_score(am_dir, feats, tiny_llm_dir, tmp_path):
    feats_scp, utts = feats
    token_list = read_token_list(str(am_dir.parent / "bpe" / "tokens.txt"))
    eos, natural = len(token_list) - 1, 0
    text, score, terms, token_int = run(am_dir, feats_scp, tmp_path / "delayed", "--fusion", "delayed", "--llm",
                                str(tiny_llm_dir), "--lm_weight", "0.3")
    llm = AutoModelForCausalLM.from_pretrained(str(tiny_llm_dir), local_files_only=True).eval()
    scorer = LLMTextScorer(llm, AutoTokenizer.from_pretrained(str(tiny_llm_dir)), text_case="lower")
    assert sorted(text) == sorted(utts)
    for key in utts:
        t = terms_of(terms[key])
        assert set(t) == {"decoder", "ctc", "lm"}
        assert float(score[key]) == pytest.approx(0.7 * t["decoder"] + 0.3 * t["ctc"] + 0.3 * t["lm"], abs=1e-3)
        ids, ended = split_eos(am_dir, utts[key], token_int[key], eos)
        words = am_tokens_to_text(token_list, ids).split()
        if ended:  # the whole sentence and the LLM's EOS were scored
            assert t["lm"] == pytest.approx(scorer.sentence_logp(" ".join(words)), abs=1e-3)
            natural += 1
        else:  # cut by the length bound: ESPnet appends EOS unscored, so only the words before the last one count
            assert t["lm"] == pytest.approx(scorer.extend(scorer.start(), " ".join(words[:-1])).total, abs=1e-3)
    assert natural >= 1


def test_labelwise_fusion_with_an_llm_on_the_am_units(am_dir, feats, unit_llm_dir, tmp_path):
    feats_scp, utts = feats
    text, score, terms, token_int = run(am_dir, feats_scp, tmp_path / "labelwise", "--fusion", "labelwise", "--llm",
                                        str(unit_llm_dir), "--lm_weight", "0.4")
    llm = AutoModelForCausalLM.from_pretrained(str(unit_llm_dir), local_files_only=True).eval()
    sos_eos = llm.config.eos_token_id
    for key in utts:
        ids, ended = split_eos(am_dir, utts[key], token_int[key], sos_eos)
        ids = ids + [sos_eos] if ended else ids  # a hypothesis cut at the bound has no EOS score
        with torch.no_grad():
            logp = torch.log_softmax(llm(input_ids=torch.tensor([[sos_eos] + ids])).logits[0], -1)
        want = sum(float(logp[i, t]) for i, t in enumerate(ids))
        t = terms_of(terms[key])
        assert t["lm"] == pytest.approx(want, abs=1e-3)
        assert float(score[key]) == pytest.approx(0.7 * t["decoder"] + 0.3 * t["ctc"] + 0.4 * t["lm"], abs=1e-3)


def test_labelwise_fusion_refuses_an_llm_with_other_units(am_dir, feats, tiny_llm_dir, tmp_path):
    with pytest.raises(SystemExit) as e:
        run(am_dir, feats[0], tmp_path / "bad", "--fusion", "labelwise", "--llm", str(tiny_llm_dir))
    assert e.value.code == 1


def test_nbest_rescoring_picks_the_best_weighted_sum(am_dir, feats, tiny_llm_dir, tmp_path):
    feats_scp, utts = feats
    s2t = Speech2TextFusion.build(
        am_dir / "config.yaml", am_dir / "valid.acc.ave.pth", fusion="rescore", llm=tiny_llm_dir, lm_weight=0.6,
        word_bonus=0.5, nbest_rescore=3, beam_size=3, ctc_weight=0.3, maxlenratio=0.0,
    )
    am_only = Speech2TextFusion.build(am_dir / "config.yaml", am_dir / "valid.acc.ave.pth", beam_size=3, nbest=3,
                                      ctc_weight=0.3, maxlenratio=0.0)
    text, score, terms, _ = run(am_dir, feats_scp, tmp_path / "rescore", "--fusion", "rescore", "--llm",
                                str(tiny_llm_dir), "--lm_weight", "0.6", "--word_bonus", "0.5", "--nbest_rescore", "3")
    for key, speech in utts.items():
        ranked = s2t(speech)
        am_nbest = {r[0]: r[3] for r in reversed(am_only(speech))}  # text -> best AM score
        assert {r[0] for r in ranked} == set(am_nbest)
        for r in ranked:
            t = r[4]
            assert t["am"] == pytest.approx(am_nbest[r[0]], abs=1e-4)
            assert t["total"] == pytest.approx(t["am"] + 0.6 * t["llm"] + 0.5 * t["n_words"], abs=1e-4)
        assert [r[3] for r in ranked] == sorted((r[3] for r in ranked), reverse=True)
        assert text[key] == ranked[0][0] and float(score[key]) == pytest.approx(ranked[0][3], abs=1e-4)
        assert terms_of(terms[key])["total"] == pytest.approx(ranked[0][3], abs=1e-3)


@pytest.mark.parametrize(
    "name, fusion", [("labelwise", "labelwise"), ("delayed", "delayed"), ("rescore_nbest10", "rescore")]
)
def test_an4_decode_configs_parse(name, fusion):
    from pathlib import Path

    from espnet_llm.bin.asr_fusion_inference import get_parser

    conf = Path(__file__).parents[2] / "egs" / "an4" / "asr1" / "conf"
    prefix = "decode_asr_fusion_" if fusion != "rescore" else "decode_asr_"
    args = get_parser().parse_args(["--config", str(conf / f"{prefix}{name}.yaml"), "--output_dir", "o",
                                    "--data_path_and_name_and_type", "a,speech,kaldi_ark",
                                    "--asr_train_config", "c", "--asr_model_file", "m"])
    assert (args.fusion, args.beam_size, args.ctc_weight, args.lm_weight) == (fusion, 10, 0.3, 0.3)
    assert args.llm.startswith("exp/llm_text_an4")


def test_hotwords_bias_the_am_beam_search_on_its_units(am_dir, feats, tmp_path):
    feats_scp, utts = feats
    text, score, terms, _ = run(am_dir, feats_scp, tmp_path / "plain", "--fusion", "none")
    # the AM says "TWO THREE" for spk-u1; biasing "FOUR" hard brings it in there
    (tmp_path / "hot.txt").write_text("FOUR\n")
    hot_text, hot_score, hot_terms, _ = run(am_dir, feats_scp, tmp_path / "hot", "--fusion", "none",
                                            "--hotwords", str(tmp_path / "hot.txt"), "--hotword_bonus", "20")
    assert "FOUR" not in text["spk-u1"].split() and "FOUR" in hot_text["spk-u1"].split()
    assert terms_of(hot_terms["spk-u1"])["hotword"] > 0
    # a zero bonus: ESPnet's result and score, the hotword term 0
    zero_text, zero_score, zero_terms, _ = run(am_dir, feats_scp, tmp_path / "zero", "--fusion", "none",
                                               "--hotwords", str(tmp_path / "hot.txt"), "--hotword_bonus", "0")
    assert zero_text == text and all(float(zero_score[k]) == pytest.approx(float(score[k]), abs=1e-4) for k in text)
    assert all(terms_of(zero_terms[k])["hotword"] == 0.0 for k in text)


@pytest.mark.parametrize("fusion,engine", [("delayed", "openvino")])  # input ids, batched texts, a cut cache
def test_fusion_with_an_exported_llm_engine_gives_the_hf_result(am_dir, feats, tiny_llm_dir, unit_llm_dir, tmp_path,
                                                                 fusion, engine):
    pytest.importorskip(engine)
    feats_scp, utts = feats
    llm = str(tiny_llm_dir if fusion == "delayed" else unit_llm_dir)
    ref = run(am_dir, feats_scp, tmp_path / "hf", "--fusion", fusion, "--llm", llm, "--lm_weight", "0.3")
    got = run(am_dir, feats_scp, tmp_path / engine, "--fusion", fusion, "--llm", llm, "--lm_weight", "0.3",
              "--llm_engine", engine, "--llm_engine_dir", str(tmp_path / "export"))
    assert (tmp_path / "export" / "engine.json").is_file()
    assert got[0] == ref[0] and got[3] == ref[3]  # text, token_int
    for key in utts:
        assert float(got[1][key]) == pytest.approx(float(ref[1][key]), abs=1e-3)
