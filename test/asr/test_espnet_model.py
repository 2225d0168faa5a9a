import pytest
import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.layers.utterance_mvn import UtteranceMVN

from espnet_llm.asr.espnet_model import LLMPrefixASRModel
from espnet_llm.asr.llm import load_causal_lm, load_tokenizer
from espnet_llm.asr.projector.stack import StackLinearProjector

FEAT_DIM = 8


def build(llm_dir, tuning="frozen", seed=0, **kwargs):
    torch.manual_seed(seed)
    lora_conf = dict(r=2, alpha=4, dropout=0.0) if tuning == "lora" else None
    llm = load_causal_lm(llm_dir, tuning=tuning, lora_conf=lora_conf)
    dim = llm.get_input_embeddings().embedding_dim
    encoder = TransformerEncoder(FEAT_DIM, output_size=8, attention_heads=2, linear_units=16, num_blocks=1,
                                 input_layer="conv2d", dropout_rate=0.0)
    ctc = CTC(odim=llm.get_input_embeddings().num_embeddings, encoder_output_size=8)
    tokenizer = load_tokenizer(llm_dir)
    return LLMPrefixASRModel(
        frontend=None, specaug=None, normalize=UtteranceMVN(), encoder=encoder,
        projector=StackLinearProjector(8, dim, stack=2), llm=llm, eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.eos_token_id, ctc=ctc, **kwargs,
    )


def batch(llm_dir):
    tokenizer = load_tokenizer(llm_dir)
    texts = ["yes no", "three four five six"]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    text = torch.full((2, max(map(len, ids))), -1, dtype=torch.long)  # ESPnet's padding value
    for i, row in enumerate(ids):
        text[i, : len(row)] = torch.tensor(row)
    torch.manual_seed(1)
    return dict(
        speech=torch.randn(2, 40, FEAT_DIM),
        speech_lengths=torch.tensor([40, 31]),
        text=text,
        text_lengths=torch.tensor([len(r) for r in ids]),
    )


def test_forward_loss_stats_weight(tiny_llm_dir):
    model = build(tiny_llm_dir, prompt_ids=[5, 6])
    loss, stats, weight = model(**batch(tiny_llm_dir))
    assert torch.isfinite(loss) and loss.item() > 0
    assert set(stats) == {"loss", "loss_llm", "loss_ctc", "acc"}
    assert stats["loss_ctc"] is None
    assert 0.0 <= stats["acc"].item() <= 1.0
    assert weight.item() == 2
    torch.testing.assert_close(stats["loss"], stats["loss_llm"])


def test_eos_is_appended_and_padding_replaced(tiny_llm_dir):
    model = build(tiny_llm_dir)
    ids, lengths = model.append_eos(torch.tensor([[7, 8, 9], [4, -1, -1]]), torch.tensor([3, 1]))
    assert ids.tolist() == [[7, 8, 9, 0], [4, 0, 0, 0]]  # EOS = pad = 0 in the tiny tokenizer
    assert lengths.tolist() == [4, 2]


def test_labels_are_transcript_and_eos(tiny_llm_dir):
    model = build(tiny_llm_dir, prompt_ids=[5, 6, 7])
    b = batch(tiny_llm_dir)
    audio, audio_lengths = model.encode(b["speech"], b["speech_lengths"])
    assert audio_lengths.tolist() == [5, 4]  # conv2d: 40 -> 9 -> stack 2 -> 5; 31 -> 7 -> 4
    spliced = model.splice_batch(audio, audio_lengths, b["text"], b["text_lengths"])
    for row in range(2):
        n = int(b["text_lengths"][row])
        start = 3 + int(audio_lengths[row])
        assert spliced.labels[row, start : start + n].tolist() == b["text"][row, :n].tolist()
        assert spliced.labels[row, start + n].item() == model.eos_id
        assert (spliced.labels[row, :start] == -100).all()
        assert (spliced.labels[row, start + n + 1 :] == -100).all()


