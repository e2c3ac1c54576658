"""mser-serve: the JSON API (upload -> timeline JSON, tables), its limits and error messages,
two requests at once, nothing left on disk; and the page in a real headless Chromium."""
import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
import soundfile

from mser.io.datadir import read_table
from mser.features.audio import read_wav, resample
from mser.serve import create_app
from mser.timeline import Timeline, TimelineRecognizer
from mser.utils.calibration import load_temperatures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test", "artifacts")   # the browser test's screenshot
RATE = 16000
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,1000")


@pytest.fixture(scope="module")
def recognizer(demo_model):
    return TimelineRecognizer(demo_model["model_dir"])   # packaged Whisper tiny.en transcribes


@pytest.fixture(scope="module")
def recording(demo_model, tmp_path_factory):
    """Three demo test utterances between pauses, as a 44.1 kHz wav (any rate is taken)."""
    data = demo_model["data"] / "fold1" / "test"
    parts = [np.zeros(RATE // 2, np.float32)]
    for utt, wav in list(read_table(data / "wav.scp").items())[:3]:
        parts += [read_wav(utt, wav, RATE)[0], np.zeros(RATE, np.float32)]
    path = tmp_path_factory.mktemp("upload") / "three utterances.wav"
    soundfile.write(path, resample(np.concatenate(parts), RATE, 44100), 44100, subtype="PCM_16")
    return path


@pytest.fixture
def client(recognizer, tmp_path):
    from fastapi.testclient import TestClient

    work = tmp_path / "work"
    work.mkdir()
    app = create_app(recognizer, max_upload_mb=2, max_duration=20, work_dir=str(work))
    with TestClient(app) as test_client:
        yield test_client, work


def upload(client, path, name=None, **data):
    with open(path, "rb") as f:
        return client.post("/api/timeline", files={"audio": (name or os.path.basename(path), f)},
                           data=data)


def test_upload_answers_the_timeline_json(client, recording, demo_model):
    client, work = client
    response = upload(client, recording, attention="true")
    assert response.status_code == 200, response.text
    timeline = response.json()
    assert timeline["recording"] == "three_utterances" and timeline["source"] == recording.name
    assert timeline["asr"] == "packaged:whisper-tiny.en"
    assert timeline["classes"] == ["neu", "hap", "ang", "sad"]
    assert len(timeline["segments"]) == 3
    for segment in timeline["segments"]:
        assert segment["emotion"] in timeline["classes"] and segment["transcript"]
        assert sum(segment["probabilities"].values()) == pytest.approx(1, abs=1e-3)
        weights = np.array(segment["attention"]["weights"])
        assert weights.shape[1] == (segment["attention"]["audio_frames"]
                                    + len(segment["attention"]["tokens"]))
    tsv = client.post("/api/table?format=tsv", json=timeline)
    assert tsv.status_code == 200
    assert tsv.text == Timeline.from_dict(timeline).table("\t")
    as_csv = client.post("/api/timeline?format=csv",
                         files={"audio": ("x.wav", recording.read_bytes())})
    assert as_csv.text.splitlines()[0].startswith("segment,start,end,transcript,emotion,p(neu)")
    assert os.listdir(work) == []   # the request's temporary dir is gone
    info = client.get("/api/info").json()
    assert info["max_upload_mb"] == 2 and info["max_duration"] == 20 and info["attention"]
    # the trained demo model's dev temperatures, one per stream condition
    assert info["calibration"] == load_temperatures(demo_model["model_dir"]) != {}


def test_oversized_corrupt_and_unsupported_uploads_get_a_message(client, recording, tmp_path):
    client, work = client
    big = tmp_path / "big.wav"
    soundfile.write(big, np.zeros(70 * RATE, np.int16), RATE, subtype="PCM_16")   # 2.2 MB
    response = upload(client, big)
    assert response.status_code == 413
    assert response.json()["detail"] == ("upload too large: this server takes at most 2 MB "
                                         "(mser-serve --max-upload-mb)")
    long = tmp_path / "long.wav"
    soundfile.write(long, np.zeros(25 * 8000, np.int16), 8000, subtype="PCM_16")     # 0.4 MB
    response = upload(client, long)
    assert response.status_code == 413
    assert response.json()["detail"] == ("long.wav: 25.0 s of audio; this server takes at most "
                                         "20 s (mser-serve --max-duration)")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(3000))
    response = upload(client, corrupt)
    assert response.status_code == 415
    assert "corrupt.wav: unsupported or corrupt audio" in response.json()["detail"]
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n")
    assert upload(client, text).status_code == 415
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert upload(client, empty).json()["detail"] == "empty.wav: the upload is empty"
    no_samples = tmp_path / "silent.wav"
    soundfile.write(no_samples, np.zeros(0, np.int16), RATE, subtype="PCM_16")  # a header only
    response = upload(client, no_samples)
    assert response.status_code == 400
    assert response.json() == {"detail": "silent.wav: the recording has no samples (0 s of audio)"}
    # A wav whose header says 0 frames but that holds samples (a streaming writer's) is decoded.
    import struct

    from mser.serve import readable_audio

    streamed = bytearray(long.read_bytes())
    data = streamed.find(b"data")
    streamed[4:8] = streamed[data + 4:data + 8] = struct.pack("<I", 0)
    (tmp_path / "streamed.wav").write_bytes(streamed)
    assert soundfile.info(tmp_path / "streamed.wav").frames == 0
    decoded = readable_audio(str(tmp_path / "streamed.wav"), str(tmp_path))
    assert soundfile.info(decoded).frames == 25 * 16000  # 25 s at 8 kHz, read at 16 kHz
    missing_file = client.post("/api/timeline")
    assert missing_file.status_code == 422
    assert isinstance(missing_file.json()["detail"], str)  # one string, as every error
    assert "audio" in missing_file.json()["detail"]
    bad_format = client.post("/api/timeline?format=xml", files={"audio": ("x.wav", b"RIFF")})
    assert bad_format.status_code == 400 and "choose json, tsv or csv" in bad_format.text
    not_a_timeline = client.post("/api/table", json={"segments": []})
    assert not_a_timeline.status_code == 422 and "not a timeline JSON" in not_a_timeline.text
    no_classes = client.post("/api/table", json={"recording": "r", "duration": 1.0,
                                                 "classes": None, "segments": []})
    assert no_classes.status_code == 422 and "'classes'" in no_classes.json()["detail"]
    assert client.get("/docs").status_code == 404  # it would load its scripts from a CDN
    assert client.get("/openapi.json").json()["info"]["title"] == "mser-serve"
    assert os.listdir(work) == []


def test_an_internal_error_is_a_message_not_a_stack_trace(recognizer, recording, tmp_path,
                                                          monkeypatch):
    from fastapi.testclient import TestClient

    def fail(*args, **kwargs):
        raise RuntimeError("model exploded")
    monkeypatch.setattr(recognizer, "timeline_file", fail)
    stopped = []
    app = create_app(recognizer, work_dir=str(tmp_path), on_shutdown=lambda: stopped.append(1))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = upload(client, recording)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError: model exploded); see "
                                         "the server's log"}
    assert os.listdir(tmp_path) == []
    assert stopped == [1]   # mser-serve removes its temporary dir there


