# Corpus location: the directory where MELD.Raw.tar.gz (https://affective-meld.github.io/, ~10 GB)
# was unpacked together with its train.tar.gz, dev.tar.gz and test.tar.gz; the three CSVs and the
# clip folders are found by name under it. Set it here or export MELD.
MELD=${MELD:-/path/to/MELD.Raw}
