"""Feature-test fixtures: tiny data dirs with generated wavs."""
import numpy as np
import pytest
import soundfile


@pytest.fixture
def make_data_dir(tmp_path):
    """make_data_dir({utt: seconds or None (empty wav) or "corrupt"}, rate=16000, texts=None)."""
    def make(durations, rate=16000, texts=None, name="data"):
        data, wavs = tmp_path / name, tmp_path / f"{name}_wavs"
        data.mkdir()
        wavs.mkdir()
        rng = np.random.default_rng(0)
        wav_scp, utt2spk = [], []
        for utt in sorted(durations):
            path = wavs / f"{utt}.wav"
            seconds = durations[utt]
            if seconds == "corrupt":
                path.write_bytes(b"RIFF\x00\x00not a wav file at all")
            else:
                t = np.arange(int((seconds or 0) * rate)) / rate
                wave = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(len(t))
                soundfile.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
            wav_scp.append(f"{utt} {path}\n")
            utt2spk.append(f"{utt} {utt.split('_')[0]}\n")
        (data / "wav.scp").write_text("".join(wav_scp))
        (data / "utt2spk").write_text("".join(utt2spk))
        texts = texts or {utt: "i am fine thank you" for utt in durations}
        (data / "text").write_text("".join(f"{u} {texts[u]}".rstrip() + "\n" for u in sorted(texts)))
        return str(data)
    return make
