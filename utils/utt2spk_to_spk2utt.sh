#!/usr/bin/env bash
# Kaldi-style shim; the implementation is mser/bin/utt2spk_to_spk2utt.py.
exec python3 -m mser.bin.utt2spk_to_spk2utt "$@"
