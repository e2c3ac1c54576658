"""A synthetic corpus in the IEMOCAP_full_release layout, spoken by espeak-ng.

It encodes the split that multimodal SER relies on: the voice carries arousal (angry and happy
voices are aroused, sad ones subdued) and the words carry valence (positive for happy, negative for
angry and sad). Each modality adds a weaker, emotion-specific cue to only part of the utterances:

- the words name the emotion of an angry or sad utterance with probability ``text_specific``,
  otherwise they only say something negative (the "neg" phrases, shared by both);
- the voice of a happy or angry utterance has its emotion's quality (bright and wide for happy,
  harsh and loud for angry) with probability ``voice_specific``, otherwise it is only aroused (the
  "high" voice, shared by both).

So angry utterances with negative words and a merely aroused voice are recognisable by fusion
only, each modality alone tells the other emotions apart only partly, and every utterance carries
information in both modalities: none of them looks to a model like one modality was removed.
Neutral utterances have neutral words and a neutral voice.

Voice: 10 speakers (Ses01F..Ses05M), each an espeak-ng voice variant with its own base pitch and
speed. An emotion changes pitch, pitch range and rate (SSML <prosody>), and, after synthesis,
level, spectral tilt, saturation (harsh voice) and aspiration noise (breathy voice); every
parameter is jittered per utterance so the classes overlap. White noise is added at a random SNR.
Text: sentences "<subject> <verb> the <object>" with a leading or trailing phrase of the text
class; the phrases of all classes have the same shape and length, so the audio does not reveal
which one was said by its rhythm.

The [V, A, D] of each label line follow the cues: valence from the words' class, activation and
dominance from the voice's (:func:`dimensions`), so a dimensional model has something to learn
from each modality. Besides the IEMOCAP files, ``utt2cue`` lists ``<utt> <cue> <text class>
<voice class>``, where the cue says which modality alone identifies the emotion: text, voice,
both, fusion (neither alone), none (neutral) or mixed (fru, xxx).
"""
import hashlib
import io
import json
import logging
import multiprocessing
import os
import subprocess
from dataclasses import asdict, dataclass
from xml.sax.saxutils import escape

import numpy as np
import soundfile
from scipy.signal import butter, lfilter, resample_poly
from tqdm import tqdm

from mser.utils.fileio import atomic_open, atomic_write_text

GENERATOR_VERSION = 3  # bump when the output for given options changes
SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
SESSIONS = tuple(range(1, 6))

# Share of each label per session, roughly IEMOCAP's (whose 4-class subset is 31 % neu,
# 30 % hap+exc, 20 % ang, 20 % sad); fru and xxx are dropped by the 4-class preparation.
LABEL_SHARES = {"neu": 0.28, "hap": 0.10, "exc": 0.17, "ang": 0.18, "sad": 0.17,
                "fru": 0.06, "xxx": 0.04}
MIXED_LABELS = {"fru": ("neu", "ang", "sad"), "xxx": ("neu", "hap", "ang", "sad")}
TEXT_CLASS = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
# The weaker cue of each modality: the words of these labels may only say "negative" ("neg"), the
# voice of these may only sound aroused ("high"); the other labels are always identified by it.
TEXT_SHARED = ("ang", "sad")
VOICE_SHARED = ("hap", "exc", "ang")

# espeak-ng voice+variant, base pitch (0-99), speed (words per minute). Note: "en-gb+<variant>"
# silently ignores the variant; "en+<variant>" (the same British voice) honours it.
SPEAKER_VOICES = {
    "Ses01F": ("en-us+f1", 52, 165), "Ses01M": ("en-us+m1", 40, 172),
    "Ses02F": ("en+f2", 64, 176), "Ses02M": ("en+m3", 30, 160),
    "Ses03F": ("en-us+f3", 46, 182), "Ses03M": ("en-gb-x-rp+m2", 50, 168),
    "Ses04F": ("en-gb-x-rp+f4", 58, 158), "Ses04M": ("en-us+m4", 24, 186),
    "Ses05F": ("en-029+f5", 70, 170), "Ses05M": ("en-gb-scotland+m7", 44, 178),
}


