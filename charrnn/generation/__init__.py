"""Generating text from a model: sampling with its knobs, beam search, samples that are new
rather than copies of the training records, and the samples drawn while training.

Imports ``charrnn.saving`` and below; never ``training``, ``inspection`` or ``cli``.
"""
