"""Training: the settings and their defaults, the schedules, the loop (truncated BPTT with
Adam), the worker processes, fine-tuning, and the training state kept in a checkpoint.

Imports ``charrnn.saving`` and below; never ``generation``, ``inspection`` or ``cli``.
"""
