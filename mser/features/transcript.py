"""Transcript clean-up, and the rule for an empty transcript (no torch: used by fbank jobs too)."""
import re

# IEMOCAP-style tags such as [LAUGHTER], [BREATHING], <noise>.
DEFAULT_TAG_PATTERN = r"\[[^\]]*\]|<[^>]*>"


def clean_transcript(text, tag_pattern):
    """``text`` without the matches of ``tag_pattern`` (None: nothing removed), spaces collapsed."""
    if tag_pattern:
        text = re.sub(tag_pattern, " ", text)
    return " ".join(text.split())


def is_empty_transcript(text, text_info=None):
    """The one rule of decode and mser-infer: a transcript that is missing or has no words left
    once the tags of ``text_info`` (a resolved hf_text config; the default tags if None) are
    removed, such as "" or "[LAUGHTER]", is no transcript: the utterance runs audio-only."""
    tag_pattern = (text_info or {}).get("tag_pattern", DEFAULT_TAG_PATTERN)
    return text is None or not clean_transcript(text, tag_pattern)
