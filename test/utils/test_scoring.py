"""Scoring of decoded experiments: scores.json layout, mean/std over folds, RESULTS.md."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from mser.scoring.aggregate import write_experiment_scores
from mser.scoring.paired import compare_experiments

CLASSES = ["neu", "hap", "ang", "sad"]


def write_decode(exp, fold, refs, conditions):
    decode = exp / f"fold{fold}" / "decode"
    decode.mkdir(parents=True)
    (decode / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    utts = [f"spk{fold}_u{i:03d}" for i in range(len(refs))]
    (decode / "utt2emo").write_text("".join(f"{u} {CLASSES[r]}\n" for u, r in zip(utts, refs)))
    for condition, preds in conditions.items():
        (decode / condition).mkdir()
        (decode / condition / "predictions").write_text(
            "".join(f"{u} {CLASSES[p]}\n" for u, p in zip(utts, preds)))


def make_exp(root, tag, right_per_fold, audio_only=True):
    """Fold f: 8 utterances (2 per class); the first right_per_fold[f] are predicted right."""
    exp = root / tag
    refs = [0, 1, 2, 3, 0, 1, 2, 3]
    for fold, n_right in enumerate(right_per_fold, 1):
        preds = [r if i < n_right else (r + 1) % 4 for i, r in enumerate(refs)]
        conditions = {"both": preds, "text_only": [0] * 8}
        if audio_only:
            conditions["audio_only"] = refs
        write_decode(exp, fold, refs, conditions)
    return exp


def test_scores_json_per_fold_mean_std(tmp_path):
    exp = make_exp(tmp_path / "exp", "full", [8, 6, 4])
    write_experiment_scores(str(exp), [1, 2, 3])
    scores = json.loads((exp / "scores.json").read_text())
    assert [f["ua"] for f in scores["folds"]] == [1.0, 0.75, 0.5]
    assert [f["wa"] for f in scores["folds"]] == [1.0, 0.75, 0.5]
    assert math.isclose(scores["mean"]["ua"], 0.75)
    assert math.isclose(scores["std"]["ua"], np.std([1, 0.75, 0.5], ddof=1))
    assert scores["condition"] == "both"
    assert scores["audio_only"]["mean"]["ua"] == 1.0
    assert scores["text_only"]["mean"]["ua"] == 0.25 and scores["text_only"]["mean"]["wa"] == 0.25
    assert scores["pooled"]["num_utts"] == 24
    assert (exp / "confusion.png").stat().st_size > 1000
    assert "mean" in (exp / "scores.txt").read_text()


def test_missing_prediction_is_an_error(tmp_path):
    exp = make_exp(tmp_path / "exp", "full", [8])
    pred = exp / "fold1" / "decode" / "both" / "predictions"
    pred.write_text("".join(pred.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(ValueError, match="1 test utterance.*no prediction.*spk1_u000"):
        write_experiment_scores(str(exp), [1])


def run_score(tmp_path, exp, folds, reference):
    return subprocess.run([sys.executable, "-m", "mser.bin.score", "--exp-dir", str(exp),
                           "--folds", folds, "--results", str(tmp_path / "RESULTS.md"),
                           "--protocol-file", str(tmp_path / "protocol.txt"),
                           "--reference-tag", reference], capture_output=True, text=True)


def test_compare_and_results_md(tmp_path):
    root = tmp_path / "exp"
    make_exp(root, "full", [8, 8, 7])
    make_exp(root, "weak", [4, 3, 4], audio_only=False)
    (root / "full" / "fold1" / "config.yaml").write_text(
        "train_config: conf/train.yaml\ngit_commit: 0123456789abcdef0123456789abcdef01234567+dirty\n")
    result = compare_experiments(str(root / "full"), str(root / "weak"), [1, 2, 3], num_samples=200)
    assert result["a_right_b_wrong"] == 12 and result["b_right_a_wrong"] == 0
    assert result["ua_diff"] > 0.4 and result["p_mcnemar"] < 0.01
    (tmp_path / "protocol.txt").write_text("toy corpus, leave-one-speaker-out, 3 folds\n")
    for tag in ("full", "weak"):
        out = run_score(tmp_path, root / tag, "1 2 3", "full")
        assert out.returncode == 0, out.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "- protocol: toy corpus, leave-one-speaker-out, 3 folds\n" in results
    assert "| full | conf/train.yaml | 0123456+dirty | both |" in results
    assert "| weak | ? | ? | both |" in results  # trained without a config.yaml
    assert "95.83 ± 7.22" in results  # full: UA 100, 100, 87.5
    assert "| weak | main | -" in results  # weak is worse than the reference
    # Under one condition both are decoded that way: text only, both predict "neu" everywhere.
    same = compare_experiments(str(root / "weak"), str(root / "full"), [1, 2, 3], "text_only",
                               num_samples=200)
    assert same["ua_diff"] == 0 and same["a_right_b_wrong"] == same["b_right_a_wrong"] == 0
    assert "| weak | text_only | +0.00" in results
    assert "| weak | audio_only |" not in results  # weak was not decoded audio only
    with pytest.raises(ValueError, match="weak: condition audio_only was not decoded"):
        compare_experiments(str(root / "weak"), str(root / "full"), [1, 2, 3], "audio_only")


def test_results_md_keeps_rows_of_tags_not_run_and_names_unscorable_ones(tmp_path):
    """A fresh clone that trains only the reference keeps the other tags' rows (and their tests)
    from the committed RESULTS.md; a tag that cannot be scored is reported, never dropped."""
    (tmp_path / "protocol.txt").write_text("toy, 2 folds\n")
    first = tmp_path / "first"
    make_exp(first, "full", [8, 7])
    make_exp(first, "weak", [4, 3])
    for tag in ("weak", "full"):
        assert run_score(tmp_path, first / tag, "1 2", "full").returncode == 0
    before = (tmp_path / "RESULTS.md").read_text()
    weak_rows = [line for line in before.splitlines() if line.startswith("| weak |")]
    assert len(weak_rows) == 4  # the table, the main test, audio only, text only

    clone = tmp_path / "clone"  # trains the reference again, and a tag on one fold only
    make_exp(clone, "full", [8, 7])
    make_exp(clone, "partial", [8])
    write_experiment_scores(str(clone / "partial"), [1])
    out = run_score(tmp_path, clone / "full", "1 2", "full")
    assert out.returncode == 0, out.stderr
    assert "partial cannot be scored on folds 1 2" in out.stderr
    after = (tmp_path / "RESULTS.md").read_text()
    assert [line for line in after.splitlines() if line.startswith("| weak |")] == weak_rows
    assert "Kept from the previous RESULTS.md (not scored in this run" in after
    assert "| partial | - | - | not scored on folds 1 2: " in after
    assert [line for line in after.splitlines() if line.startswith("| full |")] == \
        [line for line in before.splitlines() if line.startswith("| full |")]
    # The protocol comes from the file stage 0 wrote; without it scoring stops and says why.
    (tmp_path / "protocol.txt").unlink()
    out = run_score(tmp_path, clone / "full", "1 2", "full")
    assert out.returncode != 0 and "protocol.txt: not found; stage 0 (local/data.sh)" in out.stderr
