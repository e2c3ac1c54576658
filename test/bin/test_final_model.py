"""Stage 6: the final model on every fold's train and dev utterances (mser.bin.final_model)."""
import json
import os
import subprocess
import sys

import yaml

from mser.io.datadir import read_table
from mser.nets import load_model
from mser.utils.calibration import load_temperatures

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: test_train's helpers
from test_train import make_fold, run_train  # noqa: E402


def python(*args):
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_final_model_trains_on_train_and_dev_with_the_folds_epochs_and_gets_a_card(tmp_path):
    fold = make_fold(tmp_path)
    data = os.path.dirname(fold["data_dir"])
    (tmp_path / "data" / "protocol").write_text(
        "corpus TOY\ndescription one fold\nfolds fold1\ntests test\nheadline ua\nmetrics ua wa\n"
        "classes neu hap ang sad\n")
    exp = tmp_path / "exp" / "tag"
    run_train(fold, exp / "fold1", "--epochs", "5", "--average-checkpoints", "2")
    python("mser.bin.decode", "--exp-dir", str(exp / "fold1"), "--data-dir",
           os.path.join(fold["data_dir"], "test"))
    python("mser.bin.score", "--exp-dir", str(exp), "--folds", "1")
    done = yaml.safe_load((exp / "fold1" / ".done").read_text())

    opts = python("mser.bin.final_model", "prepare", "--exp-dir", str(exp), "--folds", "1",
                  "--data", data).stdout.split()
    # epochs: the last epoch fold 1's best.pt averaged; training data: its train + dev, no test
    assert opts == ["--epochs", str(max(done["averaged_epochs"])), "--average-checkpoints", "2"]
    final = exp / "final"
    utts = set(read_table(str(final / "data" / "train" / "utt2emo")))
    train, dev, test = (set(read_table(os.path.join(fold["data_dir"], s, "utt2emo")))
                        for s in ("train", "dev", "test"))
    assert utts == train | dev and not utts & test
    run_train({**fold, "data_dir": str(final / "data")}, final, "--no-dev", "true",
              "--average-checkpoints", "2", *opts)
    python("mser.bin.final_model", "card", "--exp-dir", str(exp), "--folds", "1", "--data", data)

    card = (final / "README.md").read_text()
    scores = json.loads((exp / "scores.json").read_text())
    assert "TOY" in card and f"{100 * scores['mean']['ua']:.2f}" in card
    assert f"{len(utts)} utterances" in card
    temperatures = load_temperatures(str(final))  # fitted on fold 1's test posteriors
    assert set(temperatures) == {"both", "audio_only", "text_only"}
    assert "cross-validation" in yaml.safe_load((final / "calibration.yaml").read_text())["method"]
    model, config = load_model(str(final))  # a model dir like any fold
    assert config["dev_utts"] == 0 and not model.training
