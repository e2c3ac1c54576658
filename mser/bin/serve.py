"""A local web page for emotion timelines (mser-serve): upload or record audio, see its speech
segments with their transcripts, emotions and probabilities on a timeline, play a segment, see
where the emotion queries attend, download the table (TSV) or the JSON. The same as a JSON API
(POST /api/timeline; its OpenAPI schema at /openapi.json)::

    mser-serve --model-dir exp/<tag>/fold1                 # then open http://127.0.0.1:8000
    curl -F audio=@call.wav http://127.0.0.1:8000/api/timeline

It binds 127.0.0.1 (this machine only) unless --host says otherwise. Uploads go to a temporary
dir, removed when each request ends and when the server stops. See mser/serve.py.
"""
import argparse
import logging
import shutil
import sys
import tempfile

from mser.bin.timeline import add_model_options, build_recognizer, segment_options
from mser.utils.logging import setup_logging


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 "
                             "opens it to the network)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=50.0,
                        help="largest request body accepted (MB)")
    parser.add_argument("--max-duration", type=float, default=600.0,
                        help="longest recording accepted (seconds)")
    parser.add_argument("--max-concurrent", type=int, default=1,
                        help="batches of segments through the model at once; requests take "
                             "turns batch by batch, first come, first served")
    # A turn with the model is one batch: 4 segments keep a short request's wait behind a long
    # one short (bench/bench_serve_load.py: p95 2.5-3.1x its unloaded latency, 3.4-4.5x with
    # 8) for ~4 % more time on the long one.
    parser.set_defaults(batch_size=4)
    parser.add_argument("--max-requests", type=int, default=8,
                        help="timeline requests in progress (working or waiting) beyond which "
                             "a new one is refused at once (503 with Retry-After)")
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging()
    from mser.serve import create_app, stopping_server

    try:
        recognizer = build_recognizer(args, segment_options(args))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"mser-serve: {e}")
    work = tempfile.mkdtemp(prefix="mser-serve-")
    tempfile.tempdir = work  # the upload parser's spooled files too

    def remove_work_dir():
        tempfile.tempdir = None
        shutil.rmtree(work, ignore_errors=True)
    app = create_app(recognizer, args.max_upload_mb, args.max_duration, work,
                     args.max_concurrent, on_shutdown=remove_work_dir,
                     max_requests=args.max_requests)
    logging.info("serving %s on http://%s:%d (uploads in %s)", args.model_dir, args.host,
                 args.port, work)
    try:
        stopping_server(app, args.host, args.port).run()
    finally:
        remove_work_dir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
