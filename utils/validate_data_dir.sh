#!/usr/bin/env bash
# Kaldi-style shim; the implementation is mser/bin/validate_data_dir.py.
exec python3 -m mser.bin.validate_data_dir "$@"
