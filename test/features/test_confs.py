"""Every recipe feature config is valid; the demo ones build and give their documented dims."""
import glob
import os

import numpy as np
import pytest
import yaml

from mser.features import build_extractor, resolve_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFS = sorted(glob.glob(os.path.join(ROOT, "egs", "*", "conf", "feats", "*.yaml")))


@pytest.mark.parametrize("path", CONFS, ids=lambda p: os.path.relpath(p, ROOT))
def test_recipe_conf_resolves(path):
    with open(path) as f:
        conf = resolve_config(yaml.safe_load(f))
    if conf["extractor"] != "fbank":
        assert conf["model_dir"] is None or "downloads" in conf["model_dir"] or \
            conf["model_dir"].startswith("packaged:")


def test_demo_confs_build():
    with open(os.path.join(ROOT, "egs/synth_iemocap/conf/feats/fbank.yaml")) as f:
        fbank = build_extractor(yaml.safe_load(f))
    assert fbank.extract_wav(np.zeros(16000, dtype=np.float32) + 0.01, 16000).shape == (98, 84)
    with open(os.path.join(ROOT, "egs/synth_iemocap/conf/feats/minilm.yaml")) as f:
        minilm = build_extractor(yaml.safe_load(f))
    assert minilm.extract_text("hello there").shape == (4, 384)