def test_loss_decreases_with_adam(tiny_llm_dir):
    model = build(tiny_llm_dir, tuning="lora")
    model.train()
    b = batch(tiny_llm_dir)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(20):
        loss, _, _ = model(**b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.85 * losses[0]  # measured: 5.79 -> 4.43
    assert all(later < earlier for earlier, later in zip(losses[::5], losses[5::5]))


def test_text_masking_changes_inputs_not_targets(tiny_llm_dir):
    model = build(tiny_llm_dir, text_mask_prob=0.5, mask_token_id=3)
    b = batch(tiny_llm_dir)
    audio, audio_lengths = model.encode(b["speech"], b["speech_lengths"])
    model.eval()
    clean = model.splice_batch(audio, audio_lengths, b["text"], b["text_lengths"])
    model.train()
    torch.manual_seed(3)
    masked = model.splice_batch(audio, audio_lengths, b["text"], b["text_lengths"])

    assert torch.equal(masked.labels, clean.labels)
    changed = (masked.inputs_embeds != clean.inputs_embeds).any(dim=-1)  # (Batch, Length)
    assert changed.any()
    mask_embed = model.embed_tokens(torch.tensor(3))
    for row in range(2):
        start, n = int(clean.prefix_lengths[row]), int(b["text_lengths"][row])
        assert not changed[row, :start].any()  # prompt and audio untouched
        assert not changed[row, start + n :].any()  # EOS input and padding untouched
        for pos in torch.nonzero(changed[row]).flatten().tolist():
            torch.testing.assert_close(masked.inputs_embeds[row, pos], mask_embed)


def test_ctc_auxiliary_loss(tiny_llm_dir):
    model = build(tiny_llm_dir, ctc_weight=0.3)
    loss, stats, _ = model(**batch(tiny_llm_dir))
    assert torch.isfinite(stats["loss_ctc"]) and stats["loss_ctc"].item() > 0
    torch.testing.assert_close(loss.detach(), 0.3 * stats["loss_ctc"] + 0.7 * stats["loss_llm"])
    loss.backward()
    assert model.ctc.ctc_lo.weight.grad.abs().sum() > 0
    assert model.encoder.encoders[0].feed_forward.w_1.weight.grad.abs().sum() > 0


def test_freeze_encoder(tiny_llm_dir):
    model = build(tiny_llm_dir, tuning="lora", freeze_encoder=True)
    model.train()
    assert not model.encoder.training and model.projector.training
    loss, _, _ = model(**batch(tiny_llm_dir))
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.projector.linear.weight.grad.abs().sum() > 0


def test_build_prefix_matches_training_layout(tiny_llm_dir):
    """Decoding's prefix is the training input up to the transcript; the LLM sees the same first-token logits."""
    model = build(tiny_llm_dir, prompt_ids=[5, 6]).eval()
    b = batch(tiny_llm_dir)
    speech = b["speech"].clone()
    with torch.no_grad():
        prefix, prefix_lengths = model.build_prefix(b["speech"], b["speech_lengths"])
        assert torch.equal(b["speech"], speech)  # ESPnet's in-place normalisation must not reach the caller
        audio, audio_lengths = model.encode(b["speech"], b["speech_lengths"])
        spliced = model.splice_batch(audio, audio_lengths, b["text"], b["text_lengths"])
        full = model.llm(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask).logits
        assert prefix_lengths.tolist() == spliced.prefix_lengths.tolist() == [7, 6]
        for row in range(2):
            n = int(prefix_lengths[row])
            torch.testing.assert_close(prefix[row, :n], spliced.inputs_embeds[row, :n])
            alone = model.llm(inputs_embeds=prefix[row : row + 1, :n]).logits
            torch.testing.assert_close(alone[0, -1], full[row, n - 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tuning", ["frozen", "lora", "full"])
def test_checkpoint_round_trip_without_frozen_llm(tiny_llm_dir, tuning):
    model = build(tiny_llm_dir, tuning=tuning, ctc_weight=0.3)
    model.train()
    b = batch(tiny_llm_dir)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss, _, _ = model(**b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = model.state_dict()
    llm_keys = [k for k in state if k.startswith("llm.")]
    if tuning == "frozen":
        assert llm_keys == []
    elif tuning == "lora":
        assert llm_keys and all("lora_" in k for k in llm_keys)
    else:
        assert "llm.model.embed_tokens.weight" in llm_keys
    assert any(k.startswith("encoder.") for k in state) and any(k.startswith("ctc.") for k in state)

    fresh = build(tiny_llm_dir, tuning=tuning, ctc_weight=0.3, seed=123)
    fresh.load_state_dict(state, strict=True)
    model.eval()
    fresh.eval()
    with torch.no_grad():
        expected, expected_stats, _ = model(**b)
        got, got_stats, _ = fresh(**b)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_stats["loss_ctc"], expected_stats["loss_ctc"])


def test_checkpoint_of_another_llm_is_refused(tiny_llm_dir, make_tiny_llm):
    from espnet_llm.asr.espnet_model import fingerprint_hex
    from espnet_llm.asr.llm import llm_fingerprint

    ours = llm_fingerprint(tiny_llm_dir)
    model = build(tiny_llm_dir, tuning="lora", llm_fingerprint=ours)
    state = model.state_dict()
    assert fingerprint_hex(state["llm_fingerprint"]) == ours
    # ESPnet's model averaging (sum of the n best, then / n, in float) keeps it exact
    averaged = {k: (v + v + v) / 3 if v.is_floating_point() else v for k, v in state.items()}
    build(tiny_llm_dir, tuning="lora", seed=1, llm_fingerprint=ours).load_state_dict(averaged)
    other = llm_fingerprint(make_tiny_llm("llama", seed=1))  # the same architecture, other weights
    with pytest.raises(RuntimeError, match="trained with another LLM"):
        build(tiny_llm_dir, tuning="lora", llm_fingerprint=other).load_state_dict(state)
    # a checkpoint that records none (made before fingerprints) loads, and keeps the model's
    legacy = {k: v for k, v in state.items() if k != "llm_fingerprint"}
    fresh = build(tiny_llm_dir, tuning="lora", llm_fingerprint=other)
    fresh.load_state_dict(legacy)
    assert fingerprint_hex(fresh.llm_fingerprint) == other
