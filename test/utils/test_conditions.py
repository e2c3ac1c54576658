"""Stream conditions: every non-empty subset of a model's streams, named and ordered."""
import random

from mser.utils.conditions import condition_order, conditions_for, stream_conditions


def test_two_streams_keep_the_names_of_the_recipes():
    assert stream_conditions(["audio", "text"]) == {
        "both": ("audio", "text"), "audio_only": ("audio",), "text_only": ("text",)}
    assert conditions_for(["text"]) == ["text_only"]


def test_three_streams_give_every_subset_the_full_set_first():
    conditions = stream_conditions(["audio", "text", "video"])
    assert list(conditions) == ["all", "audio+text", "audio+video", "text+video", "audio_only",
                                "text_only", "video_only"]
    assert conditions["text+video"] == ("text", "video")
    shuffled = list(conditions)
    random.Random(0).shuffle(shuffled)
    assert sorted(shuffled, key=condition_order) == list(conditions)
