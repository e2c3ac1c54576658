"""Each corpus recipe end to end, tiny: egs/<corpus>/run.sh (the shared egs/TEMPLATE/ser.sh)
stages 0..5 on the fake tree of test/data/test_<corpus>.py, one fold, one epoch, fbank (+ MiniLM
where the recipe's config uses text); every test subset of data/protocol decoded, scored with the
corpus's headline metric, and RESULTS.md headed by it. The tag is the one run.sh trains."""
import importlib.util
import json
import os
import re
import shutil
import subprocess

import pytest

from mser.data.protocol import read_protocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# corpus: (db.sh variable, local_data_opts, headline as RESULTS.md names it, test subsets)
RECIPES = {
    "meld": ("MELD", "--nj 1 --expected-counts none", "wF1", ["test"]),
    "msp_podcast": ("MSP_PODCAST", "--expected-counts none", "F1", ["test", "test2"]),
    "crema_d": ("CREMA_D", "--num-folds 2 --dev-speakers 1 --expected-counts none", "UA", ["test"]),
    "ravdess": ("RAVDESS", "--fold-groups balanced --num-folds 3 --dev-speakers 1 "
                           "--expected-counts none", "UA", ["test"]),
    "emodb": ("EMODB", "--num-folds 5 --dev-speakers 2 --expected-counts none", "UA", ["test"]),
    "nemo": ("NEMO", "--num-folds 3 --expected-counts none", "UA", ["test"]),  # audio only
}

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(ROOT, "tools", "venv", "bin", "activate")),
    reason="needs tools/venv: run bash tools/install.sh")


