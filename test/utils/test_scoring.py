"""Scoring of decoded experiments: scores.json layout, mean/std over folds, RESULTS.md."""
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mser.data.protocol import write_protocol
from mser.scoring.aggregate import write_experiment_scores
from mser.scoring.paired import compare_experiments

CLASSES = ["neu", "hap", "ang", "sad"]


def write_decode(exp, fold, refs, conditions, decode="decode"):
    decode = exp / f"fold{fold}" / decode
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
                           "--protocol-file", str(tmp_path / "protocol"),
                           "--reference-tag", reference], capture_output=True, text=True)


def toy_protocol(directory, description, num_folds, headline="ua", tests=("test",)):
    folds = {f"fold{k}": dict.fromkeys(("train", "dev", *tests)) for k in range(1, num_folds + 1)}
    write_protocol(directory, "toy corpus", description, folds, headline, ("ua", "wa"), CLASSES)


def test_compare_and_results_md(tmp_path):
    root = tmp_path / "exp"
    make_exp(root, "full", [8, 8, 7])
    make_exp(root, "weak", [4, 3, 4], audio_only=False)
    (root / "full" / "fold1" / "config.yaml").write_text(
        "train_config: conf/train.yaml\ngit_commit: 0123456789abcdef0123456789abcdef01234567+dirty\n")
    result = compare_experiments(str(root / "full"), str(root / "weak"), [1, 2, 3], num_samples=200)
    assert result["a_right_b_wrong"] == 12 and result["b_right_a_wrong"] == 0
    assert result["diff"] > 0.4 and result["p_mcnemar"] < 0.01
    toy_protocol(tmp_path, "leave-one-speaker-out, 3 folds", 3)
    for tag in ("full", "weak"):
        out = run_score(tmp_path, root / tag, "1 2 3", "full")
        assert out.returncode == 0, out.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "- corpus: toy corpus; protocol: leave-one-speaker-out, 3 folds\n" in results
    assert "- headline metric: UA\n" in results
    assert ("| tag | config | commit | condition | UA | WA | F1 | UA pooled | UA audio only | "
            "UA text only |") in results
    assert "| full | conf/train.yaml | 0123456+dirty | both |" in results
    assert "| weak | ? | ? | both |" in results  # trained without a config.yaml
    assert "95.83 ± 7.22 | " in results  # full: UA 100, 100, 87.5
    assert "| 95.83 | 100.00 ± 0.00 |" in results  # pooled UA: 23 of 24, 6 per class
    assert "Test sets without every class" not in results
    assert "| weak | full | main | -" in results  # weak is worse than the reference
    # Under one condition both are decoded that way: text only, both predict "neu" everywhere.
    same = compare_experiments(str(root / "weak"), str(root / "full"), [1, 2, 3], "text_only",
                               num_samples=200)
    assert same["diff"] == 0 and same["a_right_b_wrong"] == same["b_right_a_wrong"] == 0
    assert "| weak | full | text_only | +0.00" in results
    assert "| weak | full | audio_only |" not in results  # weak was not decoded audio only
    with pytest.raises(ValueError, match="weak: condition audio_only was not decoded"):
        compare_experiments(str(root / "weak"), str(root / "full"), [1, 2, 3], "audio_only")
    # seeds: a list of runs per side; McNemar (one prediction per utterance) is left out
    seeds = compare_experiments([str(root / "full"), str(root / "full")], str(root / "weak"),
                                [1, 2, 3], num_samples=200)
    assert seeds["diff"] == result["diff"] and seeds["diff_95ci"] == result["diff_95ci"]
    assert seeds["p_mcnemar"] is None and seeds["a"] == "full+full"
    assert [run["pooled"] for run in seeds["runs_a"]] == [result["runs_a"][0]["pooled"]] * 2


