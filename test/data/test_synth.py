"""The espeak-ng demo corpus: determinism, IEMOCAP layout, distinct voices, audible and written cues."""
import shutil

import numpy as np
import pytest
import soundfile

from mser.io.datadir import read_data_dir
from mser.data.iemocap import prepare_iemocap
from mser.data.synth import (PHRASES, SPEAKER_VOICES, PlannedUtt, SynthError, SynthOptions,
                             generate_corpus, plan_corpus, synthesize)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

OPTIONS = SynthOptions(seed=7, utts_per_session=40)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "IEMOCAP_synth"
    generate_corpus(str(root), OPTIONS, nj=2)
    return root


def read_cues(root):
    with open(root / "utt2cue") as f:
        return {utt: tuple(rest) for utt, *rest in map(str.split, f)}


def median_f0(x, sr=16000):
    """Median autocorrelation pitch of the loud frames."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    frames = np.stack([x[i:i + frame] for i in range(0, len(x) - frame, hop)])
    energy = np.sqrt(np.mean(frames ** 2, axis=1))
    pitches = []
    for f in frames[energy > 0.3 * energy.max()]:
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1:]
        lo, hi = sr // 400, sr // 60
        lag = lo + np.argmax(ac[lo:hi])
        if ac[lag] > 0.3 * ac[0]:
            pitches.append(sr / lag)
    return float(np.median(pitches))


def spectral_centroid(x, sr=16000):
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((power * np.fft.rfftfreq(len(x), 1 / sr)).sum() / power.sum())


def test_same_seed_same_bytes_and_resume(corpus, tmp_path):
    other = tmp_path / "again"
    generate_corpus(str(other), OPTIONS, nj=1)
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    for name in files:
        assert (corpus / name).read_bytes() == (other / name).read_bytes(), name
    # An interrupted run is finished identically; other options are refused.
    wav = next(other.rglob("*.wav"))
    wav.unlink()
    (other / ".done").unlink()
    generate_corpus(str(other), OPTIONS, nj=1)
    assert wav.read_bytes() == (corpus / wav.relative_to(other)).read_bytes()
    with pytest.raises(SynthError, match="other options"):
        generate_corpus(str(other), SynthOptions(seed=8, utts_per_session=40))


def test_layout_prepares_and_drops_fru_xxx(corpus, tmp_path):
    cues = read_cues(corpus)
    assert len(cues) == 5 * 40
    prepare_iemocap(str(corpus), str(tmp_path / "data"))
    tables = read_data_dir(tmp_path / "data" / "all")
    mixed = [u for u, (cue, _, _) in cues.items() if cue == "mixed"]
    assert mixed and len(tables["utt2spk"]) == len(cues) - len(mixed)
    assert set(tables["utt2emo"].values()) == {"neu", "hap", "ang", "sad"}
    assert set(tables["utt2spk"].values()) == set(SPEAKER_VOICES)
    info = soundfile.info(next(iter(tables["wav.scp"].values())))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    # The dimensions follow the cues: arousal the voice (an aroused voice, angry or merely
    # "high", above a sad one), valence the words (negative words below neutral ones).
    by_cue = {}
    for utt, (_, text_class, voice_class) in cues.items():
        utt_id = next((u for u in tables["utt2spk"] if u.endswith(utt)), None)
        if utt_id is not None:
            by_cue.setdefault(("voice", voice_class), set()).add(tables["utt2arousal"][utt_id])
            by_cue.setdefault(("text", text_class), set()).add(tables["utt2valence"][utt_id])
    assert by_cue[("voice", "sad")] == {"2"} and by_cue[("voice", "ang")] == {"4"}
    assert by_cue[("text", "neu")] == {"2.5"} and by_cue[("text", "sad")] == {"1.5"}
    assert set(tables["utt2dominance"]) == set(tables["utt2spk"])


def test_each_speaker_has_its_own_voice():
    features = {}
    for spk in SPEAKER_VOICES:
        utt = PlannedUtt(f"{spk}_impro01_{spk[-1]}000", int(spk[3:5]), "neu", "none", "neu", "neu",
                         "My brother moved the kitchen table after lunch.")
        x = synthesize(utt, seed=0, snr_range=(40, 40))
        features[spk] = np.array([median_f0(x), spectral_centroid(x), len(x)])
    assert min(features[s][0] for s in features if s.endswith("F")) > \
        max(features[s][0] for s in features if s.endswith("M"))
    for a in features:
        for b in features:
            if a < b:  # some feature differs by more than 2 %
                assert np.max(np.abs(features[a] / features[b] - 1)) > 0.02, (a, b)


def test_voice_cues_are_audible(corpus):
    level, log_f0, speaker = {}, {}, {}
    for utt, (_, _, voice_class) in read_cues(corpus).items():
        x, _ = soundfile.read(corpus / f"Session{int(utt[3:5])}" / "sentences" / "wav"
                              / utt.rsplit("_", 1)[0] / f"{utt}.wav")
        level[utt] = 10 * np.log10(np.mean(x ** 2))
        log_f0[utt] = np.log(median_f0(x))
        speaker[utt] = utt[:5] + utt[-4]
    # Pitch relative to the speaker's mean, so the speaker mix of a class does not matter.
    speaker_mean = {s: np.mean([log_f0[u] for u in log_f0 if speaker[u] == s]) for s in set(speaker.values())}
    by_class = {}
    for utt, (_, _, voice_class) in read_cues(corpus).items():
        by_class.setdefault(voice_class, []).append((level[utt], log_f0[utt] - speaker_mean[speaker[utt]]))
    mean = {c: np.mean(v, axis=0) for c, v in by_class.items()}
    assert mean["ang"][0] > mean["neu"][0] + 3 > mean["sad"][0] + 6
    assert mean["hap"][0] > mean["sad"][0] + 3
    assert mean["hap"][1] > mean["neu"][1] > mean["sad"][1]
    assert mean["ang"][1] > mean["sad"][1]


def test_text_cues_are_in_the_words(corpus):
    texts = {}
    for path in corpus.glob("Session*/dialog/transcriptions/*.txt"):
        for line in path.read_text().splitlines():
            utt, _, text = line.partition(" ")
            texts[utt] = text.split(": ", 1)[1].lower()
    phrases = {c: [p.lower() for p in leading + trailing] for c, (leading, trailing) in PHRASES.items()}
    for utt, (cue, text_class, voice_class) in read_cues(corpus).items():
        assert any(p in texts[utt] for p in phrases[text_class]), (utt, text_class, texts[utt])
        if text_class != "neu":
            assert not any(p in texts[utt] for p in phrases["neu"])


@pytest.mark.parametrize("text_specific,voice_specific", [(0.5, 0.5), (0.0, 1.0), (1.0, 0.2)])
def test_each_modality_identifies_part_of_the_emotions(text_specific, voice_specific):
    """Words carry valence, the voice arousal; the emotion-specific cue of each comes with the
    requested probability, and the cue column says which modality alone identifies the label."""
    plan = plan_corpus(SynthOptions(seed=3, utts_per_session=400, text_specific=text_specific,
                                    voice_specific=voice_specific))
    allowed = {"neu": ({"neu"}, {"neu"}), "hap": ({"hap"}, {"hap", "high"}),
               "exc": ({"hap"}, {"exc", "high"}), "ang": ({"ang", "neg"}, {"ang", "high"}),
               "sad": ({"sad", "neg"}, {"sad"})}
    for utt in plan:
        if utt.cue == "mixed":
            continue
        texts, voices = allowed[utt.label]
        assert utt.text_class in texts and utt.voice_class in voices, utt
        if utt.label != "neu":
            text_alone, voice_alone = utt.text_class != "neg", utt.voice_class != "high"
            assert utt.cue == {(True, True): "both", (True, False): "text", (False, True): "voice",
                               (False, False): "fusion"}[text_alone, voice_alone], utt
    ang_sad = [u for u in plan if u.label in ("ang", "sad")]
    hap_ang = [u for u in plan if u.label in ("hap", "exc", "ang")]
    assert np.mean([u.text_class != "neg" for u in ang_sad]) == pytest.approx(text_specific, abs=0.05)
    assert np.mean([u.voice_class != "high" for u in hap_ang]) == pytest.approx(voice_specific, abs=0.05)
    with pytest.raises(SynthError, match="probability"):
        SynthOptions(text_specific=1.5).validate()
