"""The emotion model and its ablations on tiny tensors: shapes, padding, masking, gradients."""
import pytest
import torch

from mser.nets import ModelConfigError, build_model

AUDIO = {"dim": 6, "num_layers": 3}
TEXT = {"dim": 5, "num_layers": 1}
TINY = {"d_model": 16, "encoder_heads": 2, "decoder_heads": 2, "encoder_ff_dim": 32,
        "decoder_ff_dim": 32, "classifier_hidden": 16, "encoder_layers": 1, "decoder_layers": 2}
VARIANTS = {
    "full": {},
    "no_encoders": {"encoder_layers": 0},
    "concat_pool": {"fusion": "concat_pool"},
    "cross_attention": {"fusion": "cross_attention"},
    "audio_only": {"streams": {"audio": {}}},
    "text_only": {"streams": {"text": {}}},
    "one_query": {"num_queries": 1},
    "sixteen_queries_flatten": {"num_queries": 16, "pool": "flatten"},
    "learnable_positions_sub2": {"positional": "learnable", "layer_weighting": False,
                                 "streams": {"audio": {"subsampling": 2},
                                             "text": {"subsampling": 2}}},
    "no_positions_linear_head": {"positional": "none", "classifier_hidden": 0,
                                 "streams": {"audio": {"subsampling": 1}, "text": {}}},
    "stats_pool": {"fusion": "stats_pool"},
    "attentive_stats_pool": {"fusion": "stats_pool", "stats_attention": 8},
    "query_and_stream_stats": {"fuse_stats": True, "stats_attention": 8},
    # The linear probe: normalised, layer-weighted features, statistics pooling, linear layer.
    "probe": {"projection": "none", "encoder_layers": 0, "fusion": "stats_pool",
              "classifier_hidden": 0},
    "concat_layers_pooled": {"layer_weighting": "concat", "projection": "pool",
                             "streams": {"audio": {"subsampling": 4}, "text": {"subsampling": 2}}},
    "probe_head": {"probe_head": True, "layer_weighting": "concat", "projection": "pool"},
    "probe_concat_layers": {"projection": "none", "encoder_layers": 0, "fusion": "stats_pool",
                            "classifier_hidden": 0, "layer_weighting": "concat"},
    "spec_augment": {"time_masks": 2, "time_mask_width": 4, "feature_masks": 1,
                     "feature_mask_width": 2},
}
TWO_STREAM = [name for name, v in VARIANTS.items()
              if len(v.get("streams", {"audio": {}, "text": {}})) == 2]


def make(variant, num_classes=4, masks=None, **overrides):
    """The variant's model; ``masks``: stream -> its training mask probability."""
    torch.manual_seed(0)
    streams = {m: dict(s) for m, s in (VARIANTS[variant].get("streams")
                                       or {"audio": {}, "text": {}}).items()}
    for m, p in (masks or {}).items():
        streams[m]["mask_prob"] = p
    conf = {**TINY, **VARIANTS[variant], **overrides, "streams": streams}
    return build_model(conf, {"audio": AUDIO, "text": TEXT}, num_classes)


def batch(lengths_audio=(40, 17, 9), lengths_text=(7, 3, 5), seed=1):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(len(lengths_audio), max(lengths_audio), 18, generator=generator)
    text = torch.randn(len(lengths_text), max(lengths_text), 5, generator=generator)
    return audio, torch.tensor(lengths_audio), text, torch.tensor(lengths_text)


