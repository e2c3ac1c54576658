"""Wall time per named section of a run, so that a log says where a training's time went.

    timer = SectionTimer()
    with timer("forward"):
        ...
    timer.summary()  # "forward 12.3 s (61 %), backward 5.0 s (25 %), ..."
"""
import contextlib
import time


class SectionTimer:
    def __init__(self):
        self.seconds = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, section):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[section] = self.seconds.get(section, 0.0) + time.perf_counter() - start

    def elapsed(self):
        return time.perf_counter() - self.started

    def sections(self):
        """{section: seconds}, longest first, with 'other' for the time no section covers."""
        parts = dict(sorted(self.seconds.items(), key=lambda item: -item[1]))
        parts["other"] = max(0.0, self.elapsed() - sum(self.seconds.values()))
        return parts

    def summary(self):
        """The sections (:meth:`sections`) with their share of the time since the timer was
        made."""
        total = max(self.elapsed(), 1e-9)
        return ", ".join(f"{name} {seconds:.1f} s ({100 * seconds / total:.0f} %)"
                         for name, seconds in self.sections().items())
