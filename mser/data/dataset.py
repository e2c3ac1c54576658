"""Dataset over a data dir and dumped features, length-bucketed (distributed) batches, collate.

    dataset = EmotionDataset("data/fold1/train", {"audio": "dump/fbank/feats.scp",
                                                  "text": "dump/minilm/feats.scp"})
    sampler = LengthBucketBatchSampler(dataset.lengths, max_frames=4000, seed=0,
                                       num_replicas=world_size, rank=rank)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    for epoch ...: sampler.set_epoch(epoch)

Each item is ``{"utt", "label", <stream>: matrix, ...[, "targets": {task: label}]}`` for the streams of ``feats`` (any
names: audio, text, video, ...), each matrix as stored (``storage: float16`` stays float16, half
the memory of a cached item), or, for a stream in ``pool``, its frames averaged ``pool[stream]``
at a time (float32; what a ``projection: pool`` front end does first, done once per utterance
instead of on every batch: the same numbers); a batch is ``{"utts", "labels", <stream>,
<stream>_lens[, <stream>_pooled], ...[, "targets"]}``, float32, ready for ``model(batch)``.
"""
import logging
import os

import numpy as np
import torch

from mser.io.datadir import DataDirError, read_classes, read_table
from mser.io.storage import open_feats, read_headers, read_shapes
from mser.utils.frames import average_pool, input_pooling
from mser.utils.tasks import auxiliary, labels_file, task_type

SHOWN_DROPPED = 5  # utterances without features named in the warning


