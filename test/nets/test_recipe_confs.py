"""Every recipe training YAML parses through the real (strict) parser and builds a model."""
import glob
import os

import pytest
import torch

from mser.bin.train import get_parser, model_conf_from_args
from mser.nets import build_model
from mser.utils.config import parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFS = sorted(glob.glob(os.path.join(ROOT, "egs", "*", "conf", "train.yaml"))
               + glob.glob(os.path.join(ROOT, "egs", "*", "conf", "tuning", "*.yaml")))
# Per-layer dims and layer counts of the recipes' features (synthetic and the other corpora's
# CPU baselines: fbank+pitch, MiniLM; IEMOCAP: 5 HuBERT-large layers, 4 MPNet layers, as conf/feats).
FBANK_MINILM = ({"dim": 84, "num_layers": 1}, {"dim": 384, "num_layers": 1})
INFOS = {"synth_iemocap": FBANK_MINILM,
         "iemocap": ({"dim": 1024, "num_layers": 5}, {"dim": 768, "num_layers": 4}),
         **dict.fromkeys(("meld", "msp_podcast", "crema_d", "ravdess", "emodb"), FBANK_MINILM)}


def test_recipes_have_confs():
    assert len(CONFS) >= 2 * 11


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: os.path.relpath(p, ROOT))
def test_conf_builds_a_model(conf):
    with open(conf, encoding="utf-8") as f:
        assert f.readline().startswith("#"), "each conf opens with a comment saying what it is"
    args = parse_args(get_parser(), ["--config", conf, "--data-dir", "d", "--exp-dir", "e"])
    audio_info, text_info = INFOS[os.path.relpath(conf, ROOT).split(os.sep)[1]]
    model = build_model(model_conf_from_args(args), audio_info, text_info, 4).eval()
    audio = torch.randn(2, 16, audio_info["dim"] * audio_info["num_layers"])
    text = torch.randn(2, 4, text_info["dim"] * text_info["num_layers"])
    with torch.no_grad():
        logits = model(audio, torch.tensor([16, 9]), text, torch.tensor([4, 2]))["logits"]
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