def as_batch(audio=None, audio_lens=None, text=None, text_lens=None):
    """collate's dict of the given streams."""
    streams = {"audio": (audio, audio_lens), "text": (text, text_lens)}
    return {k: v for m, (x, lens) in streams.items() if x is not None
            for k, v in ((m, x), (f"{m}_lens", lens))}


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_every_variant(variant):
    model = make(variant)
    out = model(as_batch(*batch()))
    assert out["logits"].shape == (3, 4)
    out["logits"].logsumexp(-1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_does_not_change_outputs(variant):
    model = make(variant).eval()
    audio, audio_lens, text, text_lens = batch()
    with torch.no_grad():
        batched = model(as_batch(audio, audio_lens, text, text_lens))["logits"]
        for i in range(3):
            alone = model(as_batch(audio[i:i + 1, :audio_lens[i]], audio_lens[i:i + 1],
                                   text[i:i + 1, :text_lens[i]], text_lens[i:i + 1]))["logits"]
            torch.testing.assert_close(alone, batched[i:i + 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", TWO_STREAM)
def test_condition_outputs_equal_one_forward_per_condition(variant):
    """Dev evaluation and decoding encode each stream once for every condition: the logits and
    an auxiliary task's outputs are those of a forward per condition (with its keep masks)."""
    model = make(variant, tasks={"emotion": {}, "arousal": {"type": "regression"}}).eval()
    data = as_batch(*batch())
    conditions = {"both": ("audio", "text"), "audio_only": ("audio",), "text_only": ("text",)}
    no_text = {"text": torch.tensor([True, False, True])}

    def keep_for(_, streams):
        return no_text if streams == ("audio", "text") else None

    shared = model.condition_outputs(data, conditions, keep_for)
    for condition, streams in conditions.items():
        with torch.no_grad():
            alone = model(data, streams=streams, keep=keep_for(data, streams))
        assert torch.equal(shared[condition]["emotion"], alone["logits"]), condition
        assert shared[condition]["arousal"].shape == (3, 1)
        assert torch.equal(shared[condition]["arousal"], alone["tasks"]["arousal"]), condition


@pytest.mark.parametrize("variant", TWO_STREAM)
@pytest.mark.parametrize("masked", ["audio", "text"])
def test_masked_stream_cannot_change_outputs(variant, masked):
    """Training-time masking (probability 1 here, dropout 0, no SpecAugment) removes the stream
    entirely."""
    model = make(variant, dropout=0.0, input_dropout=0.0, time_masks=0, feature_masks=0,
                 masks={m: 1.0 if m == masked else 0.0 for m in ("audio", "text")}).train()
    audio, audio_lens, text, text_lens = batch()
    reference = model(as_batch(audio, audio_lens, text, text_lens))["logits"]
    if masked == "audio":
        audio = torch.randn_like(audio) * 10
    else:
        text = torch.randn_like(text) * 10
    torch.testing.assert_close(model(as_batch(audio, audio_lens, text, text_lens))["logits"],
                               reference)
    # ... and equals evaluating without that stream.
    kept = "text" if masked == "audio" else "audio"
    without = model(as_batch(audio, audio_lens, text, text_lens), streams=(kept,))["logits"]
    torch.testing.assert_close(without, reference, atol=1e-5, rtol=1e-4)


def test_training_masking_never_removes_both_streams():
    model = make("full", masks={"audio": 0.5, "text": 0.5})
    torch.manual_seed(0)
    keep = model.training_keep_masks(20000, torch.device("cpu"))
    assert (keep["audio"] | keep["text"]).all()
    assert abs((~keep["audio"]).float().mean() - 0.5) < 0.02
    with pytest.raises(ModelConfigError, match="summing to at most 1"):
        make("full", masks={"audio": 0.6, "text": 0.5})


VIDEO = {"dim": 3, "num_layers": 2}
THREE_STREAMS = {"audio": {}, "text": {"mask_prob": 0.3}, "video": {"mask_prob": 0.3}}


def three_stream_batch():
    audio, audio_lens, text, text_lens = batch()
    video = torch.randn(3, 12, 6, generator=torch.Generator().manual_seed(2))
    return {**as_batch(audio, audio_lens, text, text_lens), "video": video,
            "video_lens": torch.tensor([12, 8, 4])}


def test_a_third_stream_is_declared_by_the_config_alone():
    torch.manual_seed(0)
    model = build_model({**TINY, "streams": THREE_STREAMS},
                        {"audio": AUDIO, "text": TEXT, "video": VIDEO}, 4)
    assert model.modalities == ("audio", "text", "video")
    assert model.conf["streams"]["audio"] == {"subsampling": 4, "normalize": True,
                                              "mask_prob": 0.2, "spec_augment": True}
    assert model.conf["streams"]["video"] == {"subsampling": 1, "normalize": True,
                                              "mask_prob": 0.3, "spec_augment": False}
    out = model(three_stream_batch())
    assert out["logits"].shape == (3, 4) and out["video_lens_out"].tolist() == [12, 8, 4]
    out["logits"].sum().backward()
    assert model.frontends["video"].layer_logits.grad is not None
    keep = model.training_keep_masks(30000, torch.device("cpu"))
    dropped = torch.stack([~keep[m] for m in model.modalities])
    assert (dropped.sum(0) <= 1).all()   # at most one stream per sample, never all three
    for m, p in (("audio", 0.2), ("text", 0.3), ("video", 0.3)):
        assert abs(dropped[model.modalities.index(m)].float().mean() - p) < 0.02
    model.eval()
    with torch.no_grad():
        alone = model(three_stream_batch(), streams=("video",))["logits"]
        noisy = {**three_stream_batch(), "audio": torch.randn(3, 40, 18) * 9}
        torch.testing.assert_close(model(noisy, streams=("text", "video"))["logits"],
                                   model(three_stream_batch(), streams=("text", "video"))["logits"])
    assert alone.shape == (3, 4)


def test_declared_streams_resolve_like_the_flat_keys_of_older_configs():
    from mser.nets import resolve_model_conf

    old = resolve_model_conf({"modalities": ["audio", "text"], "audio_subsampling": 2,
                              "mask_text_prob": 0.1, "normalize_text": True})
    new = resolve_model_conf({"streams": {"audio": {"subsampling": 2},
                                          "text": {"mask_prob": 0.1, "normalize": True}}})
    assert old == new and resolve_model_conf(new) == new
    assert "audio_subsampling" not in new and new["modalities"] == ["audio", "text"]
    with pytest.raises(ModelConfigError, match="streams.audio.subsampling .* disagree"):
        resolve_model_conf({"streams": {"audio": {"subsampling": 1}}, "audio_subsampling": 2})
    with pytest.raises(ModelConfigError, match="unknown key"):
        resolve_model_conf({"streams": {"video": {"subsample": 2}}})
    with pytest.raises(ModelConfigError, match="no stream name"):
        resolve_model_conf({"streams": {"both": {}}})
    with pytest.raises(ModelConfigError, match="disagree; give only streams"):
        resolve_model_conf({"streams": {"video": {}}, "modalities": ["audio"]})


def test_a_pooling_front_end_averages_any_number_of_frames():
    """projection: pool averages any positive number of frames (a convolution: 1, 2 or 4):
    the embeddings have ceil(T / 8) steps and the model trains from them."""
    from mser.nets import resolve_model_conf

    with pytest.raises(ModelConfigError, match="projection: conv must be 1, 2 or 4"):
        resolve_model_conf({"streams": {"audio": {"subsampling": 8}}, "projection": "conv"})
    for bad in (0, 2.5):
        with pytest.raises(ModelConfigError, match="not a positive integer"):
            resolve_model_conf({"streams": {"audio": {"subsampling": bad}}, "projection": "pool"})
    torch.manual_seed(0)
    model = build_model({**TINY, **VARIANTS["full"], "projection": "pool",
                         "streams": {"audio": {"subsampling": 8}, "text": {}}},
                        {"audio": AUDIO, "text": TEXT}, 4)
    audio, audio_lens, text, text_lens = batch()
    out = model.train()(as_batch(audio, audio_lens, text, text_lens)
                        | {"labels": torch.tensor([0, 1, 2])})
    assert out["audio_lens_out"].tolist() == [5, 3, 2]  # ceil((40, 17, 9) / 8)
    out["loss"].backward()


def test_eval_time_modality_dropping_accepts_none_inputs():
    model = make("full").eval()
    audio, audio_lens, text, text_lens = batch()
    assert model(as_batch(audio, audio_lens), streams=("audio",))["logits"].shape == (3, 4)
    assert model(as_batch(None, None, text, text_lens), streams=("text",))["logits"].shape == (3, 4)
    with pytest.raises(ValueError, match="none of the requested streams"):
        make("audio_only")(as_batch(None, None, text, text_lens), streams=("text",))
    with pytest.raises(ValueError, match=r"stream\(s\) \['text'\] requested but not in the batch"):
        model(as_batch(audio, audio_lens))


def test_attention_splits_frames_and_words():
    model = make("full", num_queries=3).eval()
    audio, audio_lens, text, text_lens = batch()
    out = model(as_batch(audio, audio_lens, text, text_lens), return_attention=True)
    audio_out = out["audio_lens_out"]
    assert audio_out.tolist() == [10, 5, 3]  # 4x subsampling: ceil(ceil(T / 2) / 2)
    attention = out["attention"]
    assert attention.shape == (3, 3, 10 + 7)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 3))
    # No weight on padded frames or tokens.
    assert attention[1, :, 5:10].abs().max() == 0 and attention[1, :, 10 + 3:].abs().max() == 0


def test_normalisation_statistics_are_buffers_in_the_state_dict():
    model = make("full")
    model.normalizer("audio").set_statistics(torch.full((18,), 2.0), torch.full((18,), 3.0))
    state = model.state_dict()
    assert state["frontends.audio.normalizer.mean"][0] == 2.0
    assert "frontends.audio.layer_logits" in dict(model.named_parameters())
    assert "frontends.text.layer_logits" not in dict(model.named_parameters())  # one layer


def test_bad_conf_and_features_are_clear_errors():
    with pytest.raises(ModelConfigError, match="unknown model key"):
        make("full", num_querys=3)
    with pytest.raises(ModelConfigError, match="no feature info"):
        build_model({}, {"audio": AUDIO}, 4)
    with pytest.raises(ValueError, match="do not match"):
        make("full")(as_batch(torch.zeros(1, 5, 7), torch.tensor([5]), torch.zeros(1, 2, 5),
                              torch.tensor([2])))


def test_eval_encoder_attention_equals_the_module_path():
    """Eval mode's memory-efficient self-attention computes what nn.TransformerEncoderLayer
    does (run in train mode without dropout), at every valid position."""
    from mser.nets.frontend import UnimodalEncoder, padding_mask

    torch.manual_seed(0)
    encoder = UnimodalEncoder(16, num_layers=2, heads=4, ff_dim=32, dropout=0.0)
    with torch.no_grad():
        for parameter in encoder.parameters():  # norms and biases away from their init
            parameter.add_(0.3 * torch.randn_like(parameter))
    x, lengths = torch.randn(3, 23, 16), torch.tensor([23, 11, 1])
    pad = padding_mask(lengths, 23)
    reference = encoder.train()(x, pad)
    with torch.inference_mode():
        efficient = encoder.eval()(x, pad)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(efficient[i, :n], reference[i, :n], atol=1e-5, rtol=1e-5)


def test_probe_is_a_linear_function_of_the_pooled_statistics():
    """The probe's logits are one linear layer over [mean, std] of the normalised, layer-weighted
    frames of each stream: nothing else is learnt between the features and the classifier."""
    model = make("probe", dropout=0.0, input_dropout=0.0).eval()
    audio, audio_lens, text, text_lens = batch()
    frontend = model.frontends["audio"]
    with torch.no_grad():
        model.normalizer("audio").set_statistics(torch.linspace(-1, 1, 18), torch.full((18,), 2.0))
        frontend.layer_logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
        logits = model(as_batch(audio, audio_lens, text, text_lens))["logits"]
    weights = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    stats = []
    for i in range(3):
        x = (audio[i, :audio_lens[i]] - torch.linspace(-1, 1, 18)) / 2.0
        x = (x.view(-1, 3, 6) * weights[:, None]).sum(1)
        t = text[i, :text_lens[i]]
        stats.append(torch.cat([x.mean(0), (x.var(0, unbiased=False) + 1e-5).sqrt(),
                                t.mean(0), (t.var(0, unbiased=False) + 1e-5).sqrt()]))
    linear = model.classifier[-1]
    torch.testing.assert_close(logits, torch.stack(stats) @ linear.weight.T + linear.bias,
                               atol=1e-5, rtol=1e-4)
    assert model.fusion.out_dim == 2 * (6 + 5)
    with pytest.raises(ModelConfigError, match="projection: none"):
        make("probe", encoder_layers=1)


def test_attentive_statistics_ignore_padding_and_follow_the_scores():
    from mser.nets.fusion import StatisticsPooling
    from mser.nets.frontend import padding_mask

    torch.manual_seed(0)
    pool = StatisticsPooling(4, attention_dim=3)
    x, lengths = torch.randn(2, 7, 4), torch.tensor([7, 3])
    pad = padding_mask(lengths, 7)
    out = pool(x, pad)
    noisy = x.clone()
    noisy[1, 3:] = 1e3  # padding of the second row
    torch.testing.assert_close(pool(noisy, pad), out)
    torch.testing.assert_close(pool(x[1:, :3], pad[1:, :3]), out[1:])
    # With a constant score the attentive statistics are the plain mean and std.
    with torch.no_grad():
        pool.attention[-1].weight.zero_()
    plain = StatisticsPooling(4)(x, pad)
    torch.testing.assert_close(pool(x, pad), plain)


def test_spec_augment_masks_spans_inside_each_utterance():
    from mser.nets.frontend import SpecAugment

    augment = SpecAugment(time_masks=2, time_mask_width=6, feature_masks=1, feature_mask_width=3)
    torch.manual_seed(0)
    lengths = torch.tensor([40, 10, 5])
    x = torch.ones(3, 40, 16)
    masked_frames, masked_columns = torch.zeros(3), torch.zeros(3)
    for _ in range(200):
        out = augment(x, lengths)
        frames = (out == 0).all(-1)              # every column zero: a time mask
        columns = torch.stack([(row[~f] == 0).all(0) for row, f in zip(out, frames)])
        masked_frames += frames.sum(1)
        masked_columns += columns.sum(1)
        assert (frames.sum(1) <= 2 * torch.clamp(lengths // 5, max=6)).all()
        assert (columns.sum(1) <= 3).all()
        for row, f, c in zip(out, frames, columns):  # nothing else is touched
            assert (row[~f][:, ~c] == 1).all()
    assert masked_frames[0] > masked_frames[1] > 0 and masked_frames[2] > 0
    assert masked_columns.min() > 0


def test_spec_augmented_frames_cannot_change_the_output():
    """A masked frame's values are replaced, so the model's output does not depend on them."""
    model = make("spec_augment", dropout=0.0, input_dropout=0.0, time_masks=1,
                 time_mask_width=40, feature_masks=0, feature_mask_width=0).train()
    audio, audio_lens, text, text_lens = batch(lengths_audio=(40, 40, 40))
    frontend = model.frontends["audio"]
    torch.manual_seed(5)
    reference = frontend(audio, audio_lens, True)[0]
    torch.manual_seed(5)
    masked = frontend.spec_augment.spans(1, torch.full((3,), 8), audio_lens, 40)
    assert masked.any()
    noisy = audio.clone()
    noisy[masked] = 1e3
    torch.manual_seed(5)
    torch.testing.assert_close(frontend(noisy, audio_lens, True)[0], reference)
    model.eval()  # no masking at test
    with torch.no_grad():
        first = model(as_batch(audio, audio_lens, text, text_lens))["logits"]
        torch.testing.assert_close(model(as_batch(audio, audio_lens, text, text_lens))["logits"],
                                   first)


def test_average_pool_averages_valid_frames_only():
    from mser.nets.frontend import average_pool

    x = torch.arange(2 * 7 * 1, dtype=torch.float32).view(2, 7, 1)
    pooled, lengths = average_pool(x, torch.tensor([7, 5]), 3)
    assert lengths.tolist() == [3, 2]
    assert pooled[0, :, 0].tolist() == [1.0, 4.0, 6.0]      # (0+1+2)/3, (3+4+5)/3, 6/1
    assert pooled[1, :2, 0].tolist() == [8.0, 10.5]          # (7+8+9)/3, (10+11)/2


def test_old_boolean_layer_weighting_still_builds():
    assert make("full", layer_weighting=True).conf["layer_weighting"] == "softmax"
    assert make("full", layer_weighting=False).conf["layer_weighting"] == "mean"


def test_probe_head_is_a_second_classifier_with_its_own_loss():
    model = make("probe_head", dropout=0.0, input_dropout=0.0).eval()
    audio, audio_lens, text, text_lens = batch()
    out = model(as_batch(audio, audio_lens, text, text_lens))
    main, probe = out["head_logits"]["classifier"], out["head_logits"]["probe"]
    torch.testing.assert_close(out["logits"], (main + probe) / 2)
    labels = torch.tensor([0, 1, 2])
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0])
    criterion = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1)
    model.set_loss(weight, label_smoothing=0.1)
    loss, heads = model.loss(out, labels)
    torch.testing.assert_close(loss, (criterion(main, labels) + criterion(probe, labels)) / 2)
    assert set(heads) == {"classifier", "probe"}
    # In training the model's forward returns the same loss, and each head's in its stats.
    torch.manual_seed(0)
    trained = model.train()(as_batch(audio, audio_lens, text, text_lens) | {"labels": labels})
    assert set(trained["stats"]) == {"loss_classifier", "loss_probe"}
    torch.testing.assert_close(trained["loss"], sum(trained["stats"].values()) / 2)
    # The probe head sees each stream's combined input frames: 3 audio layers x 6 side by side
    # (concat) and the text's 5 columns, mean and std of each.
    assert model.probe_classifier[-1].in_features == 2 * (18 + 5)
    # Logit adjustment: each head's cross-entropy of its logits plus the log prior; the
    # outputs (predictions) are the same logits.
    log_prior = torch.log(torch.tensor([0.5, 0.25, 0.125, 0.125]))
    model.eval().set_loss(None, label_smoothing=0.1, logit_offset=log_prior)
    adjusted, _ = model.loss(out, labels)
    plain = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    torch.testing.assert_close(adjusted, (plain(main + log_prior, labels)
                                          + plain(probe + log_prior, labels)) / 2)
    torch.testing.assert_close(model(as_batch(audio, audio_lens, text, text_lens))["logits"],
                               out["logits"])


