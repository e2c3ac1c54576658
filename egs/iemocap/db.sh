# Corpus location: the directory holding Session1..Session5 of IEMOCAP (licensed from USC SAIL,
# https://sail.usc.edu/iemocap/; it cannot be downloaded by a script). Set it here or export IEMOCAP.
IEMOCAP=${IEMOCAP:-/path/to/IEMOCAP_full_release}
