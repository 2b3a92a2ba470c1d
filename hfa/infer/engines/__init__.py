"""In-process models on CPU, one per (model, task), answering in the Inference API's wire shapes.

Needs the optional extra ``hfa[infer]`` (torch, transformers, sentence-transformers, pillow, diffusers);
importing this package imports torch, so only :mod:`hfa.infer.local` and :mod:`hfa.infer.pool`
(when it loads a model) do.

* :mod:`~hfa.infer.engines.base`       :class:`Engine`, :class:`Loader`, :class:`BadInput` and the
  readers of inputs and parameters every engine shares;
* :mod:`~hfa.infer.engines.text`       the text tasks on transformers' ``AutoModelFor…`` classes;
* :mod:`~hfa.infer.engines.embeddings` feature-extraction (and sentence-similarity), with
  concurrent requests merged into shared forward passes;
* :mod:`~hfa.infer.engines.image`      image-classification, and text-to-image with diffusers;
* :mod:`~hfa.infer.engines.registry`   :data:`ENGINES` (task to engine) and :func:`load_engine`.

Wire shapes (what the Hub's hf-inference answers, and ``InferenceClient`` parses):

=========================  ===============================================================
text-classification        ``[[{label, score}, …]]`` (one inner list per input text)
zero-shot-classification   ``[{label, score}, …]``
summarization              ``[{"summary_text": …}]``
translation                ``[{"translation_text": …}]``
question-answering         ``{answer, score, start, end}`` (a list of them when top_k > 1)
text-generation            ``[{"generated_text": …}]``
image-classification       ``[{label, score}, …]``
feature-extraction         ``[float, …]`` for one string, ``[[float, …], …]`` for a list
text-to-image              PNG bytes (diffusers)
=========================  ===============================================================

Every engine is safe to call from many threads: forward passes run one at a time per engine;
feature-extraction requests that arrive meanwhile are merged into the next forward pass.
Loading is not, so :func:`load_engine` loads one model at a time per process (see
:mod:`~hfa.infer.engines.registry`).
"""

from __future__ import annotations

from hfa.infer.engines.base import BadInput, Engine, Loader
from hfa.infer.engines.embeddings import FeatureExtraction
from hfa.infer.engines.image import ImageClassification, TextToImage
from hfa.infer.engines.registry import ENGINES, load_engine
from hfa.infer.engines.text import (
    QuestionAnswering,
    Seq2Seq,
    TextClassification,
    TextGeneration,
    ZeroShotClassification,
)

__all__ = [
    "ENGINES",
    "BadInput",
    "Engine",
    "FeatureExtraction",
    "ImageClassification",
    "Loader",
    "QuestionAnswering",
    "Seq2Seq",
    "TextClassification",
    "TextGeneration",
    "TextToImage",
    "ZeroShotClassification",
    "load_engine",
]