@dataclass(frozen=True)
class Voice:
    pitch: float    # % change of the speaker's base pitch
    range: float    # % of the speaker's pitch range
    rate: float     # % of the speaker's speed
    gain_db: float  # level
    tilt: float     # spectral tilt: > 0 brighter, < 0 darker (gain of the band above 1.5 kHz - 1)
    harsh: float    # 0..1 saturation
    breath: float   # aspiration noise relative to the speech envelope


# Means per voice class and the per-utterance jitter (standard deviations).
VOICE_PROFILES = {
    "neu": Voice(pitch=0, range=100, rate=100, gain_db=0, tilt=0.0, harsh=0.0, breath=0.0),
    "hap": Voice(pitch=20, range=170, rate=110, gain_db=2, tilt=0.3, harsh=0.0, breath=0.0),
    "exc": Voice(pitch=28, range=190, rate=115, gain_db=3, tilt=0.4, harsh=0.05, breath=0.0),
    "ang": Voice(pitch=8, range=130, rate=112, gain_db=5, tilt=0.6, harsh=0.6, breath=0.0),
    "sad": Voice(pitch=-15, range=50, rate=80, gain_db=-5, tilt=-0.5, harsh=0.0, breath=0.15),
    # aroused, neither bright nor harsh enough to tell happy from angry
    "high": Voice(pitch=16, range=155, rate=112, gain_db=3.5, tilt=0.45, harsh=0.3, breath=0.0),
}
VOICE_JITTER = Voice(pitch=6, range=20, rate=6, gain_db=2.5, tilt=0.15, harsh=0.1, breath=0.04)
BASE_LEVEL = 0.4  # keeps the loudest (angry) utterances below full scale

SUBJECTS = ("my brother", "the manager", "our neighbour", "the new teacher", "my sister",
            "the driver", "your friend", "the committee", "my father", "the landlord",
            "my cousin", "the doctor", "our team", "the students", "my boss", "the mechanic")
VERBS = ("moved", "checked", "painted", "sold", "cleaned", "borrowed", "opened", "fixed",
         "counted", "delivered", "measured", "packed", "signed", "returned", "ordered",
         "printed", "carried", "replaced", "sorted", "labelled")
OBJECTS = ("boxes", "old car", "kitchen table", "window", "letters", "garden fence", "tickets",
           "blue chair", "documents", "bicycle", "shelves", "lamp", "invoices", "front door",
           "suitcase", "curtains", "computer", "keys", "plants", "carpet")
