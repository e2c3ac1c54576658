"""Config parsing: precedence, strict keys, types, saving."""
import pytest

from mser.utils.config import (ConfigError, add_options, check_config_file, load_config,
                               make_parser, parse_args, save_config)

OPTIONS = {"lr": (0.001, "learning rate"), "batch_size": (32, "batch size"),
           "bucketing": (True, "bucket by length"), "modalities": (["audio", "text"], "streams"),
           "name": ("query", "a string")}


def parser():
    p = make_parser("test")
    add_options(p, OPTIONS)
    return p


def test_command_line_over_yaml_over_defaults(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("lr: 0.01\nbatch_size: 8\nbucketing: false\nmodalities: [text]\n")
    args = parse_args(parser(), ["--config", str(conf), "--batch-size", "4"])
    assert (args.lr, args.batch_size, args.bucketing, args.modalities, args.name) == \
        (0.01, 4, False, ["text"], "query")
    assert parse_args(parser(), ["--batch_size", "2", "--modalities", "audio"]).modalities == ["audio"]


def test_unknown_key_names_the_key_file_and_closest_option(tmp_path, capsys):
    conf = tmp_path / "c.yaml"
    conf.write_text("lr: 0.01\nbatch_sise: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'batch_sise'; did you mean 'batch_size'"):
        check_config_file(parser(), str(conf))
    with pytest.raises(SystemExit):
        parse_args(parser(), ["--config", str(conf)])
    assert "unknown key 'batch_sise'" in capsys.readouterr().err


def test_bad_boolean_is_an_error(capsys):
    with pytest.raises(SystemExit):
        parse_args(parser(), ["--bucketing", "maybe"])
    assert "expected true or false" in capsys.readouterr().err


def test_save_and_load_round_trip(tmp_path):
    config = {"model_conf": {"d_model": 128, "modalities": ["audio"]}, "classes": ["neu", "ang"],
              "text_info": None}
    save_config(str(tmp_path / "config.yaml"), config)
    assert load_config(str(tmp_path / "config.yaml")) == config
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
