#!/usr/bin/env bash
# Kaldi-style shim; the implementation is mser/bin/split_scp.py.
exec python3 -m mser.bin.split_scp "$@"
