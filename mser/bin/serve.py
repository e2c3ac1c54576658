"""A local web page for emotion timelines (mser-serve): upload or record audio, see its speech
segments with their transcripts, emotions and probabilities on a timeline, play a segment, see
where the emotion queries attend, download the table (TSV) or the JSON. The same as a JSON API
(POST /api/timeline; reference at /docs)::

    mser-serve --model-dir exp/<tag>/fold1                 # then open http://127.0.0.1:8000
    curl -F audio=@call.wav http://127.0.0.1:8000/api/timeline

It binds 127.0.0.1 (this machine only) unless --host says otherwise. Uploads go to a temporary
dir, removed when each request ends and when the server stops. See mser/serve.py.
"""
import argparse
import logging
import sys
import tempfile

from mser.bin.timeline import add_segment_options, segment_options
from mser.utils.logging import setup_logging


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True,
                        help="exp/<tag>/fold<k> (uses best.pt) or an exported model dir")
    parser.add_argument("--checkpoint", help="weights file inside --model-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--asr", default="packaged:whisper-tiny.en",
                        help="packaged:whisper-tiny.en (default), packaged:whisper-base, a local "
                             "Whisper/CTC dir, or none (audio only)")
    parser.add_argument("--language", default="en", help="multilingual Whisper only")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 "
                             "opens it to the network)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=50.0,
                        help="largest request body accepted (MB)")
    parser.add_argument("--max-duration", type=float, default=600.0,
                        help="longest recording accepted (seconds)")
    parser.add_argument("--max-concurrent", type=int, default=1,
                        help="requests through the model at once (the others wait)")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default)")
    add_segment_options(parser)
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging()
    import torch
    import uvicorn

    from mser.serve import create_app
    from mser.timeline import TimelineRecognizer

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    try:
        recognizer = TimelineRecognizer(
            args.model_dir, asr=None if args.asr == "none" else args.asr, device=args.device,
            segmenter=args.segmenter, options=segment_options(args), window=args.window,
            batch_size=args.batch_size, language=args.language or None,
            checkpoint=args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"mser-serve: {e}")
    with tempfile.TemporaryDirectory(prefix="mser-serve-") as work:
        tempfile.tempdir = work  # the upload parser's spooled files too
        app = create_app(recognizer, args.max_upload_mb, args.max_duration, work,
                         args.max_concurrent)
        logging.info("serving %s on http://%s:%d (uploads in %s)", args.model_dir, args.host,
                     args.port, work)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
