"""EmotionDataset, LengthBucketBatchSampler and collate."""
import logging
import os

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from mser.data.dataset import (EmotionDataset, LengthBucketBatchSampler, collate,
                               dataset_from_config)
from mser.io.datadir import DataDirError, write_data_dir
from mser.io.storage import FeatsReader, JobArkWriter, load_feat_info
from mser.nets import build_model, resolve_model_conf
from mser.train.trainer import check_cache_fits, make_loader, write_dropped
from mser.utils.frames import input_pooling

CLASSES = ["neu", "hap", "ang", "sad"]


def make_data(tmp_path, labels, feats_for, dim=3):
    """A data dir with ``labels`` (utt -> label) and a dump dir holding features of ``feats_for``."""
    data = tmp_path / "data"
    write_data_dir(data, {"utt2spk": {u: u.split("_")[0] for u in labels}, "utt2emo": labels})
    (data / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    dump = tmp_path / "dump"
    dump.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{dump}/feats.ark,{dump}/feats.scp") as writer:
        for i, utt in enumerate(sorted(feats_for)):
            writer(utt, np.full((i + 2, dim), i, dtype=np.float32))
    (dump / "feat_conf.yaml").write_text(yaml.safe_dump({"modality": "audio", "dim": dim,
                                                         "num_layers": 1}))
    return str(data), str(dump / "feats.scp")


def test_missing_features_are_dropped_with_a_logged_count(tmp_path, caplog):
    labels = {"s1_a": "neu", "s1_b": "ang", "s1_c": "sad"}
    data, scp = make_data(tmp_path, labels, ["s1_a", "s1_c"])
    with caplog.at_level(logging.WARNING), pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatsReader, "__getitem__", lambda *_: pytest.fail("a matrix was read"))
        dataset = EmotionDataset(data, {"audio": scp})
    assert dataset.utts == ["s1_a", "s1_c"] and dataset.labels == [0, 3]
    assert "1 of 3 utterance(s) have no audio features" in caplog.text and "s1_b" in caplog.text
    assert dataset.lengths == [2, 3]  # from the matrix headers: no utt2num_frames here
    assert dataset[1]["audio"].shape == (3, 3) and load_feat_info(scp)["dim"] == 3


def test_dropped_utterances_are_named_with_their_cause_and_listed_by_training(tmp_path, caplog):
    labels = {f"s1_{i}": "neu" for i in range(8)}
    data, scp = make_data(tmp_path, labels, ["s1_0", "s1_7"])
    (tmp_path / "dump" / "skipped").write_text("s1_1 too short (0.01 s)\ns1_2 unreadable wav\n")
    with caplog.at_level(logging.WARNING):
        dataset = EmotionDataset(data, {"audio": scp})
    warning = caplog.text
    assert "6 of 8 utterance(s) have no audio features" in warning and "s1_1, " not in warning
    assert "s1_1 (no audio features: skipped by the dump (too short (0.01 s)))" in warning
    assert "s1_3 (no audio features: never extracted)" in warning
    assert "s1_5" in warning and "s1_6" not in warning and warning.count(" ...") == 1
    assert "re-run the feature dump stage" in warning
    assert sorted(dataset.dropped) == [f"s1_{i}" for i in range(1, 7)]
    exp = tmp_path / "exp"
    exp.mkdir()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        write_dropped(str(exp), {"train": dataset, "dev": EmotionDataset(data, {"audio": scp})})
    lines = (exp / "dropped_utts").read_text().splitlines()
    assert len(lines) == 12 and lines[0].startswith("train s1_1 no audio features: skipped")
    assert "6 train, 6 dev" in caplog.text and str(exp / "dropped_utts") in caplog.text
    dataset.dropped.clear()  # features fixed: a re-run removes the stale list
    write_dropped(str(exp), {"train": dataset})
    assert not (exp / "dropped_utts").exists()


def test_unknown_label_names_the_utterance_and_classes_txt(tmp_path):
    data, scp = make_data(tmp_path, {"s1_a": "neu", "s1_b": "fru"}, ["s1_a", "s1_b"])
    with pytest.raises(DataDirError, match=r"s1_b has label 'fru'.*classes.txt"):
        EmotionDataset(data, {"audio": scp})


def test_config_dataset_and_collate(tmp_path):
    data, scp = make_data(tmp_path, {"s1_a": "neu", "s1_b": "hap", "s1_c": "sad"},
                          ["s1_a", "s1_b", "s1_c"])
    config = {"model_conf": resolve_model_conf({"modalities": ["audio"]}), "audio_feats": scp,
              "classes": CLASSES}
    dataset = dataset_from_config(config, data, cache=True)
    batch = collate([dataset[0], dataset[2]])
    assert batch["audio"].shape == (2, 4, 3) and batch["audio_lens"].tolist() == [2, 4]
    assert batch["audio"][0, 2:].abs().sum() == 0 and batch["labels"].tolist() == [0, 3]
    assert "text" not in batch and "text_lens" not in batch and batch["utts"] == ["s1_a", "s1_c"]


