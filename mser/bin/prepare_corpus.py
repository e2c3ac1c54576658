"""Prepare Kaldi data dirs from a corpus as its owners distribute it.

Writes <data_dir>/all, <data_dir>/fold*/{train,dev,test} (an official split is fold1),
<data_dir>/protocol (the evaluation protocol and headline metric, "key value" lines) and
<data_dir>/skipped (every dropped source file with the reason; IEMOCAP names its drops on the
console only). Stage 0 prints the counts and checks them against the corpus's documented totals
(--expected-counts overrides them). The corpora are those of mser/data/corpora.py.
Examples:
  python -m mser.bin.prepare_corpus iemocap /corpora/IEMOCAP_full_release data --cv speaker
  python -m mser.bin.prepare_corpus meld /corpora/MELD.Raw data --nj 4
  python -m mser.bin.prepare_corpus msp_podcast /corpora/MSP-Podcast data --class-set 4class
  python -m mser.bin.prepare_corpus ravdess /corpora/RAVDESS data
  # a corpus module of your own (a .py file or an importable module that calls
  # mser.data.corpus.register), from a recipe's local/ without touching mser/:
  python -m mser.bin.prepare_corpus --corpus-module local/my_corpus.py my_corpus /corpora/X data
"""
import argparse
import importlib
import importlib.util
import inspect
import os
import sys

from mser.data.corpora import REGISTRY
from mser.io.datadir import DataDirError
from mser.utils.logging import setup_logging

COMMON = ("corpus", "root", "data_dir", "expected_counts", "verbose", "corpus_module")


def _totals(documented):
    text = ",".join(f"{k}={v}" for k, v in documented.items()) if documented else "none"
    return f"documented totals to check, 'key=count,...' or 'none' (default: {text})"


def _add_corpus(corpora, corpus):
    sub = corpora.add_parser(corpus.name, description=corpus.description,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("root", help="the corpus root (set it in the recipe's db.sh)")
    sub.add_argument("data_dir", help="output directory")
    sub.add_argument("--expected-counts", default=None, metavar="SPEC",
                     help=_totals(corpus.documented_totals))
    sub.add_argument("--verbose", type=int, default=1)
    corpus.add_arguments(sub)
    # Each option takes (and its help shows) the default of its parameter of prepare.
    parameters = inspect.signature(corpus.prepare).parameters
    sub.set_defaults(**{name: p.default for name, p in parameters.items()
                        if p.default is not p.empty and name not in COMMON})


def import_corpus_modules(argv):
    """Import every ``--corpus-module M`` of ``argv`` (a .py file or a module name; importing it
    registers its corpus) and return ``argv`` without them."""
    rest, argv = [], list(argv)
    while argv:
        arg = argv.pop(0)
        if arg != "--corpus-module" and not arg.startswith("--corpus-module="):
            rest.append(arg)
            continue
        if "=" in arg:
            module = arg.partition("=")[2]
        elif argv:
            module = argv.pop(0)
        else:
            sys.exit("prepare_corpus: --corpus-module needs a .py file or a module name")
        if module.endswith(".py"):
            if not os.path.isfile(module):
                sys.exit(f"prepare_corpus: --corpus-module {module}: no such file")
            name = f"mser_corpus_{os.path.splitext(os.path.basename(module))[0]}"
            spec = importlib.util.spec_from_file_location(name, module)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        else:
            importlib.import_module(module)
    return rest


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-module", metavar="M", help="import M first (a .py file or a "
                        "module that registers a corpus); repeatable")
    corpora = parser.add_subparsers(dest="corpus", required=True, metavar="CORPUS",
                                    help=f"{', '.join(sorted(REGISTRY))} (CORPUS --help for its "
                                         f"options)")
    for name in sorted(REGISTRY):
        _add_corpus(corpora, REGISTRY[name])
    return parser


def prepare(args):
    """Prepare the corpus ``args`` (parsed by :func:`get_parser`) name; DataDirError if the
    copy cannot be prepared."""
    corpus = REGISTRY[args.corpus]
    options = {k: v for k, v in vars(args).items() if k not in COMMON}
    corpus.prepare(args.root, args.data_dir,
                   expected_counts=corpus.expected_counts(args.expected_counts), **options)


def main(argv=None):
    argv = import_corpus_modules(sys.argv[1:] if argv is None else argv)
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        prepare(args)
    except DataDirError as e:
        sys.exit(f"prepare_corpus {args.corpus}: {e}")


if __name__ == "__main__":
    main()
