# Corpus location: the root of an MSP-Podcast release (1.11 / 1.12 layout: Audios/, Transcripts/,
# Labels/labels_consensus.csv), licensed from the MSP lab at UT Dallas
# (https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html; it cannot be
# downloaded by a script). Set it here or export MSP_PODCAST.
MSP_PODCAST=${MSP_PODCAST:-/path/to/MSP-Podcast}
