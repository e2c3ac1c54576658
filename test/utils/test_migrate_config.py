"""One config shape: streams: only. The older form (modalities:, the flat per-stream keys) is
refused with what replaced it; mser.bin.migrate_config rewrites it into a config that resolves to
the same training options and model; a YAML with a base: merges streams entry by entry."""
import glob
import os
import subprocess
import sys

import pytest
import yaml

from mser.bin.migrate_config import migrate_file
from mser.bin.train import get_parser, model_conf_from_args
from mser.nets import LEGACY_KEYS, resolve_model_conf
from mser.utils.config import parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OLD_ROOT = """# the default
lr: 0.001
modalities: [audio, text]
normalize_audio: true
normalize_text: false   # token features as they are
audio_subsampling: 2
text_subsampling: 1
d_model: 64
mask_audio_prob: 0.3
mask_text_prob: 0.1
"""
OLD_TEXT_ONLY = """# text alone
base: ../train.yaml
modalities: [text]
mask_audio_prob: 0.0
mask_text_prob: 0.0
"""
OLD_NO_MASKING = "base: ../train.yaml\nmask_audio_prob: 0.0\nmask_text_prob: 0.0\n"


def recipe_confs(tmp_path):
    (tmp_path / "conf" / "tuning").mkdir(parents=True)
    for name, text in (("train.yaml", OLD_ROOT), ("tuning/text_only.yaml", OLD_TEXT_ONLY),
                       ("tuning/no_masking.yaml", OLD_NO_MASKING)):
        (tmp_path / "conf" / name).write_text(text)
    return tmp_path / "conf"


def resolved(path):
    return model_conf_from_args(parse_args(get_parser(), ["--config", str(path)]))


def legacy_resolved(conf_dir, name):
    """The model conf the older form meant: its keys merged flat over the base, as before."""
    merged = {}
    for part in ("train.yaml", name):
        conf = yaml.safe_load((conf_dir / part).read_text())
        conf.pop("base", None)
        merged.update(conf)
    return resolve_model_conf({k: v for k, v in merged.items() if k != "lr"})


@pytest.mark.parametrize("key, flag", [("modalities", "[text]"), ("mask_audio_prob", "0.0")])
def test_the_older_form_is_refused_with_what_replaced_it(tmp_path, key, flag, capsys):
    path = tmp_path / "train.yaml"
    path.write_text(f"lr: 0.01\n{key}: {flag}\n")
    with pytest.raises(SystemExit):
        parse_args(get_parser(), ["--config", str(path)])
    err = capsys.readouterr().err
    assert f"{path}: '{key}' is gone" in err and "mser.bin.migrate_config" in err
    with pytest.raises(SystemExit):
        parse_args(get_parser(), [f"--{key.replace('_', '-')}", "0"])
    assert f"--{key.replace('_', '-')} is gone" in capsys.readouterr().err


def test_migration_keeps_the_experiment_and_the_comments(tmp_path):
    conf_dir = recipe_confs(tmp_path)
    meant = {name: legacy_resolved(conf_dir, name)
             for name in ("train.yaml", "tuning/text_only.yaml", "tuning/no_masking.yaml")}
    result = subprocess.run([sys.executable, "-m", "mser.bin.migrate_config",
                             str(conf_dir / "train.yaml"), *sorted(map(str, (conf_dir / "tuning").glob("*.yaml")))],
                            capture_output=True, text=True, check=True)
    assert result.stdout.count("rewritten") == 3
    for name, model_conf in meant.items():
        text = (conf_dir / name).read_text()
        assert not set(yaml.safe_load(text)) & set(LEGACY_KEYS), text
        assert resolved(conf_dir / name) == model_conf, name
    root = (conf_dir / "train.yaml").read_text()
    assert "# the default" in root and "lr: 0.001" in root
    assert yaml.safe_load((conf_dir / "tuning" / "text_only.yaml").read_text())["streams"] == {
        "audio": None, "text": {"mask_prob": 0.0}}
    assert resolved(conf_dir / "tuning" / "text_only.yaml")["modalities"] == ["text"]
    assert resolved(conf_dir / "tuning" / "no_masking.yaml")["streams"]["audio"] == {
        "subsampling": 2, "normalize": True, "mask_prob": 0.0, "spec_augment": True}
    assert migrate_file(str(conf_dir / "train.yaml")) is None  # nothing left to do


def test_a_derived_streams_mapping_merges_per_stream(tmp_path):
    (tmp_path / "conf" / "tuning").mkdir(parents=True)
    (tmp_path / "conf" / "train.yaml").write_text(
        "streams:\n  audio: {subsampling: 2}\n  text: {mask_prob: 0.1}\n")
    derived = tmp_path / "conf" / "tuning" / "x.yaml"
    derived.write_text("base: ../train.yaml\nstreams:\n  text: {normalize: true}\n"
                       "  video: {mask_prob: 0.1}\n")
    streams = resolved(derived)["streams"]
    assert list(streams) == ["audio", "text", "video"]
    assert streams["audio"]["subsampling"] == 2 and streams["text"]["mask_prob"] == 0.1
    assert streams["text"]["normalize"] is True
    derived.write_text("base: ../train.yaml\nstreams: {audio: null}\n")
    assert list(resolved(derived)["streams"]) == ["text"]


def test_every_recipe_config_has_the_one_shape():
    for path in glob.glob(os.path.join(ROOT, "egs", "*", "conf", "**", "*.yaml"), recursive=True):
        with open(path) as f:
            conf = yaml.safe_load(f) or {}
        assert not set(conf) & set(LEGACY_KEYS), path


def test_a_model_saved_in_the_older_form_still_resolves():
    """Trained models keep loading: a saved model conf with modalities and flat keys."""
    conf = resolve_model_conf({"modalities": ["audio"], "audio_subsampling": 2,
                               "mask_audio_prob": 0.0, "normalize_text": True})
    assert conf["streams"] == {"audio": {"subsampling": 2, "normalize": True, "mask_prob": 0.0,
                                         "spec_augment": True}}
    assert resolve_model_conf(conf) == conf