# (leading phrases, trailing phrases) per text class.
PHRASES = {
    "neu": (("on Tuesday", "after lunch", "this morning", "as usual", "around noon", "last week",
             "before the meeting", "in the afternoon", "at about nine", "earlier today",
             "according to the list", "on the second floor"),
            ("as we planned", "before the meeting", "according to the schedule",
             "and then went home", "on the second floor", "at about nine", "after the call",
             "as it says in the memo", "near the front desk", "in the usual way",
             "for the report", "with the other files")),
    "hap": (("i am so happy", "what a lovely day", "this is wonderful", "i feel great",
             "how delightful", "i am really glad", "that is fantastic news", "i am so pleased",
             "oh this is brilliant", "i love it", "what a joy", "lucky us"),
            ("and i am so happy about it", "which is wonderful", "and that made my day",
             "and i could not be happier", "which is great news", "and i love it",
             "and it was such fun", "which made me smile", "and i am thrilled",
             "which is just perfect", "and we laughed all day", "what a lovely surprise")),
    "ang": (("i am furious", "this is outrageous", "how dare you", "i am sick of this",
             "that is unacceptable", "i am so angry", "stop lying to me", "this makes me mad",
             "enough of this nonsense", "i hate this", "you ruined everything",
             "get out of here"),
            ("and i am furious about it", "which is outrageous", "and that makes me so angry",
             "and i hate it", "which is completely unacceptable", "and i am sick of it",
             "and it was your fault", "which drives me crazy", "and i will not forgive that",
             "you stupid fool", "and i am fed up", "which is a disgrace")),
    "sad": (("i feel so sad", "i miss them so much", "it breaks my heart", "i am so lonely",
             "nothing matters anymore", "i feel hopeless", "i cannot stop crying",
             "it is all so painful", "i am heartbroken", "everything feels empty",
             "i lost everything", "i wish it were different"),
            ("and it breaks my heart", "which makes me so sad", "and now i feel empty",
             "and i cannot stop crying", "and i miss it terribly", "which is so painful",
             "and i feel so alone", "and nothing will be the same", "and i am heartbroken",
             "which hurts so much", "and i feel hopeless", "and my heart aches")),
    "neg": (("this is terrible", "what a mess", "i cannot believe it", "this is awful",
             "that is so wrong", "it is a real shame", "things went badly", "this went all wrong",
             "this should not happen", "what a disaster", "it is just not right",
             "this is bad news"),
            ("which is terrible", "and it was awful", "which is a real shame",
             "and that is so wrong", "and it all went badly", "which should not happen",
             "and it was a disaster", "which is bad news", "and it is just not right",
             "what a mess", "and i cannot believe it", "which is just awful")),
}
NOISE_TAGS = ("[LAUGHTER]", "[BREATHING]", "[GARBAGE]")
NOISE_TAG_PROB = 0.03
# Emotion category names written to EmoEvaluation.
CATEGORIES = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger",
              "sad": "Sadness", "fru": "Frustration", "xxx": "Other"}
# The [V, A, D] written to EmoEvaluation (1-5) follow the cues, as the modalities carry them:
# valence from the words' class, activation and dominance from the voice's.
VALENCE = {"neu": 2.5, "hap": 4.0, "ang": 1.5, "sad": 1.5, "neg": 1.75}
AROUSAL_DOMINANCE = {"neu": (2.5, 2.5), "hap": (3.0, 3.0), "exc": (4.0, 3.5), "ang": (4.0, 4.0),
                     "sad": (2.0, 2.0), "high": (3.75, 3.5)}


def dimensions(utt):
    """(valence, activation, dominance) of a planned utterance, from its text and voice class."""
    return (VALENCE[utt.text_class], *AROUSAL_DOMINANCE[utt.voice_class])