def test_webm_from_the_browser_recorder_is_decoded(client, recording, tmp_path):
    """What MediaRecorder sends (webm/opus) goes through FFmpeg (PyAV)."""
    import av

    client, _ = client
    wave, rate = soundfile.read(recording, dtype="int16")
    webm = tmp_path / "recording.webm"
    with av.open(str(webm), "w") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(wave[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for piece in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(piece):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    response = upload(client, webm)
    assert response.status_code == 200, response.text
    assert len(response.json()["segments"]) == 3


@pytest.fixture(scope="module")
def server(recognizer, tmp_path_factory):
    """mser-serve's app under uvicorn on a free localhost port (a thread)."""
    import uvicorn

    work = tmp_path_factory.mktemp("serve_work")
    app = create_app(recognizer, work_dir=str(work))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    yield f"http://127.0.0.1:{port}", work
    server.should_exit = True
    thread.join(10)


def test_two_requests_at_once_both_complete(server, recording):
    import httpx

    url, work = server
    results = [None, None]

    def post(k):
        with open(recording, "rb") as f:
            results[k] = httpx.post(f"{url}/api/timeline", files={"audio": (f"r{k}.wav", f)},
                                    timeout=300)
    threads = [threading.Thread(target=post, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert [r.status_code for r in results] == [200, 200]
    first, second = (r.json() for r in results)
    assert [s["emotion"] for s in first["segments"]] == [s["emotion"] for s in second["segments"]]
    assert os.listdir(work) == []


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver: bash tools/install.sh "
                           "(or apt-get install -y chromium chromium-driver)")
def chromium(tmp_path):
    """A headless Chromium driven by selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def analyse_in_page(driver, url, recording):
    """Open the page, upload ``recording`` through its file input and wait for the segment
    table (no error); its rows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, 30).until(
        lambda d: "classes: neu, hap, ang, sad" in d.find_element(By.ID, "info").text)
    driver.find_element(By.ID, "file").send_keys(str(recording))
    driver.find_element(By.ID, "analyse").click()
    WebDriverWait(driver, 240).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
        or d.find_element(By.ID, "error").text)
    assert driver.find_element(By.ID, "error").text == ""
    return driver.find_elements(By.CSS_SELECTOR, "#segments tbody tr")


def test_page_in_headless_chromium_shows_the_timeline(server, recording, tmp_path):
    """The page loads, a wav is uploaded through its file input, the timeline (SVG bands), the
    segment table and, on a click, a segment's query attention appear; screenshot in
    test/artifacts/page.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    driver = chromium(tmp_path)
    try:
        rows = analyse_in_page(driver, url, recording)
        assert "probabilities: calibrated on dev (temperature both " in driver.find_element(
            By.ID, "info").text
        assert len(rows) == 3
        bands = driver.find_elements(By.CSS_SELECTOR, "#timeline g")
        assert len(bands) == 3 and all(len(g.find_elements(By.CSS_SELECTOR, "rect")) == 4
                                       for g in bands)
        assert driver.find_element(By.ID, "summary").text.startswith("three_utterances: ")
        rows[1].click()
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.ID, "attention-box").is_displayed())
        assert "Query attention of" in driver.find_element(By.ID, "attention-title").text
        os.makedirs(ARTIFACTS, exist_ok=True)
        driver.save_screenshot(os.path.join(ARTIFACTS, "page.png"))
    finally:
        driver.quit()
    with open(os.path.join(ARTIFACTS, "page.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver: bash tools/install.sh")
def test_the_page_shows_a_models_dimensions(demo_dimensions_model, recording, tmp_path):
    """A model with regression heads (the demo's dimensions): /api/info names them, the page's
    table has a column each and its timeline a curve each."""
    from selenium.webdriver.common.by import By

    app = create_app(TimelineRecognizer(demo_dimensions_model["model_dir"], asr=None),
                     work_dir=str(tmp_path))
    server, thread, url = serve_in_thread(app)
    driver = chromium(tmp_path)
    try:
        info = json.loads(urllib.request.urlopen(url + "/api/info").read())
        assert info["tasks"] == {"valence": "regression", "arousal": "regression",
                                 "dominance": "regression"}
        rows = analyse_in_page(driver, url, recording)
        header = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#segments-head th")]
        assert header[-4:] == ["valence", "arousal", "dominance", "transcript"]
        dominance = rows[0].find_elements(By.TAG_NAME, "td")[-2].text
        assert re.fullmatch(r"-?\d+\.\d\d", dominance), dominance
        curves = driver.find_elements(By.CSS_SELECTOR, "#timeline polyline")
        assert len(curves) == 3
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(10)


class SlowTimeline:
    """A stand-in TimelineRecognizer: a recording named long* takes 60 s in batches of 0.1 s,
    short* 0.5 s, asking ``cancelled()`` before each batch and holding ``gate()`` during it (as
    TimelineRecognizer.run does); others answer at once."""

    def __init__(self):
        from types import SimpleNamespace

        self.recognizer = SimpleNamespace(classes=["neu", "ang"], modalities=("audio",),
                                          config={"model_conf": {"fusion": "query"}}, tasks={})
        self.asr_name, self.stopped = None, threading.Event()

    def segmenter_info(self):
        return {"kind": "fixed"}

    def timeline_file(self, path, name, return_attention=False, progress=True, cancelled=None,
                      gate=None):
        import contextlib

        from mser.timeline import Cancelled, check_cancelled

        batches = 600 if name.startswith("long") else 5 if name.startswith("short") else 0
        for _ in range(batches):
            try:
                check_cancelled(cancelled, name)
                with gate() if gate else contextlib.nullcontext():
                    time.sleep(0.1)
            except Cancelled:
                self.stopped.set()
                raise
        return Timeline(name, 1.0, ["neu", "ang"], [])


def serve_in_thread(app):
    from mser.serve import stopping_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = stopping_server(app, "127.0.0.1", port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    return server, thread, f"http://127.0.0.1:{port}"


def test_an_abandoned_request_stops_and_frees_the_model(tmp_path):
    """The client of a long request gives up after 1 s: its work stops within a second or two
    and the next request is answered at once, not after the long one's 60 s."""
    import httpx

    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(RATE, np.float32), RATE)
    slow = SlowTimeline()
    server, thread, url = serve_in_thread(create_app(slow, work_dir=str(tmp_path)))
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/api/timeline", files={"audio": ("long.wav", wav.read_bytes())},
                       timeout=1.0)
        assert slow.stopped.wait(5), "the abandoned request was not stopped"
        start = time.time()
        short = httpx.post(f"{url}/api/timeline", files={"audio": ("short.wav", wav.read_bytes())},
                           timeout=30)
        assert short.status_code == 200 and time.time() - start < 5
    finally:
        server.should_exit = True
        thread.join(10)


