"""Word error rate of recognised transcripts against reference ones (jiwer, pinned in setup.py).

Both sides are normalised the same way before alignment (:func:`normalize`): lower case;
every character that is not a letter, a digit or an apostrophe becomes a space (punctuation,
hyphens, brackets, IEMOCAP's ``[LAUGHTER]``-style tags keep their words: ``laughter``);
apostrophes are kept inside words (``can't``) and dropped at their edges; whitespace runs
collapse. Numbers are not spelt out ("3" and "three" differ), as in plain jiwer.

The WER is corpus-level: (substitutions + deletions + insertions) / reference words, summed
over the utterances both tables have. Utterances without a hypothesis (e.g. skipped by the
recogniser) and those whose normalised reference is empty are not scored; both are counted
and named in the result and on the console.
"""
import logging
import os
import re
from dataclasses import dataclass, field

from mser.io.datadir import c_sort_key, read_table

_NOT_WORD = re.compile(r"[^\w']|_")
_EDGE_APOSTROPHES = re.compile(r"(?<!\w)'+|'+(?!\w)")


def normalize(text):
    """The text WER compares: lower case, words of letters, digits and inner apostrophes."""
    text = _NOT_WORD.sub(" ", text.lower())
    return " ".join(_EDGE_APOSTROPHES.sub(" ", text).split())


@dataclass
class WordErrors:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0
    utterances: int = 0
    missing: list = field(default_factory=list)           # no hypothesis
    empty_references: list = field(default_factory=list)  # nothing left after normalize()

    @property
    def wer(self):
        errors = self.substitutions + self.deletions + self.insertions
        return errors / self.reference_words if self.reference_words else float("nan")

    def as_dict(self):
        return {"wer": self.wer, "substitutions": self.substitutions,
                "deletions": self.deletions, "insertions": self.insertions,
                "reference_words": self.reference_words, "utterances": self.utterances,
                "missing": len(self.missing), "empty_references": len(self.empty_references)}


def word_errors(references, hypotheses):
    """WordErrors of ``hypotheses`` against ``references`` ({utt: text} each)."""
    import jiwer

    result = WordErrors()
    pairs = []
    for utt in sorted(references, key=c_sort_key):
        reference = normalize(references[utt])
        if utt not in hypotheses:
            result.missing.append(utt)
        elif not reference:
            result.empty_references.append(utt)
        else:
            pairs.append((reference, normalize(hypotheses[utt])))
    if pairs:
        out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
        result.substitutions, result.deletions = out.substitutions, out.deletions
        result.insertions = out.insertions
        result.reference_words = out.hits + out.substitutions + out.deletions
    result.utterances = len(pairs)
    for label, utts in (("no hypothesis", result.missing),
                        ("an empty reference", result.empty_references)):
        if utts:
            logging.warning("WER: %d utterance(s) with %s not scored (e.g. %s)", len(utts), label,
                            ", ".join(utts[:5]))
    return result


def data_dir_wer(reference_dir, hypothesis_dir):
    """WordErrors of ``<hypothesis_dir>/text`` against ``<reference_dir>/text``, over the
    utterances of the reference dir (e.g. ``data/fold1/test`` vs ``data/fold1/test_asr``)."""
    def text(data_dir):
        return read_table(os.path.join(data_dir, "text"), allow_empty_value=True)

    return word_errors(text(reference_dir), text(hypothesis_dir))
