"""The demo recipe end to end, tiny (ESPnet's mini_an4 idea): egs/synth_iemocap/run.sh (the
shared egs/TEMPLATE/ser.sh) stages 0..5 on a small generated corpus, two folds trained at once as
one job array, two epochs; then mser-infer on the recipe's own test utterances must reproduce
what the decoding stage wrote, also from an exported model dir. Also: run.sh's options."""
import json
import os
import re
import shutil
import subprocess

import torch

import numpy as np
import pytest

from mser.bin import infer
from mser.io.datadir import read_table
from mser.data.protocol import read_protocol
from mser.inference import export_model
from mser.scoring.wer import data_dir_wer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "egs", "synth_iemocap")
TAG = "train_whisper_tiny_utterance_minilm"
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or not os.path.exists(
        os.path.join(ROOT, "tools", "venv", "bin", "activate")),
    reason="needs espeak-ng and tools/venv: run bash tools/install.sh")


def run_recipe(work, *args, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTH_IEMOCAP", "cmd_backend")}
    return subprocess.run(["./run.sh", *args], cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)


def copy_recipe(work):
    """A copy of the recipe with the shared scripts linked, as in the repo."""
    work.mkdir()
    for name in ("run.sh", "db.sh", "local", "conf"):
        source = os.path.join(RECIPE, name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, work / name)
    for name, target in (("path.sh", "egs/TEMPLATE/path.sh"), ("cmd.sh", "egs/TEMPLATE/cmd.sh"),
                         ("ser.sh", "egs/TEMPLATE/ser.sh"), ("utils", "utils")):
        os.symlink(os.path.join(ROOT, target), work / name)
    return work


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The recipe copy after ./run.sh (stages 0..5, folds 1 and 2 at once)."""
    work = copy_recipe(tmp_path_factory.mktemp("egs") / "synth_iemocap")
    args = ["--local_data_opts", "--utts_per_session 24", "--folds", "1 2", "--fold_jobs", "2",
            "--train_opts", "--epochs 2 --min-steps 0"]
    result = run_recipe(work, *args)
    if result.returncode:
        pytest.fail(f"./run.sh {' '.join(args)} failed in {work}:\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return work


def read_posteriors(path):
    return {utt: np.array(values.split(), dtype=float) for utt, values in read_table(path).items()}


def test_recipe_leaves_scores_results_and_plots(recipe):
    exp = recipe / "exp" / TAG
    scores = json.loads((exp / "scores.json").read_text())
    assert [f["fold"] for f in scores["folds"]] == [1, 2]
    for condition in (scores, scores["audio_only"], scores["text_only"]):
        assert 0.0 <= condition["folds"][0]["ua"] <= 1.0 and 0.0 <= condition["mean"]["wa"] <= 1.0
    results = (recipe / "RESULTS.md").read_text()
    assert re.search(rf"\| {TAG} \| conf/train.yaml \| [0-9a-f]{{7}}(\+dirty)? \| both \|", results)
    # The protocol is the one stage 0 described, not a hard-coded one.
    protocol = read_protocol(recipe / "data" / "protocol")
    assert "leave-one-session-out" in protocol["description"] and protocol["tests"] == ["test"]
    assert (f"- corpus: generated demo corpus (seed 0); protocol: {protocol['description']}\n"
            in results and "- headline metric: UA\n" in results)
    # The two folds ran as one job array, two at once, each on its share of the cores.
    threads = max(1, min(len(os.sched_getaffinity(0)), int(os.environ.get("OMP_NUM_THREADS", 10 ** 6))) // 2)
    for fold in (1, 2):
        log = (exp / "log" / f"train.fold{fold}.log").read_text()
        assert f"--data-dir data/fold{fold} " in log.splitlines()[0]
        assert f"threads={threads} jobs-at-once=2" in log
    for png in (exp / "confusion.png", exp / "fold1" / "train_curve.png",
                exp / "attention_fold1.png"):
        assert png.read_bytes()[:8] == PNG, png
    test_utts = set(read_table(recipe / "data" / "fold1" / "test" / "utt2emo"))
    assert set(read_posteriors(exp / "fold1" / "decode" / "both" / "posteriors")) == test_utts
    assert not test_utts & set(read_table(recipe / "data" / "fold1" / "train" / "utt2emo"))


def test_cue_breakdown_adds_up_to_the_scores(recipe):
    """Stage 5's accuracy by cue type covers every test utterance once and, pooled over the cue
    types, equals the scored WA (overall accuracy) of each condition."""
    exp = recipe / "exp" / TAG
    scores = json.loads((exp / "scores.json").read_text())
    header, counts, *rows = (exp / "cue_breakdown.txt").read_text().splitlines()[1:]
    totals = np.array(counts.split()[1:], dtype=int)
    assert totals.sum() == sum(len(read_table(recipe / "data" / f"fold{f}" / "test" / "utt2emo"))
                               for f in (1, 2))
    for row in rows:
        condition, *accuracies = row.split()
        pooled = np.dot(np.array(accuracies, dtype=float), totals) / totals.sum() / 100
        wa = (scores if condition == "both" else scores[condition])["pooled"]["wa"]
        assert pooled == pytest.approx(wa, abs=1e-3), condition


def test_unused_modality_has_no_stage_and_no_place_in_the_tag(recipe):
    """A text-only config skips the acoustic dump and is tagged by its text features only."""
    out = run_recipe(recipe, "--stage", "1", "--stop_stage", "3", "--folds", "1",
                     "--train_config", "conf/tuning/text_only.yaml", "--train_opts", "--epochs 1 --min-steps 0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Stage 1" not in out.stdout and "Stage 2" in out.stdout
    exp = recipe / "exp" / "text_only_minilm"
    assert (exp / "fold1" / "best.pt").exists()
    assert "--audio-feats" not in (exp / "log" / "train.fold1.log").read_text().splitlines()[0]


def test_run_sh_options(tmp_path):
    """--help documents each option once with its default and comment; bad values fail early."""
    work = copy_recipe(tmp_path / "synth_iemocap")
    out = run_recipe(work, "--nj", "3", "--help")
    assert out.returncode == 0
    options = [line.split()[:2] for line in out.stderr.splitlines() if line.startswith("  --")]
    names = [name for name, _ in options]
    assert len(names) == len(set(names)) and "--tag" in names and "--exp" not in names
    assert ["--nj", "3"] in options and ["--audio_feat", "whisper_tiny_utterance"] in options
    assert re.search(r"--fold_jobs +auto +folds trained .* at once", out.stderr)
    for args, message in ((["--stage", "abc"], "'--stage' expects an integer, got 'abc'"),
                          (["--stop_stage", "3x"], "'--stop_stage' expects an integer"),
                          (["--nj", "0"], "--nj 0: expected at least 1"),
                          (["--fold_jobs", "0"], "--fold_jobs 0: expected auto or at least 1"),
                          (["--exp", "x"], "unknown option '--exp'; the options are: --stage")):
        out = run_recipe(work, *args, timeout=60)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr)
    if not torch.cuda.is_available():
        out = run_recipe(work, "--ngpu", "1", timeout=120)
        assert out.returncode != 0 and "Run on CPU with --ngpu 0" in out.stderr
        assert not (work / "data").exists()  # failed before stage 0


def infer_lines(model_dir, data_dir, capsys, *extra):
    infer.main(["--model-dir", str(model_dir), "--data-dir", str(data_dir), "--max-utts", "4",
                *extra])
    lines = capsys.readouterr().out.splitlines()
    return {line.split()[0]: np.array([float(f.split("=")[1]) for f in line.split()[2:-1]])
            for line in lines}


def test_infer_reproduces_the_decoding_stage(recipe, capsys, tmp_path, monkeypatch):
    """Raw wav + transcript through mser-infer == stored features through the decoding stage
    (mser-infer's probabilities are calibrated with the fold's dev temperatures, as decoding's
    posteriors_calibrated)."""
    monkeypatch.chdir(recipe)
    fold = recipe / "exp" / TAG / "fold1"
    data = recipe / "data" / "fold1" / "test"
    decoded = read_posteriors(fold / "decode" / "both" / "posteriors_calibrated")
    got = infer_lines(fold, data, capsys)
    assert len(got) == 4
    for utt, probs in got.items():
        np.testing.assert_allclose(probs, decoded[utt], atol=2e-3, err_msg=utt)
    # Without transcripts: the decoding stage's audio-only condition.
    audio_data = tmp_path / "audio_only"
    audio_data.mkdir()
    shutil.copy(data / "wav.scp", audio_data / "wav.scp")
    decoded_audio = read_posteriors(fold / "decode" / "audio_only" / "posteriors_calibrated")
    for utt, probs in infer_lines(fold, audio_data, capsys).items():
        np.testing.assert_allclose(probs, decoded_audio[utt], atol=2e-3, err_msg=utt)
    # An exported model dir gives the same answers.
    export_model(str(fold), str(tmp_path / "exported"))
    exported = infer_lines(tmp_path / "exported", data, capsys)
    assert exported.keys() == got.keys()
    for utt, probs in exported.items():
        np.testing.assert_allclose(probs, got[utt], atol=1e-6)


def test_asr_text_source(recipe, ctc_asr_dir):
    """--test_text asr: stage 2 transcribes data/all (a tiny CTC model that hears 'a' in
    everything), dumps its text features and the fold's ASR test set, which names the utterance
    the ASR could not read; decoding reads them, scoring reports the WER; the model trained on
    gold text. --train_text asr: training reads the fold's ASR train/dev sets and features."""
    assert not (recipe / "data" / "all_asr").exists()  # gold text only: no ASR step
    bad = sorted(read_table(recipe / "data" / "fold1" / "test" / "utt2emo"))[-1]
    wav = os.path.join(recipe, read_table(recipe / "data" / "all" / "wav.scp")[bad])
    os.replace(wav, wav + ".orig")
    try:
        with open(wav, "wb") as f:
            f.write(b"RIFF\x00\x00not a wav file")
        out = run_recipe(recipe, "--stage", "2", "--folds", "1", "--test_text", "asr",
                         "--asr_model", ctc_asr_dir, "--train_opts", "--epochs 1 --min-steps 0")
    finally:
        os.replace(wav + ".orig", wav)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{bad} not transcribed by the ASR (cannot read audio" in out.stderr
    assert set(read_table(recipe / "data" / "all_asr" / "text").values()) == {"a"}
    asr_test = recipe / "data" / "fold1" / "asr" / "test"
    assert list(read_table(asr_test / "skipped")) == [bad]
    assert not (recipe / "data" / "fold1" / "asr" / "train").exists()
    exp = recipe / "exp" / f"{TAG}_traingold_testasr"
    train_cmd = (exp / "log" / "train.fold1.log").read_text().splitlines()[0]
    assert "--data-dir data/fold1 " in train_cmd and "dump/minilm/feats.scp" in train_cmd
    decode_cmd = (exp / "log" / "decode.fold1.log").read_text().splitlines()[0]
    assert "--data-dir data/fold1/asr/test " in decode_cmd
    assert "--text-feats dump/minilm_asr/feats.scp " in decode_cmd
    test_utts = set(read_table(recipe / "data" / "fold1" / "test" / "utt2emo")) - {bad}
    assert set(read_posteriors(exp / "fold1" / "decode" / "both" / "posteriors")) == test_utts
    wer = json.loads((exp / "scores.json").read_text())["wer"]["folds"][0]
    assert wer["not_transcribed"] == [bad] and wer["utterances"] == len(test_utts)
    assert wer["wer"] == data_dir_wer(recipe / "data" / "fold1" / "test", asr_test).wer > 0.5
    assert f"| {TAG}_traingold_testasr | {100 * wer['wer']:.2f} ± 0.00 |" in \
        (recipe / "RESULTS.md").read_text()

    out = run_recipe(recipe, "--stage", "2", "--stop_stage", "3", "--folds", "1",
                     "--train_text", "asr", "--test_text", "asr", "--asr_model", ctc_asr_dir,
                     "--train_config", "conf/tuning/text_only.yaml",
                     "--train_opts", "--epochs 1 --min-steps 0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "data/all_asr is complete" in out.stdout  # transcribed once
    train_cmd = (recipe / "exp" / "text_only_minilm_trainasr_testasr" / "log" /
                 "train.fold1.log").read_text().splitlines()[0]
    assert "--data-dir data/fold1/asr " in train_cmd and "dump/minilm_asr/feats.scp" in train_cmd
    assert read_table(recipe / "data" / "fold1" / "asr" / "dev" / "text")
