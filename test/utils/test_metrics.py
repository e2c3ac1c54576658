"""UA / WA / F1 against hand-computed values, and the paired significance tests."""
import math

import numpy as np
import pytest

from mser.utils.metrics import (confusion_matrix, macro_f1, mcnemar_test, paired_bootstrap,
                                score, unweighted_accuracy, weighted_accuracy, weighted_f1)


def test_hand_computed_values():
    # class 0: 3 refs, 2 right; class 1: 2 refs, 1 right; class 2: 1 ref, 1 right.
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    assert math.isclose(unweighted_accuracy(y_true, y_pred, 3), (2 / 3 + 1 / 2 + 1) / 3)
    assert math.isclose(weighted_accuracy(y_true, y_pred), 4 / 6)
    # F1: c0 = 2*2/(3+2) = .8; c1 = 2*1/(2+2) = .5; c2 = 2*1/(1+2) = 2/3
    assert math.isclose(macro_f1(y_true, y_pred, 3), (0.8 + 0.5 + 2 / 3) / 3)
    # weighted by the reference counts 3, 2, 1
    assert math.isclose(weighted_f1(y_true, y_pred, 3), (3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    # a class only predicted weighs nothing; one only in the reference counts with F1 = 0
    assert math.isclose(weighted_f1([0, 0, 1], [0, 2, 2], 3), (2 * 2 / 3 + 0) / 3)
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_class_absent_from_fold_is_not_a_zero_recall():
    # class 3 never occurs in the reference nor predictions: UA averages 3 classes, not 4.
    y_true, y_pred = [0, 1, 2, 2], [0, 1, 2, 1]
    assert math.isclose(unweighted_accuracy(y_true, y_pred, 4), (1 + 1 + 0.5) / 3)
    result = score(y_true, y_pred, ["neu", "hap", "ang", "sad"])
    assert result["recall"]["sad"] is None and result["recall"]["ang"] == 0.5
    # F1 ignores the class absent from both, but counts one only predicted (F1 = 0).
    assert math.isclose(macro_f1(y_true, y_pred, 4), (1 + 2 / 3 + 2 / 3) / 3)
    assert math.isclose(macro_f1([0, 0], [0, 3], 4), (2 / 3 + 0) / 2)


def test_mcnemar_on_constructed_case():
    y = np.zeros(30, dtype=int)
    a = np.zeros(30, dtype=int)           # a right everywhere
    b = a.copy()
    b[:10] = 1                            # b wrong on 10 where a is right
    a_only, b_only, p = mcnemar_test(y, a, b)
    assert (a_only, b_only) == (10, 0)
    assert math.isclose(p, 2 * 0.5 ** 10)
    assert mcnemar_test(y, a, a)[2] == 1.0


def test_bootstrap_separates_clear_from_noise():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.9, y, (y + 1) % 4)
    bad = np.where(rng.random(400) < 0.6, y, (y + 1) % 4)
    diff, (low, high), p = paired_bootstrap(y, good, bad, 4, num_samples=300)
    assert 0.2 < diff < 0.4 and low > 0 and p < 0.01
    assert p == pytest.approx(2 / 301)   # no resample crosses zero: the smallest p, never 0
    _, (low, high), p = paired_bootstrap(y, good, good, 4, num_samples=50)
    assert p == 1.0 and low == high == 0
    as_good = np.where(rng.random(400) < 0.9, y, (y + 1) % 4)  # same quality, other errors
    diff, (low, high), p = paired_bootstrap(y, as_good, good, 4, num_samples=300)
    assert abs(diff) < 0.05 and low < 0 < high and p > 0.05


def test_bootstrap_over_seeds_scores_all_runs_and_resamples_utterances():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 50)
    runs = [np.where(rng.random(200) < q, y, (y + 1) % 4) for q in (0.9, 0.7)]
    probe = np.where(rng.random(200) < 0.6, y, (y + 1) % 4)
    one = paired_bootstrap(y, runs[0], probe, 4, num_samples=100)
    assert paired_bootstrap(y, [runs[0]], [probe], 4, num_samples=100) == one
    diff, (low, high), _ = paired_bootstrap(y, runs, probe, 4, num_samples=200)
    # classes of equal size: UA over both runs' predictions is the mean of their UAs
    mean_ua = np.mean([unweighted_accuracy(y, r, 4) for r in runs])
    assert diff == pytest.approx(mean_ua - unweighted_accuracy(y, probe, 4))
    assert low < diff < high
    # twice the same run: the same estimate and interval as the run alone
    assert paired_bootstrap(y, [runs[0], runs[0]], probe, 4, num_samples=100) == one