def test_spec_augment_in_one_multiplication_equals_filling_each_span():
    """The masks applied as products (one pass each, the second in place) give the frames
    that filling the time spans and then the column spans with 0 gives, from the same draws."""
    from mser.nets.frontend import SpecAugment

    augment = SpecAugment(time_masks=2, time_mask_width=6, feature_masks=2, feature_mask_width=5)
    lengths = torch.tensor([30, 12, 4])
    masked_some = 0
    for seed in range(10):
        x = torch.randn(3, 30, 16, requires_grad=True)
        torch.manual_seed(seed)
        out = augment(x, lengths)
        torch.manual_seed(seed)
        frames = augment.spans(2, torch.clamp(lengths // 5, max=6), lengths, 30)
        columns = augment.spans(2, torch.full_like(lengths, 5), torch.full_like(lengths, 16), 16)
        expected = x.masked_fill(frames[..., None], 0.0).masked_fill(columns[:, None, :], 0.0)
        masked_some += bool(frames.any() and columns.any())
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
        out.sum().backward()  # gradients flow to the kept values only
        torch.testing.assert_close(x.grad, (expected != 0).float())
    assert masked_some >= 5


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_masked_mean_std_equals_the_two_pass_statistics_of_the_valid_frames(offset):
    """One pass of weighted sums (E[x^2] - E[x]^2) gives each utterance's mean and population
    std over its valid frames, padding ignored, also for columns far from zero mean."""
    from mser.nets.fusion import masked_mean_std
    from mser.nets.frontend import padding_mask

    torch.manual_seed(0)
    lengths = torch.tensor([9, 1, 5])
    x = torch.randn(3, 9, 7) * torch.linspace(0.1, 3, 7) + offset
    x[1, 1:] = 1e4  # padding
    x[2, :, 0] = 0.0  # a masked column: std of the 1e-5 floor
    mean, std = masked_mean_std(x, padding_mask(lengths, 9))
    for i, length in enumerate(lengths):
        valid = x[i, :length].double()
        torch.testing.assert_close(mean[i].double(), valid.mean(0), atol=1e-5, rtol=1e-6)
        torch.testing.assert_close(std[i].double(),
                                   (valid.var(0, unbiased=False) + 1e-5).sqrt(),
                                   atol=2e-3 if offset else 1e-5, rtol=1e-4)
    double = x.double().requires_grad_()
    torch.autograd.gradcheck(lambda t: torch.cat(masked_mean_std(t, padding_mask(lengths, 9))),
                             (double[:, :, 1:4],))
