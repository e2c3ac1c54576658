"""Every recipe training YAML (tuning ones through their base:) parses through the real (strict)
parser and builds a model; a new recipe's confs are picked up without editing this test."""
import glob
import os
import re

import pytest
import torch
import yaml

from mser.bin.train import get_parser, model_conf_from_args
from mser.nets import build_model
from mser.utils.config import parse_args, read_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# egs/TEMPLATE/conf/tuning holds the shared tuning confs; each recipe links them, and they
# resolve base: against the recipe's own train.yaml there.
CONFS = sorted(p for p in glob.glob(os.path.join(ROOT, "egs", "*", "conf", "train.yaml"))
               + glob.glob(os.path.join(ROOT, "egs", "*", "conf", "tuning", "*.yaml"))
               if os.sep + "TEMPLATE" + os.sep not in p)
# Features of any recipe: several stored layers (so layer weighting is built too), small dims.
AUDIO_INFO, TEXT_INFO = {"dim": 20, "num_layers": 3}, {"dim": 12, "num_layers": 2}


def test_recipes_have_confs():
    assert len(CONFS) >= 2 * 11


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: os.path.relpath(p, ROOT))
def test_conf_builds_a_model(conf):
    with open(conf, encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("#"), "each conf opens with a comment saying what it is"
    assert not re.search(r"\b(UA|WA) \d", text), "results live in the generated RESULTS.md only"
    args = parse_args(get_parser(), ["--config", conf, "--data-dir", "d", "--exp-dir", "e"])
    conf = model_conf_from_args(args)
    # Streams other than audio (text, a dialogue's context) are token features.
    infos = {name: AUDIO_INFO if name == "audio" else TEXT_INFO for name in conf["streams"]}
    # An auxiliary classification task's classes come from the training labels: three here.
    task_classes = {t: ["a", "b", "c"] for t, spec in conf["tasks"].items()
                    if t != "emotion" and spec["type"] == "classification"}
    model = build_model(conf, infos, 4, task_classes).eval()
    lens = {"audio": [16, 9]}
    batch = {}
    for name, info in infos.items():
        name_lens = lens.get(name, [4, 2])
        batch[name] = torch.randn(2, max(name_lens), info["dim"] * info["num_layers"])
        batch[f"{name}_lens"] = torch.tensor(name_lens)
    with torch.no_grad():
        output = model(batch)
    logits = output["logits"]
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    for task, outputs in output.get("tasks", {}).items():
        assert outputs.shape == (2, len(task_classes.get(task, [0]))), task


TUNING = sorted({os.path.realpath(c) for c in CONFS if f"{os.sep}tuning{os.sep}" in c})


@pytest.mark.parametrize("conf", TUNING, ids=lambda p: os.path.relpath(p, ROOT))
def test_tuning_conf_holds_only_what_differs_from_its_base(conf):
    """A recipe's own tuning conf repeats none of its base's values; a shared one (egs/TEMPLATE,
    linked into the recipes) none that every recipe linking it already has."""
    with open(conf, encoding="utf-8") as f:
        own = yaml.safe_load(f) or {}
    assert "base" in own, "a tuning conf names its base config (base: ../train.yaml)"
    base_name = own.pop("base")
    links = [c for c in CONFS if os.path.realpath(c) == conf]
    bases = [read_config_file(os.path.join(os.path.dirname(c), base_name))[0] for c in links]
    assert not [key for key, value in own.items() if all(b.get(key) == value for b in bases)], \
        "keys repeating the base's value"
