"""SectionTimer: where a run's time goes."""
import time

from mser.utils.timing import SectionTimer


def test_sections_add_up_longest_first_with_the_rest_as_other():
    timer = SectionTimer()
    for _ in range(2):
        with timer("forward"):
            time.sleep(0.02)
    with timer("backward"):
        time.sleep(0.01)
    time.sleep(0.01)
    assert timer.seconds["forward"] >= 0.04 and 0.01 <= timer.seconds["backward"] < 0.04
    names = [part.split(" ")[0] for part in timer.summary().split(", ")]
    assert names == ["forward", "backward", "other"]


def test_a_section_that_raises_is_still_counted():
    timer = SectionTimer()
    try:
        with timer("data"):
            time.sleep(0.01)
            raise StopIteration
    except StopIteration:
        pass
    assert timer.seconds["data"] >= 0.01