class EmotionDataset(torch.utils.data.Dataset):
    """Utterances of ``data_dir`` that have features for every modality in ``feats``.

    ``feats``: stream -> feats.scp, in the model's stream order. ``classes`` defaults to ``data_dir/classes.txt``. Without
    ``utt2emo`` (unlabelled data) labels are -1. ``cache`` keeps read matrices in memory, as
    stored (:meth:`feature_bytes` says how much that takes). Matrices are read by
    :func:`~mser.io.storage.open_feats` (never unpickles), lengths come from
    ``utt2num_frames`` or the matrix headers. ``pool``: stream -> frames averaged on reading
    (:func:`~mser.utils.frames.input_pooling` of the model conf), and after
    :meth:`normalize_with` normalised; :meth:`read` gives the frames as stored, ``lengths``
    stay in stored frames (the batch budget is the same). ``tasks`` (a resolved model conf's)
    adds each auxiliary task's labels (``utt2<task>``) as ``targets``, a classification's as
    indices into ``task_classes[task]`` (default: the labels found here, sorted).
    """

    def __init__(self, data_dir, feats, classes=None, cache=False, pool=None, tasks=None,
                 task_classes=None):
        self.data_dir = data_dir
        self.pool = {m: factor for m, factor in (pool or {}).items() if m in feats}
        self.statistics = {}  # stream -> (mean, std) applied after pooling
        self.classes = list(classes) if classes else read_classes(os.path.join(data_dir,
                                                                               "classes.txt"))
        utt2emo_path = os.path.join(data_dir, "utt2emo")
        if os.path.exists(utt2emo_path):
            self.has_labels = True
            utt2emo = read_table(utt2emo_path)
        else:
            self.has_labels = False
            utt2emo = {utt: None for utt in read_table(os.path.join(data_dir, "utt2spk"))}
        self.scps = {m: scp for m, scp in feats.items() if scp}
        self.readers = {m: open_feats(scp, dtype=None) for m, scp in self.scps.items()}
        if not self.readers:
            raise ValueError("EmotionDataset needs at least one feats.scp")
        utts = list(utt2emo)
        self.dropped = {}  # utt -> why it has no features
        for modality, reader in self.readers.items():
            skipped = read_skipped(feats[modality])
            missing = {u: (f"no {modality} features: " + (f"skipped by the dump ({skipped[u]})"
                                                          if u in skipped else "never extracted"))
                       for u in utts if u not in reader}
            if missing:
                shown = list(missing.items())[:SHOWN_DROPPED]
                logging.warning(
                    "%s: %d of %d utterance(s) have no %s features in %s; dropped: %s%s. Fix: "
                    "'skipped by the dump' = their extraction failed (reason in the dump dir's "
                    "skipped file and log/); 'never extracted' = the features were dumped for "
                    "another data dir: re-run the feature dump stage for this corpus", data_dir,
                    len(missing), len(utts), modality, feats[modality],
                    "; ".join(f"{u} ({why})" for u, why in shown),
                    " ..." if len(missing) > len(shown) else "")
                self.dropped.update(missing)
                utts = [u for u in utts if u not in missing]
        if not utts:
            raise DataDirError(f"{data_dir}: no utterance has features in "
                               f"{', '.join(feats.values())}; were they extracted for this corpus?")
        self.utts = utts
        self.labels = [self._label_index(u, utt2emo[u], utt2emo_path) for u in utts]
        self.num_frames = {m: self._num_frames(scp) for m, scp in self.scps.items()}
        # Bucketing length: the first stream's (audio when used: the long one).
        self.lengths = self.num_frames[next(iter(self.scps))]
        self.cache = {} if cache else None
        self.task_classes, self.targets = {}, {}
        for task, spec in auxiliary(tasks or {}).items():
            self.task_classes[task], self.targets[task] = self._read_targets(
                task, spec, (task_classes or {}).get(task))

    def _read_targets(self, task, spec, classes):
        """(classes (a classification's) or None, each utterance's target) of a task's labels;
        an utterance without one gets the task type's missing value, counted in the log."""
        kind = task_type(spec)
        path = os.path.join(self.data_dir, labels_file(task))
        if not os.path.exists(path):
            raise DataDirError(f"{path}: not found, but the config has a task {task!r}; stage 0 "
                               f"writes it where the corpus has these labels (drop the task "
                               f"from the config's tasks: otherwise)")
        table = read_table(path)
        if spec["type"] == "classification" and not classes:
            classes = sorted({table[u] for u in self.utts if u in table})
        targets = []
        for utt in self.utts:
            value = kind.target(table[utt], classes) if utt in table else kind.missing
            if value is None:
                raise DataDirError(f"{path}: utterance {utt} has {task} {table[utt]!r}, which is "
                                   f"not " + (f"one of {' '.join(classes)} (the training "
                                              f"labels)" if classes else "a number"))
            targets.append(value)
        unlabelled = sum(u not in table for u in self.utts)
        if unlabelled:
            logging.warning("%s: %d of %d utterance(s) have no %s label (e.g. %s); they add "
                            "nothing to its loss or scores", path, unlabelled, len(self.utts),
                            task, next(u for u in self.utts if u not in table))
        return classes, targets

    def _label_index(self, utt, label, utt2emo_path):
        if label is None:
            return -1
        if label not in self.classes:
            raise DataDirError(f"{utt2emo_path}: utterance {utt} has label {label!r}, which is not "
                               f"in {os.path.join(self.data_dir, 'classes.txt')} "
                               f"({' '.join(self.classes)}); fix the label or the class list")
        return self.classes.index(label)

    def _num_frames(self, scp):
        """Lengths from utt2num_frames next to the scp, else from the matrix headers."""
        path = os.path.join(os.path.dirname(scp), "utt2num_frames")
        if os.path.exists(path):
            table = read_table(path)
            if all(u in table for u in self.utts):
                return [int(table[u]) for u in self.utts]
        logging.info("%s: no complete utt2num_frames; reading the matrix headers", scp)
        shapes = read_shapes(scp)
        return [shapes[u][0] for u in self.utts]

    def feature_bytes(self):
        """Bytes of every utterance's matrices as read (what a full cache holds), from the
        matrix headers."""
        total = 0
        for scp in self.scps.values():
            headers = read_headers(scp)
            total += sum(rows * cols * size for rows, cols, size in map(headers.get, self.utts))
        return total

    def __len__(self):
        return len(self.utts)

    def __getitem__(self, index):
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        return self.scan(index)[1]

    def scan(self, index):
        """(item ``index`` as stored, as :meth:`__getitem__` gives it), reading the disk once
        and filling the cache."""
        stored = self.read(index)
        item = dict(stored)
        for modality, factor in self.pool.items():
            mat = torch.from_numpy(item[modality]).float()[None]
            pooled, _ = average_pool(mat, torch.tensor([mat.shape[1]]), factor)
            item[modality] = pooled[0].numpy()
        if self.pool:
            item["pooled"] = self.pool
        item = self.normalized(item)
        if self.cache is not None:
            self.cache[index] = item
        return stored, item

    def normalize_with(self, statistics):
        """Normalise the pooled streams of ``statistics`` (stream -> (mean, std) tensors, the
        model's own: :meth:`~mser.nets.model.EmotionModel.input_statistics`) in every item,
        cached ones included: ``(x - mean) / std``, as the model would on the batch."""
        unpooled = sorted(set(statistics) - set(self.pool))
        if unpooled or self.statistics:
            raise ValueError(f"{self.data_dir}: normalisation on reading needs pooled streams "
                             f"and is set once (got {list(statistics)}, pooled "
                             f"{list(self.pool)}, set {list(self.statistics)})")
        self.statistics = {m: (mean.float().cpu(), std.float().cpu())
                           for m, (mean, std) in statistics.items()}
        for index, item in list((self.cache or {}).items()):
            self.cache[index] = self.normalized(item)

    def normalized(self, item):
        if not self.statistics:
            return item
        item = dict(item, normalized=list(self.statistics))
        for modality, (mean, std) in self.statistics.items():
            item[modality] = ((torch.from_numpy(item[modality]) - mean) / std).numpy()
        return item

    def read(self, index):
        """Item ``index`` from disk, bypassing the cache."""
        utt = self.utts[index]
        item = {"utt": utt, "label": self.labels[index]}
        if self.targets:
            item["targets"] = {task: values[index] for task, values in self.targets.items()}
        for modality, reader in self.readers.items():
            item[modality] = reader[utt]
        return item

    def label_counts(self):
        return np.bincount(np.asarray(self.labels), minlength=len(self.classes))