def sizes(lengths, batches):
    return [len(b) * max(lengths[i] for i in b) for b in batches]


@pytest.mark.parametrize("max_frames", [0, 300])
def test_distributed_batches_are_disjoint_equal_and_deterministic(max_frames):
    lengths = list(np.random.default_rng(0).integers(5, 100, size=103))
    samplers = [LengthBucketBatchSampler(lengths, batch_size=8, max_frames=max_frames, seed=4,
                                         num_replicas=3, rank=r) for r in range(3)]
    for epoch in (0, 1):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        shares = [list(s) for s in samplers]
        assert len({len(share) for share in shares}) == 1 and len(samplers[0]) == len(shares[0])
        flat = [i for share in shares for batch in share for i in batch]
        assert set(flat) == set(range(103))  # every utterance
        global_batches = samplers[0].global_batches()
        assert len(shares[0]) == len(global_batches)  # as many optimiser steps as one process
        for step, batch in enumerate(global_batches):  # the ranks split each step's batch
            parts = [share[step] for share in shares]
            assert all(parts) and max(map(len, parts)) - min(map(len, parts)) <= 1
            assert set().union(*parts) == set(batch)
            assert sum(map(len, parts)) == max(len(batch), 3)  # disjoint unless padded to 3
        if max_frames:
            assert all(s <= max_frames for b, s in zip(global_batches, sizes(lengths, global_batches))
                       if len(b) > 1)
        assert shares == [list(s) for s in samplers]  # same epoch, same batches
    samplers[0].set_epoch(0)
    first = list(samplers[0])
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != first


def test_bucketing_reduces_padding():
    lengths = list(np.random.default_rng(1).integers(50, 500, size=400))

    def efficiency(bucketing):
        batches = LengthBucketBatchSampler(lengths, batch_size=16, bucketing=bucketing,
                                           seed=0).global_batches()
        return sum(lengths) / sum(sizes(lengths, batches))
    assert efficiency(True) > 0.95 > 0.7 > efficiency(False)


def write_float16_dump(dump, feats):
    dump.mkdir()
    writer = JobArkWriter(str(dump), 1, storage="float16")
    for utt in sorted(feats):
        writer.write(utt, feats[utt])
    writer.commit({})
    os.rename(dump / "feats.1.scp", dump / "feats.scp")
    (dump / "feat_conf.yaml").write_text(yaml.safe_dump({"modality": "audio", "dim": 3,
                                                         "num_layers": 1, "storage": "float16"}))
    return str(dump / "feats.scp")


def test_float16_features_stay_float16_until_collate(tmp_path):
    """A cached float16 item takes half the memory; collate casts exactly to float32."""
    labels = {"s1_a": "neu", "s1_b": "hap"}
    data, _ = make_data(tmp_path, labels, [])
    rng = np.random.default_rng(0)
    feats = {"s1_a": rng.normal(size=(4, 3)), "s1_b": rng.normal(size=(7, 3))}
    scp = write_float16_dump(tmp_path / "dump16", feats)
    dataset = EmotionDataset(data, {"audio": scp}, cache=True)
    assert dataset.feature_bytes() == (4 + 7) * 3 * 2
    item = dataset[1]
    assert item["audio"].dtype == np.float16 and dataset[1] is item  # cached as read
    batch = collate([dataset[0], item])
    assert batch["audio"].dtype == torch.float32
    assert torch.equal(batch["audio"][1], torch.from_numpy(feats["s1_b"].astype(np.float16)
                                                           .astype(np.float32)))


def test_cache_over_the_budget_is_refused_with_the_estimate(tmp_path, caplog):
    labels = {f"s1_{i}": "neu" for i in range(3)}
    data, scp = make_data(tmp_path, labels, list(labels), dim=5)
    dataset = EmotionDataset(data, {"audio": scp}, cache=True)
    need = (2 + 3 + 4) * 5 * 4  # float32 rows x cols
    assert dataset.feature_bytes() == need
    with caplog.at_level(logging.INFO):
        check_cache_fits([dataset], 1, need, "a test budget")
    assert "feature cache: up to 0.00 GB" in caplog.text
    with pytest.raises(ValueError, match=r"x 2 DataLoader workers.*over the budget of .* \(a "
                                         r"test budget\); set --cache-feats false"):
        check_cache_fits([dataset], 2, need * 2 - 1, "a test budget")


