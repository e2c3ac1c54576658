"""The local web page and JSON API of mser-serve (FastAPI): upload or record audio, get its
emotion timeline (:mod:`mser.timeline`).

Endpoints (their OpenAPI schema is at ``/openapi.json``; the interactive ``/docs`` page is off:
it loads its scripts from a CDN and would be blank offline):

- ``GET /``: the page (``mser/web/index.html``);
- ``GET /api/info``: the model's classes, modalities, ASR, segmenter, the temperature per stream
  condition its probabilities are calibrated with (null: as trained) and the server's limits;
- ``POST /api/timeline``: multipart form, ``audio`` = the recording (wav, flac, ogg, mp3, m4a,
  webm, ...), ``attention`` = true to add each segment's query attention; returns the timeline
  JSON (``mser-timeline``'s timeline.json), or with ``?format=tsv|csv`` its table::

      curl -F audio=@call.wav http://127.0.0.1:8000/api/timeline
      curl -F audio=@call.wav 'http://127.0.0.1:8000/api/timeline?format=tsv'

- ``POST /api/table?format=tsv|csv``: the table of a timeline JSON (the page's download).

Limits: a request body over ``max_upload_mb`` is refused (413) before it is read; a recording
longer than ``max_duration`` seconds is refused (413); audio that neither libsndfile nor FFmpeg
(PyAV) decodes is refused (415) with a message, a recording without samples with 400. Every
error, a malformed request's (422) included, is JSON ``{"detail": "<one string>"}``, never a
stack trace (it goes to the server's log). Uploads are written only under ``work_dir`` (a
temporary dir, one per request, removed when it ends). Requests take turns through the model
one batch of segments at a time (``max_concurrent`` batches at once, first come, first served),
so a short recording is not stuck behind a long one; beyond ``max_requests`` in progress a new
request is refused at once (503, ``Retry-After``). A request whose client disconnects stops
(waiting or working) within a batch of segments, freeing the model for the next;
``app.state.stopping.set()`` (mser-serve on SIGTERM / Ctrl-C) stops every request the same way
(503), so the server exits within seconds.
"""
import asyncio
import collections
import contextlib
import logging
import os
import re
import tempfile
import threading
from importlib import resources

import soundfile

from mser.features.audio import BadUtteranceError, NoSamplesError, decode_with_av

WEB_DIR = "web"
UPLOAD_CHUNK = 1 << 20
DECODE_RATE = 16000
DISCONNECT_POLL = 0.5   # seconds between checks of a request's client and of its slot
RETRY_AFTER = 10        # seconds a refused request (503: full) is told to wait


class UploadLimit:
    """ASGI middleware: a POST body over ``max_bytes`` is answered 413 (by its Content-Length
    before anything is read, or as soon as a streamed body passes the limit)."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    def message(self):
        return (f"upload too large: this server takes at most {self.max_bytes / 1e6:.0f} MB "
                f"(mser-serve --max-upload-mb)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"detail": self.message()}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self.message())
            return message

        return await self.app(scope, limited_receive, send)


class FairSlots:
    """At most ``size`` holders of the model at once, the others served first come, first
    served: a request holds a slot for one batch of segments and queues again behind the
    waiting ones for its next (a plain semaphore lets the releasing thread take the slot back at
    once, so one long recording would starve every short request behind it)."""

    def __init__(self, size):
        self._lock = threading.Lock()
        self._free = size
        self._waiting = collections.deque()

    def release(self):
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # handed over, never free in between
            else:
                self._free += 1

    @contextlib.contextmanager
    def slot(self, cancelled=None, name=""):
        """Hold a slot for the ``with`` block; ``cancelled()`` is asked while waiting (True:
        :class:`mser.timeline.Cancelled`, the place in the queue given up)."""
        from mser.timeline import Cancelled, check_cancelled

        with self._lock:
            ticket = None
            if self._free and not self._waiting:
                self._free -= 1
            else:
                ticket = threading.Event()
                self._waiting.append(ticket)
        try:
            while ticket is not None and not ticket.wait(DISCONNECT_POLL):
                check_cancelled(cancelled, name)
        except Cancelled:
            with self._lock:
                granted = ticket.is_set()
                if not granted:
                    self._waiting.remove(ticket)
            if granted:  # handed over while giving up: pass it on
                self.release()
            raise
        try:
            yield
        finally:
            self.release()


def recording_name(filename):
    stem = os.path.splitext(os.path.basename(filename or ""))[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "upload"


def readable_audio(path, work):
    """``path`` if libsndfile reads samples from it, else a 16 kHz wav FFmpeg (PyAV) decoded it
    into (also a wav whose header says 0 frames, as a streaming writer leaves it). Raises
    ValueError when neither can, :class:`NoSamplesError` when there is nothing to decode."""
    try:
        if soundfile.info(path).frames > 0:
            return path
    except Exception:  # soundfile raises several types for unreadable audio
        pass
    samples = decode_with_av(path, DECODE_RATE)
    decoded = os.path.join(work, "decoded.wav")
    soundfile.write(decoded, samples, DECODE_RATE, subtype="PCM_16")
    return decoded


def http_error(status, detail, headers=None):
    """The FastAPI exception of an error answer (FastAPI is imported only by the server)."""
    from fastapi import HTTPException

    return HTTPException(status, detail, headers=headers)


def table_response(timeline, fmt):
    """The TSV or CSV table of a timeline as a response."""
    from fastapi.responses import PlainTextResponse

    if fmt not in ("tsv", "csv"):
        raise http_error(400, f"format {fmt!r}: choose json, tsv or csv")
    return PlainTextResponse(timeline.table("\t" if fmt == "tsv" else ","),
                             media_type=f"text/{'tab-separated-values' if fmt == 'tsv' else 'csv'}")


async def malformed_request(request, error):
    """422 with one line per problem of a request FastAPI could not validate."""
    from fastapi.responses import JSONResponse

    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                         for e in error.errors())
    return JSONResponse({"detail": f"malformed request: {problems}"}, status_code=422)


async def internal_error(request, error):
    """500 naming the error; the stack trace goes to the server's log."""
    from fastapi.responses import JSONResponse

    logging.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error ({type(error).__name__}: {error}); "
                                   f"see the server's log"}, status_code=500)