def test_pooled_ua_counts_every_class_where_a_fold_lacks_one(tmp_path):
    """Fold 2's test set has no 'sad': its UA averages three classes; the pooled UA is over the
    four classes of all test utterances, and RESULTS.md says which fold lacks what."""
    exp = tmp_path / "exp" / "full"
    write_decode(exp, 1, [0, 1, 2, 3] * 2, {"both": [0, 1, 2, 3] * 2})
    write_decode(exp, 2, [0, 0, 1, 1, 2, 2], {"both": [0, 0, 1, 1, 3, 3]})  # ang -> sad
    toy_protocol(tmp_path, "2 folds", 2)
    out = run_score(tmp_path, exp, "1 2", "full")
    assert out.returncode == 0, out.stderr
    scores = json.loads((exp / "scores.json").read_text())
    assert [fold["ua"] for fold in scores["folds"]] == [1.0, pytest.approx(2 / 3)]
    assert scores["mean"]["ua"] == pytest.approx(5 / 6)
    assert scores["pooled"]["ua"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| both | 83.33 ± 23.57 | 83.33 ± 23.57 | 75.00 ± 35.36 | 87.50 | - | - |" in results
    assert "**Test sets without every class**: fold 2 has no sad." in results


def test_results_md_holds_the_tags_under_exp_and_names_unscorable_ones(tmp_path):
    """RESULTS.md is rebuilt from the exp dirs, never read back: a fresh clone that trains only
    the reference drops the other tags' rows; a tag that cannot be scored is reported, never
    dropped."""
    toy_protocol(tmp_path, "2 folds", 2)
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
    assert "partial has no scores on folds 1 2 (scores.json holds folds 1" in out.stderr
    after = (tmp_path / "RESULTS.md").read_text()
    assert not any(line.startswith("| weak |") for line in after.splitlines())
    assert "| partial | - | - | not scored on folds 1 2: scores.json holds folds 1" in after
    assert [line for line in after.splitlines() if line.startswith("| full |")] == \
        [line for line in before.splitlines() if line.startswith("| full |")]
    # The protocol comes from the file stage 0 wrote; without it scoring stops and says why.
    (tmp_path / "protocol").unlink()
    out = run_score(tmp_path, clone / "full", "1 2", "full")
    assert out.returncode != 0 and "protocol: not found; stage 0 (local/data.sh)" in out.stderr
    (tmp_path / "protocol").write_text("corpus toy\ndescription 2 folds\n")  # an old-style file
    out = run_score(tmp_path, clone / "full", "1 2", "full")
    assert out.returncode != 0 and "no folds, tests, headline, metrics, classes line" in out.stderr


def test_each_tag_is_tested_against_its_own_reference(tmp_path):
    """Ablations on two feature sets, each tested against the default config on its features (the
    reference stage 5 named, kept in scores.json), whichever tag a later run scores."""
    toy_protocol(tmp_path, "2 folds", 2)
    root = tmp_path / "exp"
    for tag, right, reference in (("train_fbank", [8, 8], None), ("train_ssl", [8, 6], None),
                                  ("ablation_fbank", [4, 4], "train_fbank"),
                                  ("ablation_ssl", [6, 6], "train_ssl")):
        make_exp(root, tag, right)
        assert run_score(tmp_path, root / tag, "1 2", reference or tag).returncode == 0
    assert json.loads((root / "ablation_ssl" / "scores.json").read_text())["reference_tag"] == \
        "train_ssl"
    out = run_score(tmp_path, root / "train_ssl", "1 2", "train_fbank")  # features compared
    assert out.returncode == 0, out.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| ablation_fbank | train_fbank | main | -50.00 " in results
    assert "| ablation_ssl | train_ssl | main | -12.50 " in results  # vs train_fbank: -25.00
    assert "| train_ssl | train_fbank | main | -12.50 " in results
    assert "| ablation_ssl | train_ssl | text_only |" in results
    assert not any(line.startswith("| train_fbank | train_fbank") for line in results.splitlines())


def test_headline_metric_and_further_test_subsets(tmp_path):
    """MELD-like: weighted F1 heads scores.txt and RESULTS.md (own column, single-modality
    columns); a second test subset (MSP-Podcast's test2) is scored and tabled on its own."""
    toy_protocol(tmp_path, "official split", 1, headline="weighted_f1", tests=("test", "test2"))
    exp = tmp_path / "exp" / "full"
    refs = [0, 0, 0, 0, 0, 0, 1, 2]  # skewed: weighted F1 differs from macro F1
    write_decode(exp, 1, refs, {"both": [0, 0, 0, 0, 0, 0, 1, 1], "audio_only": [0] * 8})
    write_decode(exp, 1, refs[:4], {"both": [0, 0, 1, 1], "audio_only": [0] * 4},
                 decode="decode_test2")
    out = run_score(tmp_path, exp, "1", "full")
    assert out.returncode == 0, out.stderr
    # test: F1 neu 1, hap 2/3, ang 0 -> weighted (6 + 2/3) / 8, macro (1 + 2/3 + 0) / 3
    scores = json.loads((exp / "scores.json").read_text())
    assert math.isclose(scores["mean"]["weighted_f1"], (6 + 2 / 3) / 8)
    assert math.isclose(scores["mean"]["macro_f1"], (1 + 2 / 3) / 3)
    lines = (exp / "scores.txt").read_text().splitlines()
    assert lines[0].endswith("headline wF1") and lines[1].split()[2:] == ["wF1", "UA", "WA", "F1"]
    assert lines[2].split()[2] == f"{100 * (6 + 2 / 3) / 8:.2f}"
    test2 = json.loads((exp / "scores_test2.json").read_text())
    assert test2["subset"] == "test2" and test2["mean"]["wa"] == 0.5
    results = (tmp_path / "RESULTS.md").read_text()
    assert ("| tag | config | commit | condition | UA | WA | F1 | wF1 | wF1 pooled | "
            "wF1 audio only | wF1 text only |") in results
    weighted = 100 * (6 + 2 / 3) / 8
    assert (f"| {weighted:.2f} ± 0.00 | {weighted:.2f} | {100 * 0.75 * 6 / 7:.2f} ± 0.00 | - |"
            in results)
    assert "**Test sets without every class**: fold 1 has no sad." in results
    assert "- headline metric: wF1\n" in results
    assert "Test set `test2` (the same models):" in results
    assert "| full | both | 66.67 ± 0.00 | 50.00 ± 0.00 | 50.00 ± 0.00 |" in results  # UA: neu only


def write_texts(data_dir, texts):
    data_dir.mkdir(parents=True)
    (data_dir / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))


