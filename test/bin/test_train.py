"""mser.bin.train end to end on a tiny synthetic fold: single process, 2-process gloo DDP,
resume, dev-only selection, and what the experiment dir holds."""
import os
import re
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from mser.train.schedule import lr_lambda, training_length
from mser.train.trainer import selection_conditions
from mser.bin.train import get_parser, main as train_main
from mser.io.datadir import write_data_dir
from mser.io.storage import open_feats
from mser.train import trainer
from mser.train.options import RESUMABLE
from mser.nets import load_model
from mser.utils.calibration import load_temperatures
from mser.utils.checkpoint import load_checkpoint
from mser.utils.config import parse_args

CLASSES = ("neu", "hap", "ang", "sad")
AUDIO_DIM, AUDIO_LAYERS, TEXT_DIM = 6, 2, 5
# Small and fast: every option the default conf sets, shrunk.
TINY = ["--d-model", "16", "--encoder-layers", "1", "--encoder-heads", "2", "--encoder-ff-dim", "32",
        "--decoder-layers", "1", "--decoder-heads", "2", "--decoder-ff-dim", "32",
        "--classifier-hidden", "16", "--num-queries", "2", "--batch-size", "8", "--lr", "0.01",
        "--warmup-steps", "2", "--min-steps", "0", "--patience", "0", "--dropout", "0.1"]