class TimelineService:
    """What the routes of :func:`create_app` do: admission (``max_requests``), the upload's
    checks and decoding, the timeline in a worker thread taking turns through the model
    (``max_concurrent`` batches of segments at once), cancelled when the client goes away or
    ``stopping`` is set."""

    def __init__(self, timeline_recognizer, max_upload_mb, max_duration, work_dir,
                 max_concurrent, max_requests):
        self.timeline_recognizer = timeline_recognizer
        self.recognizer = timeline_recognizer.recognizer
        self.max_upload_mb, self.max_duration = max_upload_mb, max_duration
        self.work_dir, self.max_requests = work_dir, max_requests
        self.slots = FairSlots(max_concurrent)
        self.admitted = threading.BoundedSemaphore(max_requests)
        self.stopping = threading.Event()  # set by mser-serve on SIGTERM / Ctrl-C

    def info(self):
        recognizer = self.recognizer
        return {"classes": list(recognizer.classes), "modalities": list(recognizer.modalities),
                "tasks": recognizer.tasks,
                "asr": self.timeline_recognizer.asr_name,
                "segmenter": self.timeline_recognizer.segmenter_info(),
                "attention": recognizer.has_attention,
                "calibration": dict(recognizer.temperatures) or None,
                "max_upload_mb": self.max_upload_mb, "max_duration": self.max_duration}

    async def timeline(self, request, audio, attention, format):
        if format not in ("json", "tsv", "csv"):
            raise http_error(400, f"format {format!r}: choose json, tsv or csv")
        if not self.admitted.acquire(blocking=False):
            raise http_error(503, f"busy: {self.max_requests} requests in progress (mser-serve "
                                  f"--max-requests); try again later",
                             headers={"Retry-After": str(RETRY_AFTER)})
        try:
            return await self.timeline_response(request, audio, attention, format)
        finally:
            self.admitted.release()

    async def timeline_response(self, request, audio, attention, format):
        from fastapi.responses import JSONResponse

        from mser.timeline import Cancelled

        gone = threading.Event()  # the client disconnected: its work stops at the next batch

        async def watch_client():
            while not gone.is_set():
                if await request.is_disconnected():
                    gone.set()
                await asyncio.sleep(DISCONNECT_POLL)

        watcher = asyncio.create_task(watch_client())
        try:
            result, seconds = await asyncio.to_thread(
                self.run_request, audio, attention,
                lambda: gone.is_set() or self.stopping.is_set())
        except Cancelled as e:
            if self.stopping.is_set():
                raise http_error(503, "the server is stopping; try again later") from None
            logging.info("%s: the client went away; its timeline was stopped (%s)",
                         audio.filename, e)
            return JSONResponse({"detail": "cancelled: the client went away"}, status_code=499)
        finally:
            gone.set()
            watcher.cancel()
        name = audio.filename or "upload"
        result.source = name
        logging.info("%s: %.1f s, %d segment(s)", name, seconds, len(result.segments))
        if format != "json":
            return table_response(result, format)
        return result.to_dict(attention=attention)

    def run_request(self, audio, attention, cancelled):
        """(timeline, duration) of an upload, in a worker thread; raises Cancelled as soon as
        ``cancelled()`` says so, waiting for a model slot too."""
        name = audio.filename or "upload"
        with tempfile.TemporaryDirectory(dir=self.work_dir, prefix="request-") as work:
            path = self.readable_upload(audio, name, work)
            seconds = soundfile.info(path).duration
            if seconds > self.max_duration:
                raise http_error(413, f"{name}: {seconds:.1f} s of audio; this server takes "
                                      f"at most {self.max_duration:.0f} s (mser-serve "
                                      f"--max-duration)")
            try:
                return self.timeline_recognizer.timeline_file(
                    path, recording_name(name), return_attention=attention, progress=False,
                    cancelled=cancelled, gate=lambda: self.slots.slot(cancelled, name)), seconds
            except BadUtteranceError as e:
                raise http_error(415, f"{name}: corrupt audio ({e.reason})") from None

    @staticmethod
    def readable_upload(audio, name, work):
        """The upload written under ``work`` and decoded to a file soundfile reads."""
        upload = os.path.join(work, "upload")
        with open(upload, "wb") as f:
            while chunk := audio.file.read(UPLOAD_CHUNK):
                f.write(chunk)
        if os.path.getsize(upload) == 0:
            raise http_error(400, f"{name}: the upload is empty")
        try:
            return readable_audio(upload, work)
        except NoSamplesError:
            raise http_error(400, f"{name}: the recording has no samples (0 s of "
                                  f"audio)") from None
        except ValueError:
            raise http_error(415, f"{name}: unsupported or corrupt audio (neither "
                                  f"libsndfile nor FFmpeg can decode it); send wav, flac, "
                                  f"ogg, mp3, m4a or webm") from None


