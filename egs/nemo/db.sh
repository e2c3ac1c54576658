# Corpus location: a copy of https://github.com/amu-cai/nEMO (data.tsv and samples/, 4,481 clips
# of 9 Polish speakers, CC BY-NC-SA 4.0). Set it here or export NEMO.
NEMO=${NEMO:-/path/to/nEMO}