def test_wer_of_asr_test_text_next_to_ua_wa(tmp_path):
    """--wer-dirs: WER per fold of known transcript pairs in scores.json, scores.txt and
    RESULTS.md, the utterances without a transcript counted and named; the row stays when another
    tag is scored."""
    root = tmp_path / "exp"
    make_exp(root, "asr", [8, 6])
    data = tmp_path / "data"
    write_texts(data / "fold1" / "test", {"spk1_u000": "a b c d"})
    write_texts(data / "fold1" / "asr", {"spk1_u000": "A, x c d."})  # 1 substitution / 4
    write_texts(data / "fold2" / "test", {"spk2_u000": "one two", "spk2_u001": "three"})
    write_texts(data / "fold2" / "asr", {"spk2_u000": "one two three"})  # 1 insertion / 2
    toy_protocol(tmp_path, "2 folds", 2)
    out = subprocess.run([sys.executable, "-m", "mser.bin.score", "--exp-dir", str(root / "asr"),
                          "--folds", "1 2", "--results", str(tmp_path / "RESULTS.md"),
                          "--protocol-file", str(tmp_path / "protocol"), "--wer-dirs",
                          str(data / "fold{fold}" / "test"), str(data / "fold{fold}" / "asr")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    wer = json.loads((root / "asr" / "scores.json").read_text())["wer"]
    assert [f["wer"] for f in wer["folds"]] == [0.25, 0.5]
    assert [f["not_transcribed"] for f in wer["folds"]] == [[], ["spk2_u001"]]
    assert math.isclose(wer["mean"], 0.375) and math.isclose(wer["pooled"], 2 / 6)
    assert math.isclose(wer["std"], np.std([0.25, 0.5], ddof=1))
    text = (root / "asr" / "scores.txt").read_text()
    assert "WER              2   50.00  (2 words, 1 utterances; 1 not transcribed: spk2_u001)" in text
    wer_row = "| asr | 37.50 ± 17.68 | 87.50 ± 17.68 | 87.50 ± 17.68 | 1 |"
    assert wer_row in (tmp_path / "RESULTS.md").read_text()

    make_exp(root, "gold", [8, 8])  # the WER row comes from the tag's scores.json
    out = run_score(tmp_path, root / "gold", "1 2", "gold")
    assert out.returncode == 0, out.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert wer_row in results and "| gold |" not in results.split("WER of the ASR")[1]


def test_every_tag_is_tested_against_the_probe_of_its_modalities(tmp_path):
    """Stage 5 names each tag's probe (--probe-tag, kept in scores.json); RESULTS.md tests the
    tag against it once the probe is trained, and keeps that row when the probe is scored again
    without the tag."""
    toy_protocol(tmp_path, "2 folds", 2)
    root = tmp_path / "exp"
    make_exp(root, "probe_ssl", [6, 6])
    make_exp(root, "train_ssl", [8, 7])
    score = [sys.executable, "-m", "mser.bin.score", "--folds", "1 2", "--results",
             str(tmp_path / "RESULTS.md"), "--protocol-file", str(tmp_path / "protocol"),
             "--reference-tag", "train_ssl", "--probe-tag", "probe_ssl", "--exp-dir"]
    for tag in ("train_ssl", "probe_ssl"):
        out = subprocess.run(score + [str(root / tag)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert json.loads((root / "train_ssl" / "scores.json").read_text())["probe_tag"] == "probe_ssl"
    results = (tmp_path / "RESULTS.md").read_text()
    probe_rows = [line for line in results.splitlines() if line.startswith("| train_ssl | probe_ssl")]
    assert len(probe_rows) == 1 and "| main | +18.75 [" in probe_rows[0], results
    assert "| probe_ssl | probe_ssl" not in results  # the probe is not tested against itself
    out = subprocess.run(score + [str(root / "probe_ssl")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kept = [line for line in (tmp_path / "RESULTS.md").read_text().splitlines()
            if line.startswith("| train_ssl | probe_ssl")]
    assert kept == probe_rows


def test_paired_tests_bootstrap_the_headline_metric(tmp_path):
    """With a weighted-F1 headline (MELD) the bootstrap compares weighted F1, and the tables
    say so; compare_experiments does the same for any metric it is given."""
    toy_protocol(tmp_path, "official split", 2, headline="weighted_f1")
    root = tmp_path / "exp"
    make_exp(root, "full", [8, 8])
    make_exp(root, "weak", [4, 4])
    for tag in ("full", "weak"):
        assert run_score(tmp_path, root / tag, "1 2", "full").returncode == 0
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| tag | reference | condition | ΔwF1 vs reference [95% CI] |" in results
    by_f1 = compare_experiments(str(root / "weak"), str(root / "full"), [1, 2],
                                metric="weighted_f1", num_samples=100)
    pooled = {tag: json.loads((root / tag / "scores.json").read_text())["pooled"]["weighted_f1"]
              for tag in ("weak", "full")}
    assert by_f1["metric"] == "weighted_f1"
    assert math.isclose(by_f1["diff"], pooled["weak"] - pooled["full"])
    assert f"| weak | full | main | {100 * by_f1['diff']:+.2f} [" in results


def rebuilt_results(tmp_path, root):
    """RESULTS.md rebuilt from the tags under ``root``, without its date line."""
    from mser.data.protocol import read_protocol
    from mser.scoring.results_md import write_results_md

    path = tmp_path / "RESULTS.md"
    write_results_md(str(path), str(root), [1, 2], "Results: toy",
                     read_protocol(tmp_path / "protocol"), "Notes.")
    return [line for line in path.read_text().splitlines() if not line.startswith("- date: ")]


def scored_exp_root(tmp_path):
    """Four tags scored as stage 5 scores them, each tested against ``full`` and ``probe``."""
    toy_protocol(tmp_path, "2 folds", 2)
    root = tmp_path / "exp"
    for tag, right in (("full", [8, 7]), ("mid", [6, 6]), ("probe", [5, 6]), ("weak", [4, 3])):
        make_exp(root, tag, right)
        for fold in (1, 2):
            (root / tag / f"fold{fold}" / "config.yaml").write_text(
                f"train_config: conf/tuning/{tag}.yaml\ngit_commit: c0ffee{fold}{'0' * 33}\n")
            (root / tag / f"fold{fold}" / "best.pt").write_bytes(b"checkpoint")
        write_experiment_scores(str(root / tag), [1, 2], reference_tag="full", probe_tag="probe")
    return root


def test_results_md_is_rebuilt_from_the_exp_dirs_alone(tmp_path):
    """The same exp dirs give the same RESULTS.md (but for the date); a deleted exp dir takes its
    rows along and leaves every other line as it was."""
    root = scored_exp_root(tmp_path)
    before = rebuilt_results(tmp_path, root)
    assert rebuilt_results(tmp_path, root) == before
    weak = [line for line in before if line.startswith("| weak |")]
    assert len(weak) == 5  # the table, the reference, the probe, audio only, text only
    shutil.rmtree(root / "weak")
    assert rebuilt_results(tmp_path, root) == [line for line in before if line not in weak]


def test_results_md_needs_no_checkpoints_nor_training_configs(tmp_path):
    """scores.json keeps the training record: RESULTS.md rebuilt from the scores and the decodes
    alone is the same as from the whole exp dirs."""
    root = scored_exp_root(tmp_path)
    before = rebuilt_results(tmp_path, root)
    assert "| mid | conf/tuning/mid.yaml | c0ffee1 | both |" in "\n".join(before)
    for path in [*root.glob("*/fold*/best.pt"), *root.glob("*/fold*/config.yaml")]:
        path.unlink()
    assert rebuilt_results(tmp_path, root) == before


def test_a_single_stream_tag_fills_its_own_column(tmp_path):
    """An audio-only model's main condition is audio_only: RESULTS.md shows its UA in the audio
    only column too, as for the both-stream tags."""
    from mser.data.protocol import read_protocol
    from mser.scoring.results_md import write_results_md

    exp = tmp_path / "exp" / "audio_tag"
    refs = [0, 1, 2, 3, 0, 1, 2, 3]
    for fold in (1, 2):
        write_decode(exp, fold, refs, {"audio_only": refs[:6] + [0, 0]})
    scores = write_experiment_scores(str(exp), [1, 2])
    assert scores["condition"] == "audio_only" and scores["conditions"] == ["audio_only"]
    toy_protocol(tmp_path, "2 folds", 2)
    path = tmp_path / "RESULTS.md"
    write_results_md(str(path), str(tmp_path / "exp"), [1, 2], "Results: toy",
                     read_protocol(tmp_path / "protocol"))
    row = next(line for line in path.read_text().splitlines() if line.startswith("| audio_tag |"))
    assert row.endswith("| 75.00 ± 0.00 | - |")