def write_feats(dump_dir, feats, modality, dim, num_layers):
    os.makedirs(dump_dir, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{dump_dir}/feats.ark,{dump_dir}/feats.scp") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    with open(os.path.join(dump_dir, "utt2num_frames"), "w") as f:
        f.writelines(f"{u} {len(feats[u])}\n" for u in sorted(feats))
    with open(os.path.join(dump_dir, "feat_conf.yaml"), "w") as f:
        yaml.safe_dump({"modality": modality, "dim": dim, "num_layers": num_layers}, f)
    return os.path.join(dump_dir, "feats.scp")


def make_fold(root, utts_per_split=(32, 12, 12), seed=0, audio_frames=(20, 60), text_tokens=(3, 9)):
    """data/fold1/{train,dev,test} and two dump dirs; the class shifts both modalities' means."""
    rng = np.random.default_rng(seed)
    audio, text = {}, {}
    for split, count in zip(("train", "dev", "test"), utts_per_split):
        tables = {name: {} for name in ("wav.scp", "utt2spk", "utt2emo", "utt2sess", "text")}
        for i in range(count):
            spk = f"{split}spk{i % 2}"
            utt = f"{spk}_utt{i:04d}"
            label = i % len(CLASSES)
            tables["wav.scp"][utt] = f"/nonexistent/{utt}.wav"
            tables["utt2spk"][utt], tables["utt2sess"][utt] = spk, "Ses01"
            tables["utt2emo"][utt], tables["text"][utt] = CLASSES[label], "words"
            ta, tt = rng.integers(*audio_frames), rng.integers(*text_tokens)
            audio[utt] = (rng.normal(size=(ta, AUDIO_DIM * AUDIO_LAYERS)) + label).astype(np.float32)
            text[utt] = (rng.normal(size=(tt, TEXT_DIM)) - label).astype(np.float32)
        split_dir = root / "data" / "fold1" / split
        write_data_dir(split_dir, tables)
        (split_dir / "classes.txt").write_text("".join(c + "\n" for c in CLASSES))
    return {"data_dir": str(root / "data" / "fold1"),
            "audio": write_feats(str(root / "dump" / "afeat"), audio, "audio", AUDIO_DIM, AUDIO_LAYERS),
            "text": write_feats(str(root / "dump" / "tfeat"), text, "text", TEXT_DIM, 1)}


def run_train(fold, exp_dir, *extra, check=True):
    command = [sys.executable, "-m", "mser.bin.train", "--data-dir", fold["data_dir"],
               "--audio-feats", fold["audio"], "--text-feats", fold["text"],
               "--exp-dir", str(exp_dir), "--seed", "3", *TINY, *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check and result.returncode:
        pytest.fail(f"training failed ({' '.join(command)}):\n{result.stderr[-4000:]}")
    return result


def final_params(exp_dir, epoch):
    state = torch.load(os.path.join(exp_dir, "checkpoints", f"epoch{epoch}.pt"),
                       weights_only=False)
    return state["model"]


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    return make_fold(tmp_path_factory.mktemp("fold"))


def test_single_process_run_writes_a_self_describing_exp_dir(fold, tmp_path):
    exp = tmp_path / "exp"
    run_train(fold, exp, "--epochs", "6", "--lr", "0.003")
    for name in ("config.yaml", "best.pt", "train.log", ".done", "train_curve.png"):
        assert (exp / name).exists(), name
    assert os.listdir(exp / "tensorboard")
    kept = sorted(os.listdir(exp / "checkpoints"))
    assert "epoch6.pt" in kept and 3 <= len(kept) <= 4  # the last 3 plus the best
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["classes"] == list(CLASSES)
    assert config["audio_info"]["num_layers"] == AUDIO_LAYERS and config["text_feats"] == fold["text"]
    assert config["git_commit"] and config["model_conf"]["num_queries"] == 2
    log = (exp / "train.log").read_text()
    assert "epoch 6/6" in log and "dev loss" in log
    # The label is learnable: the best dev UA is well above chance (0.25).
    done = yaml.safe_load((exp / ".done").read_text())
    assert done["best_dev_ua"] > 0.6, done
    # Inference needs only the exp dir; normalisation statistics travel in the checkpoint.
    model, saved = load_model(str(exp))
    assert not model.training and float(model.normalizer("audio").std.mean()) != 1.0
    # Re-running a finished experiment is a no-op.
    again = run_train(fold, exp, "--epochs", "6", "--lr", "0.003")
    assert "already finished" in again.stderr


# The second: the recipes' front end, whose frames the cached dataset averages and normalises
# on reading (with the resumed model's statistics after a resume).
@pytest.mark.parametrize("front_end", [[], ["--projection", "pool", "--layer-weighting", "concat",
                                            "--cache-feats", "true"]], ids=["conv", "pooled_cache"])
def test_ddp_two_processes_agree_and_resume_equals_uninterrupted(fold, tmp_path, front_end):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    run_train(fold, full, "--nproc", "2", "--epochs", "3", *front_end)
    run_train(fold, resumed, "--nproc", "2", "--epochs", "2", *front_end)
    run_train(fold, resumed, "--nproc", "2", "--epochs", "3", *front_end)
    for exp in (full, resumed):
        checksums = [line.rsplit(":", 1)[1].split() for line in
                     (exp / "train.log").read_text().splitlines() if "checksum per rank" in line]
        assert len(checksums) == 3 and all(len(c) == 2 and c[0] == c[1] for c in checksums)
    log = (resumed / "train.log").read_text()
    assert "extending a finished 2-epoch run to 3 epochs" in log
    assert "resumed from" in log and "epoch 3/3" in log
    # Same seed, same data order (seed + epoch), restored optimiser/scheduler, every rank
    # reseeded from (seed, epoch, rank) and deterministic gloo all-reduce on CPU: the resumed run
    # is bit-identical.
    for name, tensor in final_params(full, 3).items():
        assert torch.equal(tensor, final_params(resumed, 3)[name]), name


def test_never_reads_the_test_split(fold, tmp_path):
    test_dir = os.path.join(fold["data_dir"], "test")
    backup = test_dir + ".bak"
    os.rename(test_dir, backup)
    try:
        with open(test_dir, "w") as f:  # a file where the dir was: any read would fail
            f.write("corrupt")
        run_train(fold, tmp_path / "exp", "--epochs", "1")
    finally:
        os.remove(test_dir)
        os.rename(backup, test_dir)


def test_single_modality_config_ignores_the_other_scp(fold, tmp_path):
    exp = tmp_path / "exp"
    run_train(fold, exp, "--epochs", "1", "--streams", "{text: {}}", "--text-feats", fold["text"],
              "--audio-feats", "/nonexistent/feats.scp")
    model, config = load_model(str(exp))
    assert "audio_info" not in config and list(model.frontends) == ["text"]


def test_resume_with_a_different_config_is_refused(fold, tmp_path):
    exp = tmp_path / "exp"
    run_train(fold, exp, "--epochs", "1")
    (exp / ".done").unlink()
    result = run_train(fold, exp, "--epochs", "2", "--lr", "0.5", check=False)
    assert result.returncode != 0 and "lr: 0.01 -> 0.5" in result.stderr


def test_unknown_yaml_key_is_an_error(fold, tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("epochs: 1\nnum_querys: 4\n")
    result = run_train(fold, tmp_path / "exp", "--config", str(conf), check=False)
    assert result.returncode != 0
    assert "unknown key 'num_querys'" in result.stderr and "num_queries" in result.stderr


def test_batch_size_is_refused_where_max_frames_sizes_the_batches(fold, tmp_path):
    """A config's max_frames wins over --batch-size: giving both is an error with the reason,
    not a config.yaml that records a batch size the run never used."""
    conf = tmp_path / "frames.yaml"
    conf.write_text("epochs: 1\nmax_frames: 400\n")
    result = run_train(fold, tmp_path / "exp", "--config", str(conf), check=False)
    assert result.returncode != 0 and "--batch-size is not used" in result.stderr
    assert not (tmp_path / "exp" / "config.yaml").exists()


@pytest.mark.parametrize("scheduler", ["warmup", "cosine"])
def test_learning_rate_schedules(scheduler):
    factor = lr_lambda(scheduler, warmup_steps=10, total_steps=5 * 20)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    if scheduler == "warmup":  # inverse square root, no horizon
        assert factor(39) == pytest.approx(0.5) and factor(10**6) > 0
    else:  # cosine to 0 at epochs * steps_per_epoch
        assert factor(54) == pytest.approx(0.5) and factor(99) == pytest.approx(0.0, abs=1e-9)


def test_decode_then_score_reads_only_the_exp_dir(fold, tmp_path):
    exp = tmp_path / "exp" / "tag"
    run_train(fold, exp / "fold1", "--epochs", "6", "--lr", "0.003")
    test_dir = os.path.join(fold["data_dir"], "test")
    subprocess.run([sys.executable, "-m", "mser.bin.decode", "--exp-dir", str(exp / "fold1"),
                    "--data-dir", test_dir], check=True, capture_output=True)
    decode = exp / "fold1" / "decode"
    # Training fitted one temperature per condition on dev; decoding writes both posteriors.
    temperatures = load_temperatures(str(exp / "fold1"))
    assert set(temperatures) == {"both", "audio_only", "text_only"}
    for condition in ("both", "audio_only", "text_only"):
        tables = {}
        for name in ("posteriors", "posteriors_calibrated"):
            rows = [line.split() for line in (decode / condition / name).read_text().splitlines()]
            assert len(rows) == 12 and all(abs(sum(map(float, r[1:])) - 1) < 1e-4 for r in rows)
            tables[name] = np.array([[float(v) for v in r[1:]] for r in rows])
        raw, calibrated = tables["posteriors"], tables["posteriors_calibrated"]
        np.testing.assert_array_equal(raw.argmax(1), calibrated.argmax(1))
        # softmax(z / T): log-probability differences to the top class scaled by 1 / T (where
        # both are large enough for the files' 6 decimals)
        top = raw.argmax(1)[:, None]
        gaps = np.log(raw) - np.log(np.take_along_axis(raw, top, 1))
        calibrated_gaps = np.log(calibrated) - np.log(np.take_along_axis(calibrated, top, 1))
        clear = (raw > 1e-3) & (calibrated > 1e-3)
        assert clear.sum() > 12
        np.testing.assert_allclose(calibrated_gaps[clear],
                                   gaps[clear] / temperatures[condition], atol=5e-3)
    subprocess.run([sys.executable, "-m", "mser.bin.score", "--exp-dir", str(exp), "--folds", "1"],
                   check=True, capture_output=True)
    import json
    scores = json.loads((exp / "scores.json").read_text())
    assert scores["condition"] == "both" and scores["folds"][0]["num_utts"] == 12
    assert scores["mean"]["ua"] > 0.4  # chance is 0.25; the fixture's label shifts both modalities
    assert {"audio_only", "text_only"} <= set(scores)
    calibration = scores["calibration"]
    assert 0 <= calibration["ece"] <= 1 and 0 <= calibration["ece_calibrated"] <= 1
    assert calibration["temperatures"] == [temperatures["both"]]
    assert "ECE" in (exp / "scores.txt").read_text()


def test_a_three_stream_model_trains_decodes_and_scores_from_its_config_alone(fold, tmp_path):
    """A third stream (random "video" features that carry the label) needs only its config:
    training, the dev conditions, decoding under every subset of streams and scoring follow."""
    rng = np.random.default_rng(7)
    video = {}
    for split in ("train", "dev", "test"):
        with open(os.path.join(fold["data_dir"], split, "utt2emo")) as f:
            for utt, label in (line.split() for line in f if line.strip()):
                frames = rng.integers(4, 12)
                video[utt] = (rng.normal(size=(frames, 3)) + 2 * CLASSES.index(label)).astype(
                    np.float32)
    video_scp = write_feats(str(tmp_path / "dump" / "video"), video, "video", 3, 1)
    config = tmp_path / "three_streams.yaml"
    config.write_text(yaml.safe_dump({
        "streams": {"audio": {}, "text": {"mask_prob": 0.2},
                    "video": {"feats": video_scp, "mask_prob": 0.2, "subsampling": 1}},
        "select_conditions": ["all", "video_only"]}))
    exp = tmp_path / "exp" / "three"
    # Masking drops one stream at a time, so video is never seen alone in training: 20 epochs
    # let its encoder learn enough for the video-only condition (6 left it at chance with
    # another dropout draw).
    run_train(fold, exp / "fold1", "--config", str(config), "--epochs", "20", "--lr", "0.003")
    saved = yaml.safe_load((exp / "fold1" / "config.yaml").read_text())
    assert saved["video_feats"] == video_scp and saved["video_info"]["modality"] == "video"
    assert list(saved["model_conf"]["streams"]) == ["audio", "text", "video"]
    history = torch.load(exp / "fold1" / "best.pt", weights_only=True)["state"]["history"]
    assert set(history[-1]["dev_conditions"]) == {"all", "video_only"}
    subprocess.run([sys.executable, "-m", "mser.bin.decode", "--exp-dir", str(exp / "fold1"),
                    "--data-dir", os.path.join(fold["data_dir"], "test")], check=True,
                   capture_output=True)
    conditions = ["all", "audio+text", "audio+video", "text+video", "audio_only", "text_only",
                  "video_only"]
    assert sorted(p.name for p in (exp / "fold1" / "decode").iterdir() if p.is_dir()) == sorted(
        conditions)
    subprocess.run([sys.executable, "-m", "mser.bin.score", "--exp-dir", str(exp), "--folds",
                    "1"], check=True, capture_output=True)
    import json
    scores = json.loads((exp / "scores.json").read_text())
    assert scores["condition"] == "all" and scores["conditions"] == conditions
    assert scores["video_only"]["mean"]["ua"] > 0.4  # chance 0.25: video carries the label
    assert "video_only" in (exp / "scores.txt").read_text()
    from mser.scoring.results_md import write_results_md

    results = tmp_path / "RESULTS.md"
    write_results_md(str(results), str(tmp_path / "exp"), [1], "Results: three streams",
                     {"headline": "ua", "tests": ["test"], "corpus": "toy",
                      "description": "one fold"})
    lines = results.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| tag | config"))
    row = next(line for line in lines if line.startswith("| three |"))
    assert header.endswith("| UA audio only | UA text only | UA video only |")
    assert row.split(" | ")[3] == "all" and row.count("|") == header.count("|")


def test_stream_feats_on_the_command_line_win_over_the_config(fold, tmp_path):
    """--stream-feats NAME=SCP gives a declared stream its features (a recipe's derived dump,
    e.g. the dialogue context), over streams.<name>.feats; malformed or unknown names fail."""
    extra = {utt: np.ones((3, 2), np.float32) for utt in open_feats(fold["text"])}
    extra_scp = write_feats(str(tmp_path / "dump" / "extra"), extra, "text", 2, 1)
    config = tmp_path / "extra.yaml"
    config.write_text(yaml.safe_dump({"streams": {"audio": {}, "text": {},
                                                  "extra": {"feats": "no/such/feats.scp"}}}))
    exp = tmp_path / "exp"
    run_train(fold, exp, "--config", str(config), "--epochs", "1",
              "--stream-feats", f"extra={extra_scp}")
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["extra_feats"] == extra_scp and saved["extra_info"]["modality"] == "text"
    for bad, message in ((["extra"], "expected NAME=SCP"),
                         (["video=x.scp"], "--stream-feats video: no such stream in the model "
                                           "(streams: audio, extra, text)")):
        result = run_train(fold, tmp_path / "bad", "--config", str(config), "--stream-feats",
                           *bad, check=False)
        assert result.returncode and message in result.stderr, result.stderr[-2000:]


def test_decode_takes_features_with_an_added_key_at_its_old_value(fold, tmp_path):
    """A model trained before truncation_side existed decodes features dumped after it (at
    "right", what the model saw); "left" is another feature and is refused, the key named."""
    import shutil

    exp = tmp_path / "exp"
    run_train(fold, exp, "--epochs", "1")
    for side, ok in (("right", True), ("left", False)):
        dump = tmp_path / f"text_{side}"
        shutil.copytree(os.path.dirname(fold["text"]), dump)
        conf = yaml.safe_load((dump / "feat_conf.yaml").read_text())
        (dump / "feat_conf.yaml").write_text(yaml.safe_dump({**conf, "truncation_side": side}))
        (dump / "feats.scp").write_text((dump / "feats.scp").read_text().replace(
            os.path.dirname(fold["text"]), str(dump)))
        result = subprocess.run([sys.executable, "-m", "mser.bin.decode", "--exp-dir", str(exp),
                                 "--data-dir", os.path.join(fold["data_dir"], "test"),
                                 "--text-feats", str(dump / "feats.scp")],
                                capture_output=True, text=True)
        assert (result.returncode == 0) == ok, result.stderr[-2000:]
    assert "truncation_side 'left' (trained: None)" in result.stderr


def test_selection_on_the_mean_of_dev_conditions(fold, tmp_path):
    """With --select-conditions, the selection metric is the mean dev UA of the conditions
    (each evaluated with the other modality removed) and best.pt is the epoch that maximises it."""
    exp = tmp_path / "exp"
    run_train(fold, exp, "--epochs", "4", "--lr", "0.003", "--patience", "0",
              "--select-conditions", "both", "audio_only", "text_only")
    state = torch.load(exp / "checkpoints" / "epoch4.pt", weights_only=False)["state"]
    history = state["history"]
    assert len(history) == 4
    for h in history:
        per_condition = [h["dev_conditions"][c]["ua"] for c in ("both", "audio_only", "text_only")]
        assert h["dev_ua"] == pytest.approx(np.mean(per_condition))
    assert state["best_epoch"] == 1 + int(np.argmax([h["dev_ua"] for h in history]))
    assert torch.load(exp / "best.pt", weights_only=False)["epoch"] == state["best_epoch"]
    assert "audio_only" in (exp / "train.log").read_text()
    assert selection_conditions(["both", "text_only"], ["audio"]) == ["audio_only"]
    assert selection_conditions(["both", "text_only"], ["audio", "text"]) == ["both", "text_only"]
    bad = run_train(fold, tmp_path / "bad", "--select-conditions", "audio-only", check=False)
    assert bad.returncode and "such as both, all, <stream>_only" in bad.stderr


class Killed(BaseException):
    """The process dies here (raised by a patched save)."""


def test_a_kill_between_the_epoch_checkpoint_and_best_pt_leaves_no_stale_best(fold, tmp_path,
                                                                                 monkeypatch):
    """Killed after checkpoints/epochN.pt (whose state says best epoch N) but before best.pt is
    written, the resumed run still ends with the best epoch's weights in best.pt."""
    argv = ["--data-dir", fold["data_dir"], "--audio-feats", fold["audio"], "--text-feats",
            fold["text"], "--seed", "3", *TINY, "--epochs", "3", "--lr", "0.003",
            "--select-metric", "loss"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    train_main([*argv, "--exp-dir", str(full)])
    best_epoch = load_checkpoint(full / "best.pt")["epoch"]
    assert best_epoch >= 2, "the fixture must improve after epoch 1 for this test to bite"

    save = trainer.save_checkpoint

    def save_then_die_before_best(path, checkpoint):
        if str(path).endswith("best.pt") and checkpoint["epoch"] == best_epoch:
            raise Killed
        save(path, checkpoint)
    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die_before_best)
    with pytest.raises(Killed):
        train_main([*argv, "--exp-dir", str(killed)])
    monkeypatch.undo()
    stale = load_checkpoint(killed / "best.pt")["epoch"]
    assert stale < best_epoch == load_checkpoint(
        killed / "checkpoints" / f"epoch{best_epoch}.pt")["state"]["best_epoch"]

    train_main([*argv, "--exp-dir", str(killed)])
    assert yaml.safe_load((killed / ".done").read_text())["best_epoch"] == best_epoch
    resumed, uninterrupted = (load_checkpoint(exp / "best.pt") for exp in (killed, full))
    assert resumed["epoch"] == best_epoch
    for name, tensor in uninterrupted["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_min_steps_stretches_epochs_and_patience_of_a_small_corpus():
    large = training_length(epochs=15, patience=5, min_steps=600, steps_per_epoch=60)
    assert (large.epochs, large.patience, large.total_steps) == (15, 5, 900)  # unchanged
    small = training_length(epochs=15, patience=5, min_steps=600, steps_per_epoch=10)
    assert (small.epochs, small.patience) == (60, 20) and small.total_steps >= 600
    assert training_length(15, 0, 600, 7).patience == 0  # "never stop early" stays so
    assert training_length(15, 5, 0, 7).epochs == 15


def test_options_are_checked_against_their_choices():
    parser = get_parser()
    args = parse_args(parser, ["--amp", "bf16", "--select-conditions", "both", "text_only"])
    assert args.amp == "bf16" and args.select_conditions == ["both", "text_only"]
    for bad in (["--amp", "fp32"], ["--verbose", "3"], ["--scheduler", "linear"]):
        with pytest.raises(SystemExit):
            parse_args(parser, bad)
    assert RESUMABLE >= {"epochs", "patience", "min_steps", "num_workers"}
    assert not RESUMABLE & {"lr", "seed", "warmup_steps", "batch_size"}


def test_one_and_two_processes_run_the_same_optimiser_steps_and_schedule(fold, tmp_path):
    """The configured batch is per optimiser step (split between the processes), so --nproc 2
    trains the experiment of --nproc 1: same steps per epoch, same learning rates."""
    runs = {}
    for nproc in (1, 2):
        exp = tmp_path / f"nproc{nproc}"
        run_train(fold, exp, "--nproc", str(nproc), "--epochs", "2", "--warmup-steps", "12")
        runs[nproc] = load_checkpoint(exp / "checkpoints" / "epoch2.pt")
    steps = {n: c["scheduler"]["last_epoch"] for n, c in runs.items()}
    assert steps[1] == steps[2] == 2 * 4  # 32 training utterances in batches of 8
    lrs = {n: [h["lr"] for h in c["state"]["history"]] for n, c in runs.items()}
    assert lrs[1] == lrs[2] == pytest.approx([0.01 * 5 / 12, 0.01 * 9 / 12])  # warm-up, by step


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(commands, timeout=300):
    """Start ``(command, environ)`` pairs at once, wait for all; fail with the stderr of any."""
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for command, env in commands]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        if p.returncode:
            pytest.fail(f"{' '.join(p.args)} failed:\n{err[-4000:]}")
    return [err for _, err in outputs]


SHARDED = """
import json, os, sys
import torch
from mser.bin.train import get_parser
from mser.data.dataset import EmotionDataset, LengthBucketBatchSampler, collate
from mser.io.storage import load_feat_info
from mser.nets import build_model
from mser.train.options import model_conf_from_args
from mser.train.trainer import compute_normalization, evaluate
from mser.utils import distributed
from mser.utils.config import parse_args

data_dir, audio, text, out, *tiny = sys.argv[1:]
ctx = distributed.context_from_env(os.environ, 0)
distributed.init_process_group(ctx, 1)
feats = {"audio": audio, "text": text}
train_set = EmotionDataset(os.path.join(data_dir, "train"), feats)
dev_set = EmotionDataset(os.path.join(data_dir, "dev"), feats, classes=train_set.classes)
torch.manual_seed(0)
model = build_model(model_conf_from_args(parse_args(get_parser(), tiny)),
                    {"audio": load_feat_info(audio), "text": load_feat_info(text)},
                    len(train_set.classes))
compute_normalization(ctx, model, train_set, ["audio", "text"], fill_cache=False)
result = {m: [model.normalizer(m).mean.tolist(), model.normalizer(m).std.tolist()]
          for m in ("audio", "text")}
for batch_size in (5, 1):  # uneven shares; batches smaller than the world (repeated utterances)
    sampler = LengthBucketBatchSampler(dev_set.lengths, batch_size, shuffle=False,
                                       num_replicas=ctx.world_size, rank=ctx.rank)
    loader = torch.utils.data.DataLoader(dev_set, batch_sampler=sampler, collate_fn=collate)
    result[f"dev{batch_size}"] = evaluate(ctx, model, loader, 4,
                                          ["both", "audio_only", "text_only"])
if ctx.is_main:
    with open(out, "w") as f:
        json.dump(result, f)
distributed.destroy_process_group(ctx)
"""


def test_statistics_and_dev_metrics_of_two_processes_equal_one(fold, tmp_path):
    """Normalisation statistics (each rank sums its share, all-reduced) and dev metrics (each
    rank scores its share of dev, the predictions gathered) on 2 gloo processes are those of 1."""
    results = {}
    for world in (1, 2):
        out = tmp_path / f"world{world}.json"
        port = str(free_port())
        commands = [([sys.executable, "-c", SHARDED, fold["data_dir"], fold["audio"], fold["text"],
                      str(out), *TINY],
                     {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
                      "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                      "MASTER_PORT": port}) for r in range(world)]
        run_processes(commands)
        results[world] = yaml.safe_load(out.read_text())
    one, two = results[1], results[2]
    for modality in ("audio", "text"):
        for single, sharded in zip(one[modality], two[modality]):
            np.testing.assert_allclose(sharded, single, rtol=0, atol=1e-6)
    assert abs(np.mean(one["audio"][0]) - 1.5) < 0.2  # real statistics: labels 0-3 shift audio
    for key in ("dev5", "dev1"):
        for condition in ("both", "audio_only", "text_only"):
            single, sharded = one[key]["conditions"][condition], two[key]["conditions"][condition]
            assert (sharded["ua"], sharded["wa"]) == (single["ua"], single["wa"]), (key, condition)
            assert sharded["loss"] == pytest.approx(single["loss"], abs=1e-6)
        assert two[key]["ua"] == one[key]["ua"]


FAKE_SRUN = """#!/bin/bash
# Fake srun: starts --ntasks tasks of one node with the variables Slurm's srun sets.
ntasks=$2; shift 2
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_JOB_ID=4242 SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 SLURM_NTASKS=$ntasks \\
    SLURM_STEP_NUM_TASKS=$ntasks SLURM_STEP_TASKS_PER_NODE=$ntasks \\
    SLURM_NODELIST=localhost SLURM_STEP_NODELIST=localhost "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait $pid || status=1; done
exit $status
"""


def test_multi_node_launchers_train_what_one_two_process_run_does(fold, tmp_path):
    """Two torchrun agents (a 2-node c10d rendezvous on localhost, one process each) and srun
    (two tasks) train to the checkpoint of ``--nproc 2``, the recipe's options kept. One CPU
    thread each, as ``--nproc 2`` gives its processes on 2 cores (threads change the sums); the
    torchrun run reads through a DataLoader worker, which must not change the random draws."""
    common = ["--epochs", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_train(fold, tmp_path / "nproc2", "--nproc", "2", *common)
    endpoint = f"127.0.0.1:{free_port()}"
    train = ["-m", "mser.bin.train", "--data-dir", fold["data_dir"], "--audio-feats",
             fold["audio"], "--text-feats", fold["text"], "--seed", "3", *TINY, *common]
    agents = [([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
                str(node), "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                endpoint, *train, "--nproc-per-node", "1", "--num-workers", "1",
                "--exp-dir", str(tmp_path / "torchrun")],
               env) for node in (0, 1)]
    run_processes(agents)
    srun = tmp_path / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    run_processes([([str(srun), "--ntasks", "2", sys.executable, *train, "--nproc", "2",
                     "--master-port", str(free_port()), "--exp-dir", str(tmp_path / "srun_exp")],
                    env)])
    reference = final_params(tmp_path / "nproc2", 2)
    for exp in ("torchrun", "srun_exp"):
        log = (tmp_path / exp / "train.log").read_text()
        assert "rank 0 of 2" in log, exp
        for name, tensor in final_params(tmp_path / exp, 2).items():
            assert torch.equal(tensor, reference[name]), (exp, name)


def test_average_checkpoints_writes_the_mean_of_the_best_epochs(fold, tmp_path):
    """--average-checkpoints 3: best.pt holds the mean of the weights of the 3 epochs with the
    best dev metric (kept from pruning), and .done names them."""
    exp = tmp_path / "avg"
    run_train(fold, exp, "--epochs", "6", "--average-checkpoints", "3", "--keep-checkpoints", "1")
    done = yaml.safe_load((exp / ".done").read_text())
    history = load_checkpoint(str(exp / "checkpoints" / "epoch6.pt"))["state"]["history"]
    steps_per_epoch = history[0]["step"]
    assert [h["step"] for h in history] == [e * steps_per_epoch for e in range(1, 7)]
    expected = trainer.best_epochs(history, "ua", 3)
    assert done["averaged_epochs"] == expected and len(set(expected)) == 3
    best = load_checkpoint(str(exp / "best.pt"))
    assert best["averaged_epochs"] == expected
    for key, value in best["model"].items():
        if value.is_floating_point():
            mean = sum(final_params(exp, e)[key] for e in expected) / 3
            torch.testing.assert_close(value, mean, msg=key)
    # The averaged model decodes like any other.
    model, _ = load_model(str(exp))
    assert not model.training


def test_no_dev_trains_the_fixed_epochs_and_averages_the_last_ones(fold, tmp_path):
    """--no-dev (a final model): <data-dir>/dev is never read (here it does not exist), every
    epoch runs (no early stopping), best.pt is the mean of the last --average-checkpoints
    epochs, and no dev calibration is written."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(os.path.join(fold["data_dir"], "train"), data / "train")
    exp = tmp_path / "final"
    result = run_train({**fold, "data_dir": str(data)}, exp, "--epochs", "4", "--patience", "1",
                       "--average-checkpoints", "2", "--keep-checkpoints", "0", "--no-dev", "true")
    done = yaml.safe_load((exp / ".done").read_text())
    assert done["epoch"] == 4 and done["reason"] == "max_epochs" and done["averaged_epochs"] == [4, 3]
    best = load_checkpoint(str(exp / "best.pt"))
    for key, value in best["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (final_params(exp, 4)[key]
                                               + final_params(exp, 3)[key]) / 2, msg=key)
    assert not (exp / "calibration.yaml").exists()
    assert yaml.safe_load((exp / "config.yaml").read_text())["dev_utts"] == 0
    assert "no dev set" in result.stderr + (exp / "train.log").read_text()


def test_a_replayed_shorter_schedule_equals_training_it(fold, tmp_path):
    """bench/schedule_replay.py: the best.pt it derives for --epochs 4 from a 6-epoch run that
    kept every checkpoint is the one a 4-epoch run trains (per-epoch reseeding, inverse-sqrt
    learning rates that do not depend on the run's length)."""
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        "schedule_replay", os.path.join(root, "bench", "schedule_replay.py"))
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    run_train(fold, tmp_path / "long", "--epochs", "6", "--keep-checkpoints", "6",
              "--average-checkpoints", "2")
    run_train(fold, tmp_path / "short", "--epochs", "4", "--average-checkpoints", "2")
    last, ran_to, chosen, share = replay.replay_fold(str(tmp_path / "long"),
                                                     str(tmp_path / "replayed"), 4, 0, 2)
    short = yaml.safe_load((tmp_path / "short" / ".done").read_text())
    assert (last, ran_to) == (4, 6) and chosen == short["averaged_epochs"] and 0 < share < 1
    expected = load_checkpoint(str(tmp_path / "short" / "best.pt"))["model"]
    for key, value in load_checkpoint(str(tmp_path / "replayed" / "best.pt"))["model"].items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
    history = [{"epoch": e, "dev_metric": m} for e, m in enumerate([0.5, 0.6, 0.55, 0.5], 1)]
    assert replay.stop_epoch(history, "ua", 10, 2) == 4  # 2 epochs without a gain after epoch 2
    assert replay.stop_epoch(history, "ua", 3, 0) == 3
    assert replay.stop_epoch(history, "ua", 10, 5) is None  # the run ended before the rule did
    # Selection on a subset of the dev conditions: each epoch's metric is their mean.
    per_condition = [{"epoch": e, "dev_metric": None, "dev_conditions": {
        "both": {"ua": b}, "text_only": {"ua": t}}} for e, b, t in ((1, 0.6, 0.9), (2, 0.7, 0.2))]
    assert [h["dev_metric"] for h in replay.with_selection(per_condition, "ua", ["both"])] == [0.6, 0.7]
    assert [h["dev_metric"] for h in replay.with_selection(
        per_condition, "ua", ["both", "text_only"])] == pytest.approx([0.75, 0.45])


def test_best_epochs_rank_by_the_metric_and_its_direction():
    history = [{"epoch": e, "dev_metric": m} for e, m in ((1, 0.5), (2, 0.7), (3, 0.7), (4, 0.6))]
    assert trainer.best_epochs(history, "ua", 2) == [2, 3]   # ties: the earlier epoch first
    assert trainer.best_epochs(history, "loss", 2) == [1, 4]  # lower is better
    assert trainer.best_epochs(history, "ua", 9) == [2, 3, 4, 1]


def test_warmup_epochs_are_those_that_ended_within_it():
    history = [{"epoch": e, "step": 10 * e, "dev_metric": 0.5} for e in range(1, 6)]
    assert trainer.warmup_epochs(history, [5, 2, 3, 1], warmup_steps=30) == [2, 1]
    assert trainer.warmup_epochs(history, [5, 2], warmup_steps=0) == []
    older = [{k: v for k, v in h.items() if k != "step"} for h in history]
    assert trainer.warmup_epochs(older, [1, 2], warmup_steps=30) == []


def test_averaging_names_the_epochs_it_took_from_the_warmup(fold, tmp_path):
    """A run whose averaged epochs ended within the warm-up (here it never leaves it) averages
    them all the same and says which on the console."""
    exp = tmp_path / "warm"
    result = run_train(fold, exp, "--epochs", "3", "--average-checkpoints", "2",
                       "--warmup-steps", "100000")
    averaged = yaml.safe_load((exp / ".done").read_text())["averaged_epochs"]
    assert len(averaged) == 2
    assert (f"best.pt averages 2 epoch(s) that ended within the 100000-step learning-rate "
            f"warm-up ({' '.join(map(str, averaged))}); no epoch ended after it"
            in result.stderr)


def test_probe_config_trains(fold, tmp_path):
    """The linear probe (the recipes' conf/tuning/probe.yaml keys) trains on the tiny fold and
    learns the label."""
    exp = tmp_path / "probe"
    run_train(fold, exp, "--epochs", "8", "--projection", "none", "--encoder-layers", "0",
              "--fusion", "stats_pool", "--classifier-hidden", "0")
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["model_conf"]["fusion"] == "stats_pool"
    assert yaml.safe_load((exp / ".done").read_text())["best_dev_ua"] > 0.6


class _Labels:
    classes = ["neu", "ang", "sad"]

    def __len__(self):
        return 8

    def label_counts(self):
        return np.array([4, 3, 1])


def test_class_balance_of_the_loss_from_the_training_counts():
    """balanced: inverse-frequency weights (a class's weights sum to the same); logit_adjusted:
    no weights, the log training prior as logit offsets; none: neither."""
    weights, offset = trainer.class_balance(_Labels(), "balanced")
    assert offset is None
    torch.testing.assert_close(weights * torch.tensor([4.0, 3.0, 1.0]), torch.full((3,), 8 / 3))
    weights, offset = trainer.class_balance(_Labels(), "logit_adjusted")
    assert weights is None
    torch.testing.assert_close(offset, torch.log(torch.tensor([0.5, 0.375, 0.125])))
    assert trainer.class_balance(_Labels(), "none") == (None, None)


def add_task_labels(fold, drop=()):
    """utt2polarity (neg for ang and sad, pos for hap, neu) and utt2arousal (the class index
    plus noise) in every split of the fold, without the utterances in ``drop``."""
    rng = np.random.default_rng(11)
    polarity = {"neu": "neu", "hap": "pos", "ang": "neg", "sad": "neg"}
    for split in ("train", "dev", "test"):
        split_dir = os.path.join(fold["data_dir"], split)
        with open(os.path.join(split_dir, "utt2emo")) as f:
            labels = [line.split() for line in f if line.strip()]
        with open(os.path.join(split_dir, "utt2polarity"), "w") as f:
            f.writelines(f"{utt} {polarity[label]}\n" for utt, label in labels if utt not in drop)
        with open(os.path.join(split_dir, "utt2arousal"), "w") as f:
            f.writelines(f"{utt} {CLASSES.index(label) + 0.3 * rng.normal():.3f}\n"
                         for utt, label in labels if utt not in drop)


def test_auxiliary_tasks_train_decode_score_and_compare_from_the_config(tmp_path):
    """tasks: a classification (labels of its own, classes from the training split) and a
    regression (CCC loss) beside the emotion categories: each head is trained, evaluated on
    dev, decoded under every condition, scored (its metrics, per fold and pooled) and
    compared with the paired test; an utterance without a label is left out of that task."""
    fold = make_fold(tmp_path / "corpus")  # its own: labels are added
    add_task_labels(fold, drop={"trainspk0_utt0000"})
    config = tmp_path / "tasks.yaml"
    config.write_text(yaml.safe_dump({"tasks": {
        "emotion": {}, "polarity": {"type": "classification", "weight": 0.5},
        "arousal": {"type": "regression", "loss": "ccc", "weight": 0.5}}}, sort_keys=False))
    exp = tmp_path / "exp"
    for tag, seed in (("multi_seed1", "4"), ("multi", "3")):
        result = run_train(fold, exp / tag / "fold1", "--config", str(config), "--epochs", "8",
                           "--seed", seed)
        assert "1 of 32 utterance(s) have no polarity label" in result.stderr
        subprocess.run([sys.executable, "-m", "mser.bin.decode", "--exp-dir",
                        str(exp / tag / "fold1"), "--data-dir",
                        os.path.join(fold["data_dir"], "test")], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "mser.bin.score", "--exp-dir", str(exp / tag),
                        "--folds", "1", "--reference-tag", "multi_seed1"], check=True,
                       capture_output=True)
    saved = yaml.safe_load((exp / "multi" / "fold1" / "config.yaml").read_text())
    assert saved["task_classes"] == {"polarity": ["neg", "neu", "pos"], "arousal": None}
    assert list(saved["model_conf"]["tasks"]) == ["emotion", "polarity", "arousal"]
    assert "polarity UA" in result.stderr and "arousal CCC" in result.stderr
    history = torch.load(exp / "multi" / "fold1" / "best.pt", weights_only=True)["state"]["history"]
    assert set(history[-1]["dev_conditions"]["both"]["tasks"]) == {"polarity", "arousal"}
    decode = exp / "multi" / "fold1" / "decode"
    assert (decode / "text_only" / "classes_polarity.txt").read_text().split() == ["neg", "neu",
                                                                                 "pos"]
    values = [float(line.split()[1])
              for line in (decode / "audio_only" / "predictions_arousal").read_text().splitlines()]
    assert len(values) == 12 and len(set(values)) > 1
    import json
    scores = json.loads((exp / "multi" / "scores.json").read_text())
    tasks = scores["tasks"]
    assert tasks["polarity"]["pooled"]["num_utts"] == 12 and tasks["polarity"]["type"] == (
        "classification")
    assert tasks["polarity"]["mean"]["ua"] > 0.5  # chance 1/3: the features carry the class
    assert tasks["arousal"]["pooled"]["ccc"] > 0.5 and tasks["arousal"]["pooled"]["mae"] < 1.5
    assert set(scores["text_only"]["tasks"]) == {"polarity", "arousal"}
    assert "task arousal (regression)" in (exp / "multi" / "scores.txt").read_text()
    compared = subprocess.run(
        [sys.executable, "-m", "mser.bin.compare", str(exp / "multi"), str(exp / "multi_seed1"),
         "--folds", "1", "--task", "arousal", "--metric", "ccc", "--num-samples", "200"],
        check=True, capture_output=True, text=True).stdout
    assert '"task": "arousal"' in compared and "arousal CCC(multi) - arousal CCC(multi_seed1)" in (
        compared)
    wrong = subprocess.run(
        [sys.executable, "-m", "mser.bin.compare", str(exp / "multi"), str(exp / "multi_seed1"),
         "--folds", "1", "--task", "arousal", "--metric", "ua"], capture_output=True, text=True)
    assert wrong.returncode and "task arousal is scored by ccc, pcc, mae" in wrong.stderr
    from mser.scoring.results_md import write_results_md

    results = tmp_path / "RESULTS.md"
    write_results_md(str(results), str(exp), [1], "Results: tasks",
                     {"headline": "ua", "tests": ["test"], "corpus": "toy",
                      "description": "one fold"})
    lines = results.read_text().splitlines()
    assert any(line.startswith("| multi | arousal (regression) | both | CCC 0.") for line in lines)
    assert any(re.match(r"\| multi \| multi_seed1 \| polarity \| UA [+-]\d+\.\d\d \[[+-]", line)
               for line in lines)


def test_a_task_without_labels_or_with_a_bad_label_fails_naming_the_file(tmp_path):
    fold = make_fold(tmp_path / "corpus")
    config = tmp_path / "tasks.yaml"
    config.write_text(yaml.safe_dump({"tasks": {"emotion": {}, "arousal": {"type": "regression"}}}))
    result = run_train(fold, tmp_path / "exp", "--config", str(config), "--epochs", "1",
                       check=False)
    assert result.returncode and "train/utt2arousal: not found" in result.stderr
    add_task_labels(fold)
    dev_labels = os.path.join(fold["data_dir"], "dev", "utt2arousal")
    with open(dev_labels) as f:
        first, *rest = f.read().splitlines()
    with open(dev_labels, "w") as f:
        f.write("\n".join([f"{first.split()[0]} high", *rest]) + "\n")
    result = run_train(fold, tmp_path / "exp", "--config", str(config), "--epochs", "1",
                       check=False)
    message = f"{first.split()[0]} has arousal 'high', which is not a number"
    assert result.returncode and message in result.stderr
