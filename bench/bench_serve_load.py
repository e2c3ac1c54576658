"""A bounded load test of mser-serve on 127.0.0.1: short requests while a long one runs, a client
that gives up, more requests than the server admits, and SIGTERM under load.

    tools/venv/bin/python bench/bench_serve_load.py \\
        --model-dir egs/ravdess/exp/train_whisper_base_minilm/fold1 --data-dir egs/ravdess/data/all \\
        [--long-seconds 600] [--short-seconds 10] [--short-requests 8] [--max-requests 4] \\
        [--serve-opts "--batch-size 4"]

Recordings are the data dir's utterances joined by pauses (bench_timeline.make_recording). The
server is a real ``mser-serve`` process (its own port on 127.0.0.1, nothing else is reached);
every request has a client time-out, and the whole run is bounded by them. Prints:
- unloaded: the short recording's latency alone (median of 3);
- under load: p50 / p95 latency of ``--short-requests`` short requests sent one after another
  while one ``--long-seconds`` recording runs, and their ratio to the unloaded latency (goal:
  p95 under 3x);
- a client that gives up after 5 s: whether the server logged that its timeline was stopped,
  and how many of its segments it had processed (from the server's log);
- overload: ``2 x --max-requests`` requests at once: answered 200, refused 503 (Retry-After),
  failed, and lost (no answer at all: must be 0);
- shutdown: seconds from SIGTERM, with a long request in flight, to the process's exit, and the
  answer that request got.
"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_timeline import make_recording  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """mser-serve in a subprocess, its log collected."""

    def __init__(self, model_dir, max_requests, log_path, options=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mser.bin.serve", "--model-dir", model_dir, "--port",
             str(self.port), "--max-duration", "3600", "--max-upload-mb", "500",
             "--max-requests", str(max_requests), *options],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": ROOT})
        import httpx

        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/api/info", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(1)
        raise SystemExit(f"mser-serve did not start in 300 s; see {log_path}")

    def post(self, wav, name, timeout):
        """(status or 'timeout' / 'error', seconds)."""
        import httpx

        start = time.time()
        try:
            with open(wav, "rb") as f:
                response = httpx.post(f"{self.url}/api/timeline", files={"audio": (name, f)},
                                      timeout=timeout)
            return response.status_code, time.time() - start
        except httpx.TimeoutException:
            return "timeout", time.time() - start
        except httpx.HTTPError as e:
            return f"error {type(e).__name__}", time.time() - start

    def log_text(self):
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        self.log.close()


def in_background(target):
    result = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data-dir", required=True, help="utterances to build recordings from")
    parser.add_argument("--long-seconds", type=float, default=600)
    parser.add_argument("--short-seconds", type=float, default=10)
    parser.add_argument("--short-requests", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=4)
    parser.add_argument("--serve-opts", default="", help="more options of mser-serve")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-serve-")
    short, long = os.path.join(work, "short.wav"), os.path.join(work, "long.wav")
    make_recording(args.data_dir, args.short_seconds / 60, short, seed=1)
    make_recording(args.data_dir, args.long_seconds / 60, long, seed=2)
    long_timeout = 20 * args.long_seconds + 300
    server = Server(args.model_dir, args.max_requests, os.path.join(work, "serve.log"),
                    args.serve_opts.split())
    rows = []
    try:
        unloaded = [server.post(short, "short.wav", 300)[1] for _ in range(3)]
        base = statistics.median(unloaded)
        rows.append(("unloaded short request", f"{base:.2f} s (median of 3)"))

        long_thread, long_result = in_background(
            lambda: server.post(long, "long.wav", long_timeout))
        time.sleep(2)
        loaded = []
        for k in range(args.short_requests):
            status, seconds = server.post(short, f"short{k}.wav", 300)
            loaded.append(seconds if status == 200 else float("inf"))
        p50, p95 = percentile(loaded, 50), percentile(loaded, 95)
        rows.append((f"{args.short_requests} short requests while a {args.long_seconds:.0f} s "
                     f"one runs", f"p50 {p50:.2f} s, p95 {p95:.2f} s = {p95 / base:.1f}x "
                                  f"unloaded (goal < 3x)"))
        long_thread.join(long_timeout)
        status, seconds = long_result[0]
        rows.append((f"the {args.long_seconds:.0f} s request", f"{status} in {seconds:.1f} s "
                                                              f"(RTF {seconds / args.long_seconds:.3f})"))

        status, _ = server.post(long, "gives_up.wav", 5)
        time.sleep(3)
        stopped = re.search(r"gives_up\.wav: the client went away; its timeline was stopped "
                            r"\((.+)\)\s*$", server.log_text(), re.M)
        rows.append(("a client that gives up after 5 s",
                     f"client {status}; server: {stopped.group(1) if stopped else 'NOT stopped'}"))

        answers = []
        threads = [in_background(lambda k=k: server.post(long if k == 0 else short,
                                                         f"burst{k}.wav", long_timeout))
                   for k in range(2 * args.max_requests)]
        for thread, result in threads:
            thread.join(long_timeout)
            answers.append(result[0][0] if result else "lost")
        counts = {key: sum(1 for a in answers if str(a).startswith(key))
                  for key in ("200", "503", "timeout", "error", "lost")}
        rows.append((f"{2 * args.max_requests} requests at once (--max-requests "
                     f"{args.max_requests})", ", ".join(f"{v} {k}" for k, v in counts.items())))

        long_thread, long_result = in_background(
            lambda: server.post(long, "in_flight.wav", long_timeout))
        time.sleep(5)
        start = time.time()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(120)
        exit_seconds = time.time() - start
        long_thread.join(30)
        answer = long_result[0][0] if long_result else "no answer"
        rows.append(("SIGTERM with a request in flight", f"exit in {exit_seconds:.1f} s (goal "
                                                         f"< 5 s); the request got {answer}"))
    finally:
        server.stop()
    print(f"\nmser-serve load test, {args.model_dir} {args.serve_opts}, recordings from {args.data_dir}, "
          f"{os.cpu_count()} CPUs (server log: {server.log.name})\n")
    print("| what | result |")
    print("|---|---|")
    for what, result in rows:
        print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