def fake_tree(corpus, directory, tone):
    """The fake corpus that test/data/test_<corpus>.py writes (its write_tree)."""
    path = os.path.join(ROOT, "test", "data", f"test_{corpus}.py")
    spec = importlib.util.spec_from_file_location(f"corpus_tree_{corpus}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # test_meld.py skips without PyAV
    return module.write_tree(directory, tone)


def copy_recipe(corpus, work):
    """A copy of egs/<corpus> with the shared scripts linked, as in the repo."""
    recipe = os.path.join(ROOT, "egs", corpus)
    work.mkdir()
    for name in ("run.sh", "db.sh", "local", "conf"):
        source = os.path.join(recipe, name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, work / name)
    for name in ("path.sh", "cmd.sh", "ser.sh", "utils"):
        assert os.path.realpath(os.path.join(recipe, name)) == os.path.realpath(
            os.path.join(ROOT, "utils" if name == "utils" else f"egs/TEMPLATE/{name}")), name
        os.symlink(os.path.realpath(os.path.join(recipe, name)), work / name)
    return work


@pytest.mark.parametrize("corpus", sorted(RECIPES))
def test_recipe_stages_0_to_5(corpus, tmp_path, tone):
    variable, data_opts, headline, tests = RECIPES[corpus]
    root = fake_tree(corpus, tmp_path / "corpus", tone)
    work = copy_recipe(corpus, tmp_path / corpus)
    env = {k: v for k, v in os.environ.items() if k != "cmd_backend"}
    env[variable] = str(root)
    # fbank, not the recipes' default Whisper base (test_ct2_whisper builds that conf)
    args = ["--local_data_opts", data_opts, "--nj", "1", "--folds", "1", "--audio_feat", "fbank",
            "--train_opts", "--epochs 1 --min-steps 0"]
    result = subprocess.run(["./run.sh", *args], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    protocol = read_protocol(work / "data" / "protocol")
    assert protocol["tests"] == tests
    tag = re.search(r"Stage 3: train exp/(\S+) on fold", result.stdout).group(1)
    # the schedule each fold ran and its selected epoch, on the console
    assert re.search(r"Stage 3: fold 1: finished \(max_epochs\): best dev \w+ [0-9.]+ at epoch 1",
                     result.stdout), result.stdout[-2000:]
    text_feat = re.search(r"^ +--text_feat (\w+) ", (work / "run.sh").read_text(), re.M).group(1)
    assert tag == "train_fbank" + ("" if corpus == "nemo" else f"_{text_feat}")  # nEMO: audio only
    exp = work / "exp" / tag
    for subset in tests:
        suffix = "" if subset == "test" else f"_{subset}"
        scores = json.loads((exp / f"scores{suffix}.json").read_text())
        decoded = (exp / "fold1" / f"decode{suffix}" / scores["condition"] /
                   "predictions").read_text()
        assert len(decoded.splitlines()) == scores["pooled"]["num_utts"] == len(
            (work / "data" / "fold1" / subset / "utt2emo").read_text().splitlines())
        assert scores["headline"] == protocol["headline"] and scores["subset"] == subset
        assert f"headline {headline}" in (exp / f"scores{suffix}.txt").read_text()
    results = (work / "RESULTS.md").read_text()
    assert f"- headline metric: {headline}\n" in results
    assert f"- corpus: {protocol['corpus']}; protocol: {protocol['description']}\n" in results
    assert f"| {headline} audio only | {headline} text only |" in results
    assert f"| {tag} | conf/train.yaml |" in results
    for subset in tests[1:]:
        assert f"Test set `{subset}`" in results
    train_log = (exp / "log" / "train.fold1.log").read_text()
    select = {"meld": "weighted_f1", "msp_podcast": "macro_f1"}.get(corpus, "ua")
    assert f"selected on dev {select} of" in train_log  # the corpus's headline on dev


def test_meld_dialogue_context_stream_stages_0_to_5(tmp_path, tone):
    """conf/tuning/text_context.yaml on MELD's CSVs: stage 2 writes the previous turns of each
    utterance (data/all_context<N>) and their text features (cut from the left), training and
    decoding read them as the stream "context", scoring has its condition; ASR text is refused."""
    root = fake_tree("meld", tmp_path / "corpus", tone)
    work = copy_recipe("meld", tmp_path / "meld")
    env = {k: v for k, v in os.environ.items() if k != "cmd_backend"}
    env["MELD"] = str(root)
    args = ["--local_data_opts", "--nj 1 --expected-counts none --text-only", "--nj", "1",
            "--text_feat", "minilm", "--context_turns", "2",
            "--train_config", "conf/tuning/text_context.yaml",
            "--train_opts", "--epochs 1 --min-steps 0"]
    result = subprocess.run(["./run.sh", *args], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    context = (work / "data" / "all_context2" / "text").read_text().splitlines()
    assert ("Chandler_train_dia0_utt2 Chandler: also I was the point person | The-Interviewer: "
            "You're a genius! | Chandler:") in context
    feat_conf = work / "dump" / "minilm_context2" / "feat_conf.yaml"
    assert {"truncation_side: left", "storage: float16"} <= set(feat_conf.read_text().splitlines())
    exp = work / "exp" / "text_context_minilm_ctx2"
    config = (exp / "fold1" / "config.yaml").read_text()
    assert "context_feats: dump/minilm_context2/feats.scp" in config
    assert sorted(p.name for p in (exp / "fold1" / "decode").iterdir() if p.is_dir()) == [
        "both", "context_only", "text_only"]
    assert "| wF1 text only | wF1 context only |" in (work / "RESULTS.md").read_text()
    assert "train the probe (--train_config conf/tuning/probe_text_context.yaml)" in result.stdout
    refused = subprocess.run(["./run.sh", *args, "--stage", "3", "--test_text", "asr"], cwd=work,
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode and "context stream is made of the gold transcripts" in refused.stderr


def test_setup_sh_makes_a_recipe_that_runs_stage_0(tmp_path, tone):
    """egs/TEMPLATE/setup.sh: shared scripts and configs linked, train.yaml of --like copied, a
    db.sh / run.sh that work and a local/data.sh that says what to write; re-running it keeps
    edits. With RAVDESS's hook dropped in, stage 0 runs on the fake tree."""
    setup = os.path.join(ROOT, "egs", "TEMPLATE", "setup.sh")
    recipe = tmp_path / "egs" / "my_ravdess"
    subprocess.run([setup, "--like", "ravdess", str(recipe)], check=True, capture_output=True)
    for name, target in [("ser.sh", "egs/TEMPLATE/ser.sh"), ("utils", "utils"),
                         ("conf/feats/whisper_base.yaml", "egs/TEMPLATE/conf/feats/whisper_base.yaml"),
                         ("conf/tuning/probe.yaml", "egs/TEMPLATE/conf/tuning/probe.yaml")]:
        assert (recipe / name).is_symlink() and os.path.realpath(recipe / name) == \
            os.path.realpath(os.path.join(ROOT, target)), name
    assert (recipe / "conf" / "train.yaml").read_text() == open(
        os.path.join(ROOT, "egs", "ravdess", "conf", "train.yaml")).read()
    assert "MY_RAVDESS=${MY_RAVDESS:-" in (recipe / "db.sh").read_text()
    unwritten = subprocess.run(["local/data.sh", "x", "data"], cwd=recipe, capture_output=True,
                               text=True)
    assert unwritten.returncode == 1 and "not written yet" in unwritten.stderr

    (recipe / "db.sh").write_text("MY_RAVDESS=${MY_RAVDESS:-/edited}\n")
    shutil.copy2(os.path.join(ROOT, "egs", "ravdess", "local", "data.sh"), recipe / "local")
    subprocess.run([setup, str(recipe)], check=True, capture_output=True)
    assert (recipe / "db.sh").read_text() == "MY_RAVDESS=${MY_RAVDESS:-/edited}\n"

    env = {k: v for k, v in os.environ.items() if k != "cmd_backend"}
    env["MY_RAVDESS"] = str(fake_tree("ravdess", tmp_path / "corpus", tone))
    result = subprocess.run(["./run.sh", "--stage", "0", "--stop-stage", "0", "--local_data_opts",
                             RECIPES["ravdess"][1]], cwd=recipe, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_protocol(recipe / "data" / "protocol")["headline"] == "ua"


def test_setup_sh_refuses_a_name_that_cannot_be_a_variable(tmp_path):
    result = subprocess.run([os.path.join(ROOT, "egs", "TEMPLATE", "setup.sh"),
                             str(tmp_path / "My-Corpus")], capture_output=True, text=True)
    assert result.returncode == 1 and "lower case letters" in result.stderr
    assert not (tmp_path / "My-Corpus").exists()


def write_clips(root, tone, layout):
    """4 speakers x 3 classes x 2 clips of one's own: class folders, or a CSV listing them."""
    rows = ["path,label,speaker"]
    for speaker in ("spk1", "spk2", "spk3", "spk4"):
        for label in ("angry", "calm", "sad"):
            for k in range(2):
                path = f"{label}/{speaker}_{k}.wav" if layout == "folders" else \
                    f"clips/{speaker}_{label}_{k}.wav"
                tone(root / path, seconds=1.0)
                rows.append(f"{path},{label},{speaker}")
    if layout == "table":
        (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("layout, opts", [
    ("folders", "--speaker-pattern '^(spk[0-9])_' --num-folds 3"),
    ("table", "--table list.csv --num-folds 3")])
def test_setup_sh_recipe_of_own_clips_runs_stages_0_to_5(layout, opts, tmp_path, tone):
    """Clips of one's own, no Python written: setup.sh --corpus_type writes local/data.sh,
    --audio_only true an audio-only conf/train.yaml; stages 0-5 train, decode and score the tag
    run.sh names, with the audio-only probe as its baseline."""
    recipe = tmp_path / "egs" / "my_clips"
    subprocess.run([os.path.join(ROOT, "egs", "TEMPLATE", "setup.sh"), "--corpus_type", layout,
                    "--corpus_opts", opts, "--audio_only", "true", str(recipe)], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "cmd_backend"}
    env["MY_CLIPS"] = str(write_clips(tmp_path / "clips", tone, layout))
    result = subprocess.run(["./run.sh", "--nj", "1", "--folds", "1", "--audio_feat", "fbank",
                             "--train_opts", "--epochs 1 --min-steps 0"], cwd=recipe, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Stage 3: train exp/train_fbank on fold(s) 1, one at a time" in result.stdout
    scores = json.loads((recipe / "exp" / "train_fbank" / "scores.json").read_text())
    assert scores["condition"] == "audio_only" and scores["probe_tag"] == "probe_audio_fbank"
    test_labels = (recipe / "data" / "fold1" / "test" / "utt2emo").read_text().split()[1::2]
    assert scores["pooled"]["num_utts"] == len(test_labels) in (6, 12)  # 1 or 2 speakers
    assert set(test_labels) == {"angry", "calm", "sad"}
    assert "| train_fbank | conf/train.yaml |" in (recipe / "RESULTS.md").read_text()