class SynthError(RuntimeError):
    """Generation cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class SynthOptions:
    seed: int = 0
    utts_per_session: int = 300
    text_specific: float = 0.5   # P(the words of an angry/sad utterance name its emotion)
    voice_specific: float = 0.5  # P(the voice of a happy/angry utterance has its emotion's quality)
    snr_min: float = 15.0     # dB, additive white noise
    snr_max: float = 35.0

    def validate(self):
        for name in ("text_specific", "voice_specific"):
            if not 0 <= getattr(self, name) <= 1:
                raise SynthError(f"{name} is a probability, got {getattr(self, name)}")
        if self.utts_per_session < 1 or self.snr_min > self.snr_max:
            raise SynthError(f"invalid options {self}")


@dataclass(frozen=True)
class PlannedUtt:
    orig_id: str
    session: int
    label: str
    cue: str         # modality that alone identifies the label: text, voice, both, fusion
                     # (neither), none (neutral) or mixed (fru, xxx)
    text_class: str
    voice_class: str
    transcript: str  # may hold noise tags, which are not spoken

    @property
    def dialog(self):
        return self.orig_id.rsplit("_", 1)[0]

    @property
    def speaker(self):
        return f"Ses{self.session:02d}{self.orig_id[-4]}"

    @property
    def spoken_text(self):
        return " ".join(w for w in self.transcript.split() if w not in NOISE_TAGS)


def derived_rng(seed, *keys):
    """A generator that depends only on ``seed`` and ``keys`` (not on the order of generation)."""
    digest = hashlib.sha256("/".join(map(str, (seed, *keys))).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _label_counts(n):
    """Exact per-session label counts (largest remainder)."""
    raw = {label: share * n for label, share in LABEL_SHARES.items()}
    counts = {label: int(v) for label, v in raw.items()}
    for label in sorted(raw, key=lambda k: counts[k] - raw[k])[:n - sum(counts.values())]:
        counts[label] += 1
    return counts


def make_sentence(text_class, rng):
    leading, trailing = PHRASES[text_class]
    core = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} the {rng.choice(OBJECTS)}"
    if rng.random() < 0.5:
        sentence = f"{rng.choice(leading)}, {core}."
    else:
        sentence = f"{core}, {rng.choice(trailing)}."
    return sentence[0].upper() + sentence[1:].replace(" i ", " I ")


def dialog_names(session, n_dialogs):
    """Alternating improvised and scripted dialogs, recorded with the F or the M actor marked."""
    names = []
    for k in range(n_dialogs):
        marked = "FM"[k % 2]
        number = k // 2 + 1
        kind = f"impro{number:02d}" if k % 4 < 2 else f"script{number:02d}_{k % 2 + 1}"
        names.append(f"Ses{session:02d}{marked}_{kind}")
    return names


def plan_corpus(options):
    """Every utterance of the corpus: id, label, cue, text; depends only on ``options``."""
    n_dialogs = max(6, -(-options.utts_per_session // 80))  # <= 999 utterances per speaker
    plan = []
    for session in SESSIONS:
        rng = derived_rng(options.seed, "plan", session)
        labels = [label for label, n in _label_counts(options.utts_per_session).items()
                  for _ in range(n)]
        rng.shuffle(labels)
        dialogs = dialog_names(session, n_dialogs)
        counters = {}
        for i, label in enumerate(labels):
            dialog = dialogs[i % n_dialogs]
            letter = "FM"[rng.integers(2)]
            index = counters.get((dialog, letter), 0)
            counters[dialog, letter] = index + 1
            if label in MIXED_LABELS:
                cue = "mixed"
                text_class, voice_class = (str(c) for c in rng.choice(MIXED_LABELS[label], size=2))
            elif label == "neu":
                cue, text_class, voice_class = "none", "neu", "neu"
            else:
                text_alone = label not in TEXT_SHARED or rng.random() < options.text_specific
                voice_alone = label not in VOICE_SHARED or rng.random() < options.voice_specific
                text_class = TEXT_CLASS[label] if text_alone else "neg"
                voice_class = label if voice_alone else "high"
                cue = {(True, True): "both", (True, False): "text", (False, True): "voice",
                       (False, False): "fusion"}[text_alone, voice_alone]
            transcript = make_sentence(text_class, rng)
            if rng.random() < NOISE_TAG_PROB:
                transcript = f"{rng.choice(NOISE_TAGS)} {transcript}"
            plan.append(PlannedUtt(f"{dialog}_{letter}{index:03d}", session, label, cue,
                                   text_class, voice_class, transcript))
    return plan


def _jittered_voice(voice_class, rng):
    mean, sd = asdict(VOICE_PROFILES[voice_class]), asdict(VOICE_JITTER)
    values = {k: mean[k] + sd[k] * rng.standard_normal() for k in mean}
    values["range"] = max(values["range"], 10.0)
    values["harsh"] = float(np.clip(values["harsh"], 0, 1))
    values["breath"] = max(values["breath"], 0.0)
    values["tilt"] = max(values["tilt"], -0.9)
    return Voice(**values)


def _espeak(text, speaker, voice):
    name, base_pitch, speed = SPEAKER_VOICES[speaker]
    ssml = (f'<speak><prosody pitch="{voice.pitch:+.0f}%" range="{voice.range:.0f}%" '
            f'rate="{voice.rate:.0f}%">{escape(text)}</prosody></speak>')
    cmd = ["espeak-ng", "-v", name, "-p", str(base_pitch), "-s", str(speed), "-m", "--stdout", ssml]
    try:
        result = subprocess.run(cmd, capture_output=True, check=True)
    except FileNotFoundError:
        raise SynthError("espeak-ng not found; install it (apt-get install espeak-ng)") from None
    except subprocess.CalledProcessError as e:
        raise SynthError(f"{' '.join(cmd)} failed: {e.stderr.decode(errors='replace')}") from None
    audio, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float64")
    if rate != ESPEAK_RATE or audio.size == 0:
        raise SynthError(f"{' '.join(cmd)}: unexpected output ({audio.size} samples at {rate} Hz)")
    return audio


def _moving_average(x, width):
    return np.convolve(x, np.ones(width) / width, mode="same")


def synthesize(utt, seed, snr_range):
    """The 16 kHz float waveform of ``utt``; deterministic given ``seed`` and the utterance id."""
    rng = derived_rng(seed, "audio", utt.orig_id)
    voice = _jittered_voice(utt.voice_class, rng)
    x = resample_poly(_espeak(utt.spoken_text, utt.speaker, voice), SAMPLE_RATE, ESPEAK_RATE)
    # Complementary first-order bands: x = low + high, so "tilt" rescales the high band only.
    b, a = butter(1, 1500, btype="highpass", fs=SAMPLE_RATE)
    x = x + voice.tilt * lfilter(b, a, x)
    if voice.harsh > 0:  # saturation at the same RMS: a harsher, not a louder voice
        rms = np.sqrt(np.mean(x ** 2))
        x = np.tanh((1 + 6 * voice.harsh) * x / (np.abs(x).max() + 1e-9))
        x *= rms / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    if voice.breath > 0:
        envelope = _moving_average(np.abs(x), SAMPLE_RATE // 100)
        x = x + voice.breath * envelope * lfilter(b, a, rng.standard_normal(x.size))
    x = x * BASE_LEVEL * 10 ** (voice.gain_db / 20)
    speech_power = np.mean(x ** 2)
    snr_db = rng.uniform(*snr_range)
    x = x + np.sqrt(speech_power / 10 ** (snr_db / 10)) * rng.standard_normal(x.size)
    return np.clip(x, -1, 1)


def _write_wav(path, audio):
    with atomic_open(path, "wb") as f:
        soundfile.write(f, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")


def _wav_path(corpus_dir, utt):
    return os.path.join(corpus_dir, f"Session{utt.session}", "sentences", "wav", utt.dialog,
                        utt.orig_id + ".wav")


def _generate_one(job):
    """Worker: synthesize one utterance unless its wav exists (wavs are written atomically)."""
    corpus_dir, utt, seed, snr_range = job
    path = _wav_path(corpus_dir, utt)
    if not os.path.exists(path):
        _write_wav(path, synthesize(utt, seed, snr_range))
    return path


def _fmt_time(seconds, width):
    return f"{seconds:0{width}.4f}"


def write_annotations(corpus_dir, plan, seed):
    """EmoEvaluation and transcription files; utterance times follow the wav durations."""
    by_dialog = {}
    for utt in plan:
        by_dialog.setdefault((utt.session, utt.dialog), []).append(utt)
    for (session, dialog), utts in by_dialog.items():
        rng = derived_rng(seed, "timeline", dialog)
        labels = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcripts = []
        start = rng.uniform(0.5, 3.0)
        for utt in utts:
            end = start + soundfile.info(_wav_path(corpus_dir, utt)).duration
            category, vad = CATEGORIES[utt.label], dimensions(utt)
            labels.append(f"[{start:.4f} - {end:.4f}]\t{utt.orig_id}\t{utt.label}\t"
                          f"[{', '.join(f'{v:.4f}' for v in vad)}]")
            # Evaluator lines: categories (C-), attributes (A-); xxx means they disagreed.
            second = CATEGORIES[str(rng.choice(["neu", "fru", "sad"]))] if utt.label == "xxx" else category
            for evaluator, said in (("E1", category), ("E2", second), (utt.orig_id[-4] + "1", category)):
                labels.append(f"C-{evaluator}:\t{said};\t()")
            labels.append(f"A-E1:\tval {vad[0]:.0f}; act {vad[1]:.0f}; dom  {vad[2]:.0f};\t()")
            labels.append("")
            transcripts.append(f"{utt.orig_id} [{_fmt_time(start, 8)}-{_fmt_time(end, 8)}]: "
                               f"{utt.transcript}")
            if rng.random() < 0.05:  # an unlabelled fragment, as IEMOCAP's ..._MXX0 lines
                fragment_end = end + rng.uniform(0.3, 0.8)
                transcripts.append(f"{dialog}_{'FM'[rng.integers(2)]}XX0 "
                                   f"[{_fmt_time(end, 8)}-{_fmt_time(fragment_end, 8)}]: Mm-hmm.")
                end = fragment_end
            start = end + rng.uniform(0.2, 1.5)
        session_dir = os.path.join(corpus_dir, f"Session{session}", "dialog")
        atomic_write_text(os.path.join(session_dir, "EmoEvaluation", dialog + ".txt"),
                          "\n".join(labels) + "\n")
        atomic_write_text(os.path.join(session_dir, "transcriptions", dialog + ".txt"),
                          "\n".join(transcripts) + "\n")
    atomic_write_text(os.path.join(corpus_dir, "utt2cue"),
                      "".join(f"{u.orig_id} {u.cue} {u.text_class} {u.voice_class}\n"
                              for u in sorted(plan, key=lambda u: u.orig_id)))


def generate_corpus(corpus_dir, options=SynthOptions(), nj=1):
    """Generate (or finish generating) the corpus in ``corpus_dir``; return its plan.

    ``<corpus_dir>/.options.json`` records the options; a directory generated with other
    options is refused. ``<corpus_dir>/.done`` marks a complete corpus, which is skipped.
    """
    options.validate()
    recorded = {"generator_version": GENERATOR_VERSION, **asdict(options)}
    options_path = os.path.join(corpus_dir, ".options.json")
    done_path = os.path.join(corpus_dir, ".done")
    if os.path.exists(options_path):
        with open(options_path, encoding="utf-8") as f:
            previous = json.load(f)
        changed = {k: f"{previous.get(k)} -> {v}" for k, v in recorded.items() if previous.get(k) != v}
        if changed:
            raise SynthError(f"{corpus_dir} was generated with other options ({changed}); "
                             f"remove it or choose another directory")
    elif os.path.isdir(corpus_dir) and os.listdir(corpus_dir):
        raise SynthError(f"{corpus_dir} is not empty and holds no {os.path.basename(options_path)}; "
                         f"remove it or choose another directory")
    plan = plan_corpus(options)
    if os.path.exists(done_path):
        logging.info("%s: complete (%s), nothing to do", corpus_dir, done_path)
        return plan
    os.makedirs(corpus_dir, exist_ok=True)
    atomic_write_text(options_path, json.dumps(recorded, sort_keys=True) + "\n")
    snr_range = (options.snr_min, options.snr_max)
    jobs = [(corpus_dir, utt, options.seed, snr_range) for utt in plan]
    progress = dict(total=len(jobs), desc="synthesizing", unit="utt", mininterval=2)
    if nj > 1:
        with multiprocessing.Pool(nj) as pool:
            for _ in tqdm(pool.imap_unordered(_generate_one, jobs, chunksize=8), **progress):
                pass
    else:
        for job in tqdm(jobs, **progress):
            _generate_one(job)
    write_annotations(corpus_dir, plan, options.seed)
    atomic_write_text(done_path, json.dumps(recorded, sort_keys=True) + "\n")
    logging.info("%s: %d utterances in %d sessions", corpus_dir, len(plan), len(SESSIONS))
    return plan