def test_stopping_the_server_stops_the_request_in_flight(tmp_path):
    """What mser-serve does on SIGTERM (app.state.stopping, then uvicorn's exit): the request in
    flight ends with a 503 within a second or two, and the server thread exits."""
    import httpx

    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(RATE, np.float32), RATE)
    slow = SlowTimeline()
    app = create_app(slow, work_dir=str(tmp_path))
    server, thread, url = serve_in_thread(app)
    answers = []
    request = threading.Thread(target=lambda: answers.append(httpx.post(
        f"{url}/api/timeline", files={"audio": ("long.wav", wav.read_bytes())}, timeout=60)))
    request.start()
    time.sleep(1.0)
    start = time.time()
    server.handle_exit(15, None)  # SIGTERM's handler
    request.join(10)
    thread.join(10)
    assert slow.stopped.is_set() and time.time() - start < 5
    assert answers[0].status_code == 503 and "stopping" in answers[0].json()["detail"]
    assert not thread.is_alive()


def test_a_short_request_takes_turns_with_a_long_one_and_a_full_server_refuses_at_once(tmp_path):
    """The model is held one batch at a time, first come, first served: a 0.5 s request sent
    while a 60 s one runs is answered in about its own time, not after the long one. With
    --max-requests 2 reached, a third request is refused at once: 503 with Retry-After."""
    import httpx

    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(RATE, np.float32), RATE)
    slow = SlowTimeline()
    server, thread, url = serve_in_thread(create_app(slow, work_dir=str(tmp_path),
                                                     max_requests=2))
    def give_up_after_4_s(name):  # the client's time-out: its work stops
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(f"{url}/api/timeline", files={"audio": (name, wav.read_bytes())},
                       timeout=4.0)

    long_request = threading.Thread(target=give_up_after_4_s, args=("long.wav",), daemon=True)
    try:
        long_request.start()
        time.sleep(0.5)
        start = time.time()
        short = httpx.post(f"{url}/api/timeline", files={"audio": ("short.wav", wav.read_bytes())},
                           timeout=30)
        assert short.status_code == 200 and time.time() - start < 1.5  # 5 turns of 0.1 s
        holder = threading.Thread(target=give_up_after_4_s, args=("long2.wav",), daemon=True)
        holder.start()
        time.sleep(0.3)
        start = time.time()
        refused = httpx.post(f"{url}/api/timeline", files={"audio": ("short.wav",
                                                                   wav.read_bytes())})
        assert refused.status_code == 503 and time.time() - start < 1.0
        assert refused.headers["Retry-After"] == "10" and "busy" in refused.json()["detail"]
    finally:
        long_request.join(10)
        server.should_exit = True
        thread.join(10)


