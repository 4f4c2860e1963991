"""Captions as the evaluator's text encoder reads them: word vectors plus part-of-speech one-hots.

A HumanML3D / KIT-ML caption line is ``caption#word/POS word/POS ...#start#end``; the tags
come with the data set. At most 20 tokens are kept; ``sos`` and ``eos`` go around them and
``unk`` pads to 22. A word of the vocabulary gets its vector and, where it is one of the
evaluator's "very important" words, that class instead of its tag; a tag outside the nine
the evaluator knows becomes OTHER; a word outside the vocabulary reads as ``unk`` / OTHER.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from .files import Vocabulary
from .modules import MAX_TEXT_LENGTH, POS_DIM

POS_CLASSES = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
               "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER")
POS_INDEX = {name: i for i, name in enumerate(POS_CLASSES)}
# The evaluator's word classes, checked in this order; a word in one takes that class whatever its tag.
VIP_WORDS = {
    "Loc_VIP": frozenset("left right clockwise counterclockwise anticlockwise forward back backward up down "
                         "straight curve".split()),
    "Body_VIP": frozenset("arm chin foot feet face hand mouth leg waist eye knee shoulder thigh".split()),
    "Obj_VIP": frozenset("stair dumbbell chair window floor car ball handrail baseball basketball".split()),
    "Act_VIP": frozenset("walk run swing pick bring kick put squat throw hop dance jump turn stumble stop sit "
                         "lift lower raise wash stand kneel stroll rub bend balance flap jog shuffle lean rotate "
                         "spin spread climb".split()),
    "Desc_VIP": frozenset("slowly carefully fast careful slow quickly happy angry sad happily angrily "
                          "sadly".split()),
}
TOKENS = MAX_TEXT_LENGTH + 2  # with sos and eos
WORD = re.compile(r"[a-z]+")
# Endings tried, in order, on a word outside the vocabulary (HumanML3D's tokens are mostly lemmas):
# (ending, replacement), e.g. "walks" -> "walk", "waving" -> "wave", "stepped" -> "step".
ENDINGS = (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("d", ""))


def pos_class(word: str, tag: str) -> int:
    """The one-hot index of a vocabulary word with tagger tag ``tag``."""
    for name, words in VIP_WORDS.items():
        if word in words:
            return POS_INDEX[name]
    return POS_INDEX[tag] if tag in POS_CLASSES[:9] else POS_INDEX["OTHER"]


def caption_tokens(tokens: Sequence[str]) -> tuple[list[str], int]:
    """``word/POS`` tokens -> the 22 the encoder reads (sos, up to 20, eos, unk padding) and how many count."""
    tokens = list(tokens)
    if len(tokens) < MAX_TEXT_LENGTH:
        tokens = ["sos/OTHER", *tokens, "eos/OTHER"]
        length = len(tokens)
        tokens += ["unk/OTHER"] * (TOKENS - length)
    else:
        tokens = ["sos/OTHER", *tokens[:MAX_TEXT_LENGTH], "eos/OTHER"]
        length = TOKENS
    return tokens, length


class WordEmbedder:
    """Turns tagged captions into (22, 300) word vectors, (22, 15) POS one-hots and a length.

    vocabulary: the evaluator's word vectors (``our_vab_*``).
    """

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary

    def token(self, token: str) -> tuple[np.ndarray, int]:
        """One ``word/POS`` token -> its vector and POS index (unknown words read as unk / OTHER)."""
        word, _, tag = token.rpartition("/") if "/" in token else (token, "", "OTHER")
        row = self.vocabulary.index.get(word)
        if row is None:
            return self.vocabulary.vectors[self.vocabulary.index["unk"]], POS_INDEX["OTHER"]
        return self.vocabulary.vectors[row], pos_class(word, tag)

    def caption(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """Tagged tokens of one caption -> (words (22, 300), pos one-hots (22, 15), length)."""
        padded, length = caption_tokens(tokens)
        words = np.empty((TOKENS, self.vocabulary.vectors.shape[1]), dtype=np.float32)
        pos = np.zeros((TOKENS, POS_DIM), dtype=np.float32)
        for i, token in enumerate(padded):
            words[i], index = self.token(token)
            pos[i, index] = 1.0
        return words, pos, length

    def captions(self, captions: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Many captions at once: (N, 22, 300), (N, 22, 15), (N,) lengths."""
        words = np.empty((len(captions), TOKENS, self.vocabulary.vectors.shape[1]), dtype=np.float32)
        pos = np.empty((len(captions), TOKENS, POS_DIM), dtype=np.float32)
        lengths = np.empty(len(captions), dtype=np.int64)
        for i, tokens in enumerate(captions):
            words[i], pos[i], lengths[i] = self.caption(tokens)
        return words, pos, lengths


def lemma(word: str, vocabulary: Mapping[str, int]) -> str:
    """``word`` itself where the vocabulary has it, else the first ending-stripped form it has
    (a doubled final consonant undone too: "stepped" -> "step"), else ``word``."""
    if word in vocabulary:
        return word
    for ending, replacement in ENDINGS:
        if word.endswith(ending) and len(word) > len(ending) + 1:
            stem = word[: -len(ending)]
            for candidate in (stem + replacement, stem[:-1] if stem[-1:] == stem[-2:-1] else None):
                if candidate and candidate in vocabulary:
                    return candidate
    return word


def caption_words(caption: str, vocabulary: Mapping[str, int]) -> list[str]:
    """One caption as ``word/POS`` tokens for ``WordEmbedder``.

    A HumanML3D line (``caption#word/POS ...#start#end``) gives its own tagged tokens. A bare
    caption (what a packed store keeps) is lower-cased and split into words, each brought to a
    vocabulary form by ``lemma`` and tagged OTHER: without a part-of-speech tagger only the
    evaluator's word classes (``VIP_WORDS``) reach the one-hots.
    """
    fields = caption.split("#")
    if len(fields) == 4 and fields[1].strip():
        return fields[1].split()
    return [f"{lemma(word, vocabulary)}/OTHER" for word in WORD.findall(caption.lower())]
