"""Every corpus ``prepare_corpus`` offers: importing a corpus module registers it
(``register(Corpus(...))`` at its end, see :mod:`mser.data.corpus`). A new corpus is one module
``mser/data/<corpus>.py`` and its name in this import; clips of your own need none: ``table``
(a CSV/TSV) and ``folders`` (class folders), :mod:`mser.data.table`."""
from mser.data import crema_d, emodb, iemocap, meld, msp_podcast, ravdess, table  # noqa: F401
from mser.data.corpus import REGISTRY  # noqa: F401
