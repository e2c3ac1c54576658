"""hf_text with the packaged pre-trained MiniLM: shapes, special tokens, determinism, empty text."""
import logging

import numpy as np
import pytest

from mser.features import build_extractor
from mser.features.dump import merge, run_job
from mser.io.storage import load_feat_conf, open_feats


@pytest.fixture(scope="module")
def minilm():
    return build_extractor({"extractor": "hf_text", "layers": [3, 6]})


def test_shape_counts_special_tokens(minilm):
    text = "I can't believe you did that"
    feats = minilm.extract_text(text)
    num_tokens = len(minilm.tokenizer(text)["input_ids"])
    assert num_tokens == len(minilm.tokenizer.tokenize(text)) + 2  # [CLS] ... [SEP]
    assert feats.shape == (num_tokens, 384 * 2) and feats.dtype == np.float32
    assert minilm.dim == 384 and minilm.num_layers == 2 and minilm.modality == "text"


def test_deterministic_and_batch_independent(minilm):
    texts = ["hello", "that is wonderful news, really wonderful", "no"]
    first = minilm.extract_batch(texts)
    again = [minilm.extract_text(t) for t in texts]
    for a, b in zip(first, again):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(minilm.extract_text(texts[1]), minilm.extract_text(texts[1]))


def test_empty_and_tag_only_text(minilm):
    empty, tags = minilm.extract_batch(["", "[LAUGHTER] <noise>"])
    assert empty.shape == tags.shape == (2, 768)
    np.testing.assert_allclose(empty, tags, atol=1e-6)
    with_tag = minilm.extract_text("oh [BREATHING] really")
    np.testing.assert_allclose(with_tag, minilm.extract_text("oh really"), atol=1e-6)


def test_dump_logs_empty_transcripts(make_data_dir, tmp_path, caplog):
    texts = {"spk1_a": "", "spk1_b": "[LAUGHTER]", "spk2_a": "yes of course"}
    data = make_data_dir({u: 0.5 for u in texts}, texts=texts)
    conf = {"extractor": "hf_text", "model_dir": None, "hf_repo": None, "layers": "last",
            "layer_reduce": None, "batch_size": 2, "max_length": 512, "truncation_side": "right",
            "tag_pattern": r"\[[^\]]*\]|<[^>]*>", "compress": False, "compression_method": 2,
            "skip_bad": False}
    out = str(tmp_path / "dump")
    with caplog.at_level(logging.WARNING):
        run_job(conf, data, out, 1, 1)
    assert "2 transcript(s) empty after removing tags" in caplog.text
    merge(conf, data, out, 1)
    feats = open_feats(f"{out}/feats.scp")
    assert sorted(feats) == sorted(texts)
    assert feats["spk1_a"].shape == (2, 384)
    assert load_feat_conf(out)["frame_rate"] is None


def test_tag_pattern_rule_and_a_bad_pattern():
    from mser.features import FeatureConfigError
    from mser.features.transcript import clean_transcript, is_empty_transcript

    assert clean_transcript(" [LAUGHTER] so  <noise> funny ", r"\[[^\]]*\]|<[^>]*>") == "so funny"
    assert [is_empty_transcript(t) for t in (None, "", " [LAUGHTER] <noise> ", "[x] hi")] == \
        [True, True, True, False]
    assert not is_empty_transcript("[LAUGHTER]", {"tag_pattern": None})  # null keeps the tags
    with pytest.raises(FeatureConfigError, match=r"tag_pattern: '\[unclosed' is not a regular"):
        build_extractor({"extractor": "hf_text", "tag_pattern": "[unclosed"})


def test_truncation_side_left_keeps_the_end_of_a_long_text():
    """A dialogue context keeps its latest turns: truncation_side left cuts the beginning."""
    from mser.features import FeatureConfigError

    text = "one two three four five six seven"
    ends = {}
    for side in ("right", "left"):
        extractor = build_extractor({"extractor": "hf_text", "max_length": 6,
                                     "truncation_side": side})
        tokens = extractor.tokens(text)
        assert len(tokens) == 6 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert extractor.extract_text(text).shape == (6, 384)
        ends[side] = tokens[1:-1]
    assert ends == {"right": ["one", "two", "three", "four"],
                    "left": ["four", "five", "six", "seven"]}
    with pytest.raises(FeatureConfigError, match="truncation_side: 'middle'"):
        build_extractor({"extractor": "hf_text", "truncation_side": "middle"})
