# Corpus location: a clone of https://github.com/CheyneyComputerScience/CREMA-D made with git-lfs
# installed (git lfs install; git clone ...; without git-lfs the wavs are pointer files), holding
# AudioWAV/ and VideoDemographics.csv. Set it here or export CREMA_D.
CREMA_D=${CREMA_D:-/path/to/CREMA-D}