def create_app(timeline_recognizer, max_upload_mb=50.0, max_duration=600.0, work_dir=None,
               max_concurrent=1, on_shutdown=None, max_requests=8):
    """The FastAPI app over a :class:`mser.timeline.TimelineRecognizer`; ``on_shutdown()`` runs
    when the server stops (uvicorn re-raises SIGTERM/SIGINT after that, so code after
    ``uvicorn.run`` may never run). ``max_concurrent``: segment batches through the model at
    once; ``max_requests``: timeline requests in progress (working or waiting) beyond which a
    new one is refused at once (503 with Retry-After)."""
    from fastapi import Body, FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse

    from mser.timeline import Timeline

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if on_shutdown:
            on_shutdown()

    app = FastAPI(title="mser-serve", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Emotion timeline of a recording: speech segments, transcripts, "
                              "emotions (see mser/serve.py)")
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_mb * 1e6))
    app.add_exception_handler(RequestValidationError, malformed_request)
    app.add_exception_handler(Exception, internal_error)
    service = TimelineService(timeline_recognizer, max_upload_mb, max_duration, work_dir,
                              max_concurrent, max_requests)
    app.state.stopping = service.stopping
    page = resources.files("mser").joinpath(WEB_DIR, "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return page

    app.get("/api/info")(service.info)

    @app.post("/api/timeline")
    async def timeline(request: Request,
                       audio: UploadFile = File(..., description="the recording"),
                       attention: bool = Form(False,
                                              description="add each segment's query attention"),
                       format: str = Query("json", description="json, tsv or csv")):
        return await service.timeline(request, audio, attention, format)

    @app.post("/api/table")
    def table(timeline: dict = Body(..., description="a timeline JSON"),
              format: str = Query("tsv", description="tsv or csv")):
        try:
            parsed = Timeline.from_dict(timeline)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise http_error(422, f"not a timeline JSON (missing or wrong {e})") from None
        return table_response(parsed, format)

    return app


def stopping_server(app, host, port, log_level="info"):
    """A uvicorn server for ``app`` that, on SIGTERM / Ctrl-C, first tells the requests in
    flight to stop (``app.state.stopping``): they end within a batch of segments instead of
    running to their end before the process can exit."""
    import uvicorn

    class StoppingServer(uvicorn.Server):
        def handle_exit(self, sig, frame):
            app.state.stopping.set()
            super().handle_exit(sig, frame)

    return StoppingServer(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                         timeout_graceful_shutdown=30))