def read_skipped(scp):
    """{utt: reason} of the ``skipped`` file the feature dump writes next to ``scp``."""
    path = os.path.join(os.path.dirname(scp), "skipped")
    return read_table(path) if os.path.exists(path) else {}


def dataset_from_config(config, data_dir, cache=False):
    """The dataset a saved training config (``<exp-dir>/config.yaml``, its ``model_conf``
    resolved) implies for ``data_dir``, pooling as the model's front ends do."""
    streams = config["model_conf"]["modalities"]
    return EmotionDataset(data_dir, {m: config[f"{m}_feats"] for m in streams},
                          classes=config["classes"], cache=cache,
                          pool=input_pooling(config["model_conf"]))


def collate(items):
    """Pad each stream to the longest item, as float32 (torch casts float16 ~10x faster than
    numpy); lengths are LongTensors (of the averaged frames for a pooled stream, whose factor
    is ``<stream>_pooled``; ``<stream>_normalized`` where the dataset normalised it)."""
    batch = {"utts": [it["utt"] for it in items],
             "labels": torch.tensor([it["label"] for it in items], dtype=torch.long)}
    for modality, factor in items[0].get("pooled", {}).items():
        batch[f"{modality}_pooled"] = factor
    for modality in items[0].get("normalized", ()):
        batch[f"{modality}_normalized"] = True
    if "targets" in items[0]:  # class indices (long) or numbers (float)
        batch["targets"] = {task: torch.tensor([it["targets"][task] for it in items])
                            for task in items[0]["targets"]}
    for modality in (key for key in items[0]
                     if key not in ("utt", "label", "pooled", "normalized", "targets")):
        mats = [torch.from_numpy(it[modality]) for it in items]
        lengths = torch.tensor([len(m) for m in mats], dtype=torch.long)
        padded = torch.empty((len(mats), int(lengths.max()), mats[0].shape[1]))
        for i, mat in enumerate(mats):  # each element written once: the frames, then zeros
            padded[i, : len(mat)] = mat
            padded[i, len(mat):] = 0.0
        batch[modality], batch[f"{modality}_lens"] = padded, lengths
    return batch


class LengthBucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices, of similar length when ``bucketing``, reshuffled every epoch.

    A batch is what one optimiser step sees, whatever the number of processes: ``batch_size``
    utterances, or, with ``max_frames > 0``, as many as fit in ``max_frames`` padded frames
    (batch size x longest length; one over-long utterance forms its own batch). Every rank
    builds the same list from ``seed`` and the epoch and takes every ``num_replicas``-th
    utterance of each batch from ``rank`` (a batch smaller than ``num_replicas`` repeats its
    utterances so that no rank is idle): disjoint shares, as many steps on every rank as on one.
    """

    def __init__(self, lengths, batch_size=32, max_frames=0, bucketing=True, shuffle=True, seed=0,
                 num_replicas=1, rank=0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.max_frames = batch_size, max_frames
        self.bucketing, self.shuffle, self.seed = bucketing, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def global_batches(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        if self.bucketing:  # stable sort: equal lengths keep their random order
            order = order[np.argsort(self.lengths[order], kind="stable")]
        batches, batch, longest = [], [], 0
        for index in order.tolist():
            longest_if_added = max(longest, self.lengths[index])
            full = (longest_if_added * (len(batch) + 1) > self.max_frames if self.max_frames > 0
                    else len(batch) >= self.batch_size)
            if batch and full:
                batches.append(batch)
                batch, longest_if_added = [], self.lengths[index]
            batch.append(index)
            longest = longest_if_added
        if batch:
            batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        for batch in self.global_batches():
            if len(batch) < self.num_replicas:
                batch = [batch[i % len(batch)] for i in range(self.num_replicas)]
            yield batch[self.rank::self.num_replicas]

    def __len__(self):
        return len(self.global_batches())
