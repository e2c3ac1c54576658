"""Kaldi-compatible log-mel filterbank features (kaldi-native-fbank), optional energy and pitch.

Columns, as Kaldi's ``compute-fbank-feats --use-energy`` piped into ``paste-feats`` with
``compute-and-process-kaldi-pitch-feats``: [log energy (if use_energy)] + num_mel_bins log-mel
energies + [POV, normalised log pitch, delta pitch (if use_pitch)]. Samples are scaled to the
16-bit range first (Kaldi convention), so values equal Kaldi's for the same wav. Dither is 0 by
default, so the features are deterministic. The pitch track is Kaldi's own algorithm
(kaldi-native-fbank ports it); its frames are aligned to the fbank frames (the last pitch row is
repeated or extra rows dropped, as ``paste-feats --length-tolerance``).
"""
import kaldi_native_fbank as knf
import numpy as np

from mser.features.audio import AudioExtractor

INT16_SCALE = 32768.0
PITCH_DIM = 3


class FbankExtractor(AudioExtractor):
    DEFAULTS = {
        "sample_rate": 16000,
        "num_mel_bins": 80,
        "frame_length_ms": 25.0,
        "frame_shift_ms": 10.0,
        "dither": 0.0,
        "low_freq": 20.0,
        "high_freq": 0.0,        # <= 0: offset from the Nyquist frequency (Kaldi)
        "snip_edges": True,
        "use_energy": False,     # log energy as the first column
        "use_pitch": False,      # 3 Kaldi pitch columns appended
        "pitch_min_f0": 50.0,
        "pitch_max_f0": 400.0,
    }
    # Audio loaded per batch in a dump job; fbank works one utterance at a time anyway.
    batch_seconds = 60.0
    num_layers = 1

    def __init__(self, conf, device="cpu"):
        del device  # CPU only
        self.conf = conf
        self.sample_rate = int(conf["sample_rate"])
        self.frame_rate = 1000.0 / conf["frame_shift_ms"]
        self.dim = conf["num_mel_bins"] + int(conf["use_energy"]) + PITCH_DIM * int(conf["use_pitch"])
        self.fbank_opts = knf.FbankOptions()
        frame = self.fbank_opts.frame_opts
        frame.samp_freq = self.sample_rate
        frame.frame_length_ms = conf["frame_length_ms"]
        frame.frame_shift_ms = conf["frame_shift_ms"]
        frame.dither = conf["dither"]
        frame.snip_edges = conf["snip_edges"]
        self.fbank_opts.mel_opts.num_bins = conf["num_mel_bins"]
        self.fbank_opts.mel_opts.low_freq = conf["low_freq"]
        self.fbank_opts.mel_opts.high_freq = conf["high_freq"]
        self.fbank_opts.use_energy = conf["use_energy"]
        self.pitch_opts = knf.PitchExtractionOptions()
        self.pitch_opts.samp_freq = self.sample_rate
        self.pitch_opts.frame_length_ms = conf["frame_length_ms"]
        self.pitch_opts.frame_shift_ms = conf["frame_shift_ms"]
        self.pitch_opts.snip_edges = conf["snip_edges"]
        self.pitch_opts.min_f0 = conf["pitch_min_f0"]
        self.pitch_opts.max_f0 = conf["pitch_max_f0"]
        self.process_pitch_opts = knf.ProcessPitchOptions()

    def num_frames(self, num_samples):
        shift = int(self.sample_rate * self.conf["frame_shift_ms"] / 1000)
        length = int(self.sample_rate * self.conf["frame_length_ms"] / 1000)
        if not self.conf["snip_edges"]:
            return (num_samples + shift // 2) // shift
        return 0 if num_samples < length else 1 + (num_samples - length) // shift

    def extract_batch(self, waveforms):
        return [self._extract_one(w) for w in waveforms]

    def _extract_one(self, waveform):
        samples = np.asarray(waveform, dtype=np.float32) * INT16_SCALE
        fbank = knf.OnlineFbank(self.fbank_opts)
        fbank.accept_waveform(self.sample_rate, samples)
        fbank.input_finished()
        feats = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)],
                         dtype=np.float32).reshape(-1, fbank.dim)
        if len(feats) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self.conf["use_pitch"]:
            return feats
        pitch = knf.compute_and_process_kaldi_pitch(self.pitch_opts, self.process_pitch_opts, samples)
        rows = np.minimum(np.arange(len(feats)), len(pitch) - 1)
        return np.concatenate([feats, pitch[rows].astype(np.float32)], axis=1)
