"""Checkpoints are read with torch.load(weights_only=True): a model file cannot run code, on any
path that reads one (training resume, decode, mser-infer, export)."""
import os

import numpy as np
import pytest
import torch
import yaml

from mser.bin import infer
from mser.inference import export_model
from mser.nets import build_model, load_model, resolve_model_conf
from mser.utils.checkpoint import (UnsafeCheckpointError, copy_checkpoint, load_checkpoint,
                                   save_checkpoint)

AUDIO_INFO = {"modality": "audio", "extractor": "fbank", "dim": 4, "num_layers": 1}
MODEL_CONF = {"modalities": ["audio"], "d_model": 8, "encoder_layers": 1, "encoder_heads": 2,
              "encoder_ff_dim": 8, "num_queries": 1, "decoder_layers": 1, "decoder_heads": 2,
              "decoder_ff_dim": 8, "classifier_hidden": 0}


class Payload:
    """Unpickling this creates the directory ``marker``: the code a hostile model file runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def model_dir(path, extra):
    """A trained fold dir (config.yaml + best.pt) whose checkpoint also holds ``extra``."""
    os.makedirs(path)
    conf = resolve_model_conf(MODEL_CONF)
    model = build_model(conf, {"audio": AUDIO_INFO}, 4)
    with open(path / "config.yaml", "w") as f:
        yaml.safe_dump({"model_conf": conf, "audio_info": AUDIO_INFO, "text_info": None,
                        "classes": ["neu", "hap", "ang", "sad"]}, f)
    torch.save({"model": model.state_dict(), "epoch": 1, **extra}, path / "best.pt")
    return path


def test_a_malicious_checkpoint_is_refused_never_executed(tmp_path):
    marker = tmp_path / "payload_ran"
    exp = model_dir(tmp_path / "fold1", {"note": Payload(marker)})
    checkpoint = str(exp / "best.pt")
    readers = {  # the command line says it in one line (SystemExit), the API raises
        "load_checkpoint": (lambda: load_checkpoint(checkpoint), UnsafeCheckpointError),
        "load_model (decode)": (lambda: load_model(str(exp)), UnsafeCheckpointError),
        "mser-infer": (lambda: infer.main(["--model-dir", str(exp), str(tmp_path / "x.wav")]),
                       SystemExit),
        "export": (lambda: export_model(str(exp), str(tmp_path / "export")),
                   UnsafeCheckpointError),
    }
    for name, (read, refusal) in readers.items():
        with pytest.raises(refusal) as error:
            read()
        assert not marker.exists(), f"{name} executed the pickled payload"
        message = str(error.value)
        assert checkpoint in message and "weights_only" in message and "posix.mkdir" in message
    # The payload is real: an unsafe load runs it.
    torch.load(checkpoint, weights_only=False)
    assert marker.is_dir()


def test_an_old_checkpoint_with_random_states_fails_with_the_fix(tmp_path):
    old_rng = {"numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    exp = model_dir(tmp_path / "fold1", {"rng_states": [old_rng]})
    with pytest.raises(UnsafeCheckpointError) as error:
        load_model(str(exp))
    message = str(error.value)
    assert str(exp / "best.pt") in message and "rng_states" in message and "Re-train" in message


def test_a_checkpoint_of_tensors_and_plain_values_loads_and_copies(tmp_path):
    exp = model_dir(tmp_path / "fold1", {"state": {"best_metric": 0.5, "history": [{"a": None}]}})
    model, config = load_model(str(exp))
    assert config["classes"][0] == "neu" and not model.training
    save_checkpoint(tmp_path / "a.pt", {"x": torch.arange(3), "epoch": 2})
    copy_checkpoint(tmp_path / "a.pt", tmp_path / "b.pt")
    copied = load_checkpoint(tmp_path / "b.pt")
    assert copied["epoch"] == 2 and torch.equal(copied["x"], torch.arange(3))
