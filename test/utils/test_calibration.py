"""Temperature scaling and the expected calibration error (mser.utils.calibration)."""
import numpy as np
import pytest

from mser.utils.calibration import (CALIBRATION, calibration_summary, expected_calibration_error,
                                    fit_temperature, load_temperatures, reliability,
                                    save_calibration, softmax)


def calibrated_toy(n=4000, classes=4, seed=0):
    """Logits whose softmax is the true label distribution: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, classes))
    probs = softmax(logits)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return logits, labels


@pytest.mark.parametrize("scale", [4.0, 0.3])
def test_temperature_scaling_undoes_over_and_under_confidence_without_changing_the_argmax(scale):
    """A model whose logits are ``scale`` times the calibrated ones (4: over-confident, 0.3:
    under-confident) gets T close to ``scale``, a much lower ECE and NLL, the same predictions."""
    logits, labels = calibrated_toy()
    distorted = logits * scale
    temperature = fit_temperature(distorted, labels)
    assert temperature == pytest.approx(scale, rel=0.15)
    summary = calibration_summary(distorted, labels, temperature)
    assert summary["ece"] > 0.08
    assert summary["ece_calibrated"] < summary["ece"] / 3
    assert summary["nll_calibrated"] < summary["nll"]
    np.testing.assert_array_equal(softmax(distorted, temperature).argmax(-1),
                                  distorted.argmax(-1))


def test_a_calibrated_model_keeps_a_temperature_near_one_and_a_small_ece():
    logits, labels = calibrated_toy(seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)
    assert expected_calibration_error(softmax(logits), labels) < 0.03


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy_per_bin():
    # Two bins used: confidence 0.95 (2 utts, 1 right) and 0.55 (2 utts, both right).
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    counts, confidence, accuracy = reliability(probs, labels, bins=10)
    assert counts.sum() == 4 and counts[9] == 2 and counts[5] == 2
    assert accuracy[9] == 0.5 and accuracy[5] == 1.0
    expected = (2 * abs(0.5 - 0.95) + 2 * abs(1.0 - 0.55)) / 4
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(expected)


def test_saved_temperatures_round_trip_and_bad_ones_are_refused(tmp_path):
    assert load_temperatures(str(tmp_path)) == {}
    logits, labels = calibrated_toy(n=200)
    summary = calibration_summary(logits, labels, 1.5)
    save_calibration(str(tmp_path), {"both": 1.5, "audio_only": 0.8},
                     {"both": summary, "audio_only": summary}, 200)
    assert load_temperatures(str(tmp_path)) == {"both": 1.5, "audio_only": 0.8}
    (tmp_path / CALIBRATION).write_text("conditions: {both: {temperature: 0}}\n")
    with pytest.raises(ValueError, match="positive"):
        load_temperatures(str(tmp_path))