def test_fair_slots_serve_waiters_in_order_and_a_cancelled_one_leaves_the_queue():
    """A holder that releases and asks again queues behind the waiters (a, b, a, b, a), and a
    waiter whose request is cancelled gives its place up without ever holding a slot."""
    from mser.serve import DISCONNECT_POLL, FairSlots
    from mser.timeline import Cancelled

    slots, order = FairSlots(1), []

    def turns(name, count, hold):
        for _ in range(count):
            with slots.slot(name=name):
                order.append(name)
                time.sleep(hold)

    first = threading.Thread(target=turns, args=("a", 3, 0.2))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=turns, args=("b", 2, 0.2))
    second.start()
    first.join(10)
    second.join(10)
    assert order == ["a", "b", "a", "b", "a"]

    cancel, outcome = threading.Event(), []

    def gives_up():
        try:
            with slots.slot(cancelled=cancel.is_set, name="quitter"):
                outcome.append("held")
        except Cancelled:
            outcome.append("gave up")

    holder = threading.Thread(target=turns, args=("c", 1, 3 * DISCONNECT_POLL))
    holder.start()
    time.sleep(0.05)
    quitter = threading.Thread(target=gives_up)
    quitter.start()
    time.sleep(0.05)
    cancel.set()  # noticed at its next poll, long before c's turn ends
    quitter.join(5)
    holder.join(5)
    assert outcome == ["gave up"]
    with slots.slot(name="d"):  # the slot is free again: nothing was lost
        order.append("d")
    assert order[-1] == "d"
