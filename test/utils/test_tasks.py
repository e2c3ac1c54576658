"""The task types (mser.utils.tasks): config checks, losses that skip unlabelled utterances,
metrics."""
import numpy as np
import pytest
import torch

from mser.utils.tasks import (TASK_TYPES, TaskConfigError, auxiliary, concordance, labels_file,
                              resolve_tasks)
from mser.utils.metrics import ccc, paired_bootstrap, pcc


def test_default_is_emotion_alone_and_emotion_goes_first():
    assert resolve_tasks({}) == {"emotion": {"type": "classification", "weight": 1.0,
                                             "loss": "ce"}}
    tasks = resolve_tasks({"arousal": {"type": "regression"}, "emotion": {"weight": 2}})
    assert list(tasks) == ["emotion", "arousal"] and tasks["arousal"]["loss"] == "ccc"
    assert list(auxiliary(tasks)) == ["arousal"]
    assert labels_file("emotion") == "utt2emo" and labels_file("arousal") == "utt2arousal"


@pytest.mark.parametrize("tasks, message", [
    ({"arousal": {"type": "regression"}}, "without emotion"),
    ({"emotion": {"type": "regression"}}, "tasks.emotion: the emotion categories are a "
                                          "classification"),
    ({"emotion": {}, "arousal": {"type": "ordinal"}}, "tasks.arousal.type: 'ordinal'"),
    ({"emotion": {}, "arousal": {"type": "regression", "loss": "ce"}},
     "tasks.arousal.loss: 'ce' is not one of ['ccc', 'mse']"),
    ({"emotion": {}, "arousal": {"weight": 0}}, "tasks.arousal.weight: 0 is not a positive"),
    ({"emotion": {}, "arousal": {"scale": 5}}, "tasks.arousal: unknown key(s) ['scale']"),
    ({"emotion": {}, "Arousal": {}}, "'Arousal' is no task name"),
])
def test_a_bad_tasks_section_names_the_key(tasks, message):
    with pytest.raises(TaskConfigError, match=None) as error:
        resolve_tasks(tasks)
    assert message in str(error.value)


def test_ccc_is_one_only_for_agreement_and_penalises_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=200)
    ref -= ref.mean()
    assert ccc(ref, ref) == pytest.approx(1.0)
    assert pcc(ref, ref + 3) == pytest.approx(1.0) and ccc(ref, ref + 3) < 0.2
    assert ccc(ref, -ref) == pytest.approx(-1.0)
    torch_value = concordance(torch.tensor(ref + 0.5), torch.tensor(ref))
    assert float(torch_value) == pytest.approx(ccc(ref, ref + 0.5), rel=1e-6)


@pytest.mark.parametrize("loss", ["ccc", "mse"])
def test_a_regression_loss_leaves_unlabelled_utterances_out(loss):
    regression = TASK_TYPES["regression"]
    output = torch.tensor([[1.0], [2.0], [30.0], [4.0]], requires_grad=True)
    target = torch.tensor([1.0, 2.0, float("nan"), 4.0])
    value = regression.loss(output, target, {"loss": loss})
    assert value.item() == pytest.approx(0.0, abs=1e-6)  # the labelled three agree exactly
    value.backward()
    assert output.grad[2, 0] == 0
    none = regression.loss(output, torch.full((4,), float("nan")), {"loss": loss})
    assert none.item() == 0.0 and none.requires_grad


def test_a_classification_loss_ignores_the_missing_label_and_scores_by_argmax():
    classification = TASK_TYPES["classification"]
    output = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    labelled = classification.loss(output[:2], torch.tensor([0, 1]), {})
    assert float(classification.loss(output, torch.tensor([0, 1, -1]), {})) == pytest.approx(
        float(labelled))
    scores = classification.score(np.array([0, 1, 1]), output.numpy(), ["a", "b"])
    assert scores["wa"] == pytest.approx(2 / 3) and scores["ua"] == pytest.approx(0.75)
    assert classification.prediction(np.array([0.1, 0.9]), ["a", "b"]) == "b"
    assert list(classification.labelled(np.array([0, -1, 2]))) == [True, False, True]


def test_the_paired_bootstrap_of_ccc_finds_the_better_regressor():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=300)
    good, poor = ref + 0.3 * rng.normal(size=300), ref + 1.5 * rng.normal(size=300)
    diff, (low, high), p = paired_bootstrap(ref, good, poor, 0, "ccc", num_samples=300)
    assert diff == pytest.approx(ccc(ref, good) - ccc(ref, poor)) and low > 0 and p < 0.01


def test_a_prediction_line_names_every_task():
    from mser.utils.prediction import Prediction

    regression, classification = TASK_TYPES["regression"], TASK_TYPES["classification"]
    prediction = Prediction(
        emotion="ang", probabilities={"ang": 0.75, "neu": 0.25}, modalities=("audio",),
        tasks={"arousal": regression.prediction(np.array([3.14159]), None),
               "sentiment": classification.prediction(np.array([0.1, 2.0]), ["neg", "pos"])})
    assert prediction.format() == "ang ang=0.750 neu=0.250 arousal=3.1416 sentiment=pos (audio)"


def test_an_auxiliary_classification_pools_folds_with_other_training_classes(tmp_path):
    """A classification's classes are each fold's training labels: a fold whose training split
    lacked 'pos' numbers 'neu' 1, the other fold 2. Pooled, both folds' labels and predictions
    mean the same classes."""
    from mser.scoring.aggregate import score_task

    folds = {1: (["neg", "neu", "pos"], {"a": "neg", "b": "neu", "c": "pos"},
                 {"a": "neg", "b": "neu", "c": "pos"}),
             2: (["neg", "neu"], {"d": "neu", "e": "neg"}, {"d": "neu", "e": "neu"})}
    for fold, (classes, refs, preds) in folds.items():
        decode = tmp_path / f"fold{fold}" / "decode"
        (decode / "both").mkdir(parents=True)
        (decode / "utt2polarity").write_text("".join(f"{u} {v}\n" for u, v in refs.items()))
        (decode / "both" / "predictions_polarity").write_text(
            "".join(f"{u} {v}\n" for u, v in preds.items()))
        (decode / "both" / "classes_polarity.txt").write_text("\n".join(classes) + "\n")
    scores = score_task(str(tmp_path), [1, 2], "both", "polarity", "classification")
    assert scores["classes"] == ["neg", "neu", "pos"]
    utts, ref, pred = scores["_pooled_predictions"]
    assert utts == ["fold1/a", "fold1/b", "fold1/c", "fold2/d", "fold2/e"]
    assert list(ref) == [0, 1, 2, 1, 0] and list(pred) == [0, 1, 2, 1, 1]
    assert scores["pooled"]["wa"] == pytest.approx(4 / 5)
    assert scores["pooled"]["recall"] == {"neg": 0.5, "neu": 1.0, "pos": 1.0}
