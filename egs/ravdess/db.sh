# Corpus location: where Audio_Speech_Actors_01-24.zip (https://zenodo.org/record/1188976,
# CC BY-NC-SA 4.0) was unpacked; its Actor_01..Actor_24 directories are found at any depth.
# Set it here or export RAVDESS.
RAVDESS=${RAVDESS:-/path/to/RAVDESS}