def test_worker_caches_survive_epochs(tmp_path):
    """With workers, the loader keeps them (and their caches) from one epoch to the next: the
    second epoch reads nothing, even with the features gone from disk."""
    labels = {f"s1_{i}": "neu" for i in range(4)}
    data, scp = make_data(tmp_path, labels, list(labels))
    dataset = EmotionDataset(data, {"audio": scp}, cache=True)
    sampler = LengthBucketBatchSampler(dataset.lengths, batch_size=4, shuffle=False)
    loader = make_loader(dataset, sampler, 1, torch.device("cpu"))
    first = next(iter(loader))
    os.remove(tmp_path / "dump" / "feats.ark")
    second = next(iter(loader))
    assert torch.equal(first["audio"], second["audio"])


def pooling_model(probe_head=True):
    """A pooling, concat-layer model over 2 layers x 3 columns (SpecAugment, probe head)."""
    torch.manual_seed(0)
    conf = resolve_model_conf({
        "modalities": ["audio"], "d_model": 8, "encoder_heads": 2, "decoder_heads": 2,
        "encoder_ff_dim": 16, "decoder_ff_dim": 16, "classifier_hidden": 8,
        "encoder_layers": 1, "decoder_layers": 1, "layer_weighting": "concat",
        "projection": "pool", "audio_subsampling": 4, "probe_head": probe_head,
        "time_masks": 1, "time_mask_width": 4, "feature_masks": 1, "feature_mask_width": 2})
    model = build_model(conf, {"audio": {"dim": 3, "num_layers": 2}}, len(CLASSES))
    model.normalizer("audio").set_statistics(torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, -0.5]),
                                             torch.tensor([2.0, 0.5, 1.5, 1.0, 3.0, 0.7]))
    return model


def test_pooled_and_normalised_on_reading_equals_the_model_doing_it(tmp_path):
    """The dataset averaging and normalising each utterance once gives the batches the model
    would compute itself: the same logits in eval mode, the same loss and gradients in
    training with the same random draws (SpecAugment, dropout, stream masks)."""
    labels = {f"s1_{i}": CLASSES[i % 4] for i in range(5)}
    data, _ = make_data(tmp_path, labels, [])
    rng = np.random.default_rng(0)
    feats = {u: rng.normal(size=(n, 6)) for u, n in zip(labels, (13, 8, 21, 4, 17))}
    dump = tmp_path / "dump16"
    scp = write_float16_dump(dump, feats)
    (dump / "feat_conf.yaml").write_text(yaml.safe_dump({"modality": "audio", "dim": 3,
                                                         "num_layers": 2, "storage": "float16"}))
    model = pooling_model()
    raw = EmotionDataset(data, {"audio": scp})
    prepared = EmotionDataset(data, {"audio": scp}, cache=True,
                              pool=input_pooling(model.conf))
    prepared[1]  # cached before the statistics are known: normalised by normalize_with
    prepared.normalize_with(model.input_statistics())
    indices = [0, 1, 2, 3, 4]
    raw_batch = collate([raw[i] for i in indices])
    batch = collate([prepared[i] for i in indices])
    assert batch["audio_pooled"] == 4 and batch["audio_normalized"]
    assert batch["audio_lens"].tolist() == [4, 2, 6, 1, 5]  # ceil(frames / 4)
    model.eval()
    assert torch.equal(model(raw_batch)["logits"], model(batch)["logits"])
    model.train()
    grads = []
    for b in (raw_batch, batch):
        torch.manual_seed(3)
        model.zero_grad()
        loss = model(b)["loss"]
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()
                                      if p.grad is not None]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))


def test_normalisation_on_reading_needs_pooled_streams_and_is_set_once(tmp_path):
    data, scp = make_data(tmp_path, {"s1_a": "neu"}, ["s1_a"])
    stats = {"audio": (torch.zeros(3), torch.ones(3))}
    with pytest.raises(ValueError, match="needs pooled streams"):
        EmotionDataset(data, {"audio": scp}).normalize_with(stats)
    dataset = EmotionDataset(data, {"audio": scp}, pool={"audio": 2})
    dataset.normalize_with(stats)
    with pytest.raises(ValueError, match="set once"):
        dataset.normalize_with(stats)


def test_a_model_given_frames_pooled_otherwise_refuses_them():
    model = pooling_model().eval()
    batch = {"audio": torch.zeros(1, 3, 6), "audio_lens": torch.tensor([3]), "audio_pooled": 2}
    with pytest.raises(ValueError, match="averaged 2 frames at a time, but this front end "
                                         "averages 4"):
        model(batch)
