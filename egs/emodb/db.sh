# Corpus location: where EmoDB's download.zip (http://emodb.bilderbar.info/download/) was
# unpacked, holding wav/03a01Fa.wav ... Set it here or export EMODB.
EMODB=${EMODB:-/path/to/emodb}
