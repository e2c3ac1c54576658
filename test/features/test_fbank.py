"""fbank: equal to kaldi-native-fbank called directly; other sample rates are resampled."""
import kaldi_native_fbank as knf
import numpy as np
import pytest
from scipy.signal import resample_poly

from mser.features import FeatureConfigError, build_extractor, resolve_config
from mser.features.audio import read_wav


def direct_knf_fbank(wave, rate=16000, num_bins=80):
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = rate
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = num_bins
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(rate, (wave * 32768).astype(np.float32))
    fbank.input_finished()
    return np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def test_fbank_equals_kaldi_native_fbank():
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, 16000 * 2).astype(np.float32)
    extractor = build_extractor({"extractor": "fbank"})
    feats = extractor.extract_wav(wave, 16000)
    np.testing.assert_array_equal(feats, direct_knf_fbank(wave))
    assert feats.shape == (extractor.num_frames(len(wave)), 80) == (198, 80)
    assert extractor.frame_rate == 100 and extractor.num_layers == 1


def test_energy_and_pitch_columns():
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, 16000).astype(np.float32)
    feats = build_extractor({"extractor": "fbank", "use_energy": True, "use_pitch": True}
                            ).extract_wav(wave, 16000)
    plain = direct_knf_fbank(wave)
    assert feats.shape == (len(plain), 1 + 80 + 3)
    np.testing.assert_allclose(feats[:, 1:81], plain, rtol=1e-5, atol=1e-4)
    pitch = knf.compute_and_process_kaldi_pitch(knf.PitchExtractionOptions(),
                                                knf.ProcessPitchOptions(), wave * 32768)
    n = min(len(pitch), len(feats))
    np.testing.assert_array_equal(feats[:n, 81:], pitch[:n])


def test_8khz_wav_is_resampled(make_data_dir):
    data = make_data_dir({"spk1_a": 1.5}, rate=8000)
    path = open(f"{data}/wav.scp").read().split()[1]
    wave8k, rate = read_wav("spk1_a", path)
    assert rate == 8000
    wave16k, rate = read_wav("spk1_a", path, sample_rate=16000)
    assert rate == 16000 and len(wave16k) == 2 * len(wave8k)
    np.testing.assert_allclose(wave16k, resample_poly(wave8k.astype(np.float64), 2, 1), atol=1e-6)
    extractor = build_extractor({"extractor": "fbank"})
    np.testing.assert_array_equal(extractor.extract_wav(wave8k, 8000),
                                  extractor.extract_batch([wave16k])[0])


def test_unknown_key_is_an_error():
    with pytest.raises(FeatureConfigError, match="num_mel_bin"):
        resolve_config({"extractor": "fbank", "num_mel_bin": 40})
    with pytest.raises(FeatureConfigError, match="unknown extractor"):
        resolve_config({"extractor": "mfcc"})


@pytest.mark.parametrize("line,message", [
    ("num_mel_bins: eighty", "num_mel_bins: expected an integer, got 'eighty' (str)"),
    ('use_pitch: "no"', "use_pitch: expected true or false, got 'no' (str)"),
    ("frame_shift_ms: [10]", "frame_shift_ms: expected an integer or a number, got [10] (list)"),
    ("sample_rate: true", "sample_rate: expected an integer, got True (bool)"),
    ("skip_bad: 1", "skip_bad: expected true or false, got 1 (int)"),
])
def test_config_values_are_type_checked_naming_file_and_key(tmp_path, line, message):
    """What utils/dump_feats.sh runs: the error names the YAML file and the key, no traceback."""
    from mser.bin import extract_feats

    conf = tmp_path / "fbank.yaml"
    conf.write_text(f"extractor: fbank\n{line}\n")
    with pytest.raises(SystemExit) as e:
        extract_feats.main(["--config", str(conf), "--data-dir", str(tmp_path), "--out-dir",
                            str(tmp_path / "dump"), "--nj", "1", "--job", "1"])
    assert str(e.value) == f"extract_feats (job 1/1): {conf}: {message}"


def test_config_types_accept_documented_values():
    conf = resolve_config({"extractor": "fbank", "frame_shift_ms": 10, "use_pitch": False,
                           "high_freq": -200})
    assert conf["frame_shift_ms"] == 10 and conf["high_freq"] == -200
    text = resolve_config({"extractor": "hf_text", "layers": [1, 2], "tag_pattern": None,
                           "model_dir": "${MSER_MODELS:-downloads}/mpnet"})
    assert text["tag_pattern"] is None
    assert resolve_config({"extractor": "hf_text", "layers": "4-6"})["layers"] == "4-6"
    with pytest.raises(FeatureConfigError, match=r"^max_length: expected an integer, got None"):
        resolve_config({"extractor": "hf_text", "max_length": None})


def test_too_short_audio_has_the_right_width_and_a_clear_reason():
    extractor = build_extractor({"extractor": "fbank", "use_energy": True, "use_pitch": True})
    assert extractor.extract_wav(np.full(320, 0.01, np.float32), 16000).shape == (0, 84)
    assert extractor.min_samples() == 400 and extractor.num_frames(400) == 1
    assert extractor.length_problem(400) is None
    assert extractor.length_problem(320) == ("too short (0.020 s) for a single feature frame; "
                                             "the features need at least 0.025 s")
    centred = build_extractor({"extractor": "fbank", "snip_edges": False})
    assert centred.min_samples() == 80 and centred.num_frames(79) == 0
