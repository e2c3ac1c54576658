"""The bottom layer: Kaldi data dirs and tables (:mod:`mser.io.datadir`: reading, writing,
validation, :class:`~mser.io.datadir.DataDirError`) and stored features (:mod:`mser.io.storage`:
ark/scp matrices, their headers, ``feat_conf.yaml``). Everything above imports these; they import
only :mod:`mser.utils`."""
