"""WER (jiwer) after the documented normalisation, on pairs whose errors are counted by hand."""
import math

import pytest

from mser.scoring.wer import data_dir_wer, normalize, word_errors


@pytest.mark.parametrize("text, want", [
    ("The quick brown Fox.", "the quick brown fox"),
    ("I can't -- won't! 'cause it's the dogs' bone", "i can't won't cause it's the dogs bone"),
    ("well-known [LAUGHTER]  yes,no", "well known laughter yes no"),
    ("Ça va? 3 dogs_", "ça va 3 dogs"),
    ("...", ""),
])
def test_normalize(text, want):
    assert normalize(text) == want


def test_word_errors_on_known_pairs(caplog):
    references = {"u1": "The quick brown fox jumps over the lazy dog.",  # 9 words
                  "u2": "I can't believe it!",                          # 4 words
                  "u3": "Hello there",                                  # no hypothesis
                  "u4": "[...]"}                                        # empty after normalize
    hypotheses = {"u1": "the quick brown fox jump over the lazy dog",   # 1 substitution
                  "u2": "i can not believe it",                        # 1 sub + 1 insertion
                  "u4": "uh", "extra": "ignored"}
    result = word_errors(references, hypotheses)
    assert (result.substitutions, result.deletions, result.insertions) == (2, 0, 1)
    assert result.reference_words == 13 and result.utterances == 2
    assert result.wer == pytest.approx(3 / 13)
    assert result.missing == ["u3"] and result.empty_references == ["u4"]
    assert "1 utterance(s) with no hypothesis not scored (e.g. u3)" in caplog.text
    deletions = word_errors({"a": "one two three"}, {"a": "two"})
    assert (deletions.deletions, deletions.wer) == (2, pytest.approx(2 / 3))
    assert math.isnan(word_errors({}, {}).wer)


def test_data_dir_wer(tmp_path):
    for name, text in (("ref", "a Hello, world.\nb good bye\n"), ("hyp", "a hello word\nb \n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "text").write_text(text)
    result = data_dir_wer(tmp_path / "ref", tmp_path / "hyp")
    assert (result.substitutions, result.deletions, result.reference_words) == (1, 2, 4)
    assert result.as_dict()["wer"] == pytest.approx(0.75)
