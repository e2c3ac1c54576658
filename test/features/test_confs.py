"""Every recipe feature config is valid; one name is one feature in every recipe; the demo ones
build and give their documented dims."""
import collections
import glob
import hashlib
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


def test_one_feature_name_means_one_feature_in_every_recipe():
    """``--audio_feat X`` extracts the same features in every recipe: configs of one file name
    agree on every key but ``tag_pattern`` (which transcript tags reach the encoder is a
    recipe's data preparation, e.g. IEMOCAP's --noise_tags)."""
    by_name = collections.defaultdict(dict)
    for path in CONFS:
        with open(path) as f:
            conf = resolve_config(yaml.safe_load(f))
        conf.pop("tag_pattern", None)
        by_name[os.path.basename(path)][os.path.relpath(path, ROOT)] = conf
    for name, confs in by_name.items():
        first = next(iter(confs.values()))
        differ = [path for path, conf in confs.items() if conf != first]
        assert not differ, f"{name}: {differ} differ from {next(iter(confs))}; give one a new name"


def test_recipe_configs_are_linked_not_copied():
    """A config two recipes share is one file and links, so that an edit reaches both."""
    copies = collections.defaultdict(list)
    for path in glob.glob(os.path.join(ROOT, "egs", "*", "conf", "**", "*.yaml"), recursive=True):
        if not os.path.islink(path):
            with open(path, "rb") as f:
                copies[hashlib.sha256(f.read()).hexdigest()].append(os.path.relpath(path, ROOT))
    assert not [paths for paths in copies.values() if len(paths) > 1]


def test_demo_confs_build():
    with open(os.path.join(ROOT, "egs/synth_iemocap/conf/feats/fbank.yaml")) as f:
        fbank = build_extractor(yaml.safe_load(f))
    assert fbank.extract_wav(np.zeros(16000, dtype=np.float32) + 0.01, 16000).shape == (98, 84)
    with open(os.path.join(ROOT, "egs/synth_iemocap/conf/feats/minilm.yaml")) as f:
        minilm = build_extractor(yaml.safe_load(f))
    assert minilm.extract_text("hello there").shape == (4, 384)
