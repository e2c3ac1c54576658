"""utils/parse_options.sh: Kaldi-style --name value overrides of shell variables."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
set -euo pipefail
stage=0               # first stage
stop_stage=5          # last stage
train_config=conf/train.yaml
use_gpu=false         # run on the GPU
. {root}/utils/parse_options.sh
not_an_option=1
echo "stage=$stage stop_stage=$stop_stage train_config=$train_config use_gpu=$use_gpu rest=$*"
"""


def run(tmp_path, *args):
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT.format(root=ROOT))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_overrides_dashes_and_equals(tmp_path):
    out = run(tmp_path, "--stage", "3", "--stop-stage=4", "--train-config", "conf/x y.yaml", "pos1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("stage=3 stop_stage=4 train_config=conf/x y.yaml "
                                  "use_gpu=false rest=pos1")


def test_unknown_option_is_an_error_listing_the_options(tmp_path):
    out = run(tmp_path, "--stgae", "3")
    assert out.returncode != 0
    assert ("unknown option '--stgae'; the options are: --stage --stop_stage --train_config "
            "--use_gpu\n") in out.stderr
    # Only the defaults block above parse_options.sh holds options, not the environment.
    for name in ("--not-an-option", "--HOME", "--PATH"):
        assert run(tmp_path, name, "x").returncode != 0, name


def test_help_lists_each_option_once_with_default_and_comment(tmp_path):
    out = run(tmp_path, "--stage", "2", "--help")
    assert out.returncode == 0
    lines = out.stderr.splitlines()[1:]
    assert [line.split()[:2] for line in lines] == [
        ["--stage", "2"], ["--stop_stage", "5"], ["--train_config", "conf/train.yaml"],
        ["--use_gpu", "false"]]
    assert lines[0].endswith("first stage") and lines[3].endswith("run on the GPU")


def test_integer_must_stay_integer(tmp_path):
    for args in (["--stage", "abc"], ["--stop_stage", "3x"], ["--stage=1.5"]):
        out = run(tmp_path, *args)
        assert out.returncode != 0 and "expects an integer, got" in out.stderr, args
    assert run(tmp_path, "--stage", "-1").stdout.startswith("stage=-1 ")


def test_boolean_must_stay_boolean(tmp_path):
    assert run(tmp_path, "--use-gpu", "true").stdout.split()[3] == "use_gpu=true"
    out = run(tmp_path, "--use-gpu", "ture")
    assert out.returncode != 0 and "expects true or false" in out.stderr


def test_missing_value_and_config_file(tmp_path):
    out = run(tmp_path, "--stage")
    assert out.returncode != 0 and "needs a value" in out.stderr
    conf = tmp_path / "opts.conf"
    conf.write_text("stage=2\nstop_stage=2\n")
    out = run(tmp_path, "--config", str(conf), "--stop-stage", "3")
    assert out.stdout.startswith("stage=2 stop_stage=3"), out.stderr
