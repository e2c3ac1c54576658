"""Scoring of decoded experiments, one module per job: ``decodes`` (reading what decoding
wrote), ``aggregate`` (per fold, pooled, mean +/- std; scores.json / scores.txt), ``plots``
(confusion matrices), ``paired`` (significance tests between experiments), ``results_md``
(the recipe's RESULTS.md).

Layout read (written by ``mser.bin.decode``)::

    exp/<tag>/fold<k>/decode/classes.txt        class names, one per line (index order)
    exp/<tag>/fold<k>/decode/utt2emo            reference labels of the test set
    exp/<tag>/fold<k>/decode/<condition>/predictions   <utt> <label>
    exp/<tag>/fold<k>/decode/<condition>/posteriors    <utt> <p_0> ... <p_C-1>
    exp/<tag>/fold<k>/decode/<condition>/posteriors_calibrated   the same, temperature-scaled

A test subset other than ``test`` (data/protocol ``tests``, e.g. MSP-Podcast's ``test2``) is
decoded to ``fold<k>/decode_<subset>/`` and scored to ``scores_<subset>.{json,txt}``.

Conditions: ``both`` (all modalities), ``audio_only``, ``text_only``. A single-modality model
only has its own condition, which is then its main result.
"""
