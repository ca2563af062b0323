"""What ``charrnn show`` and ``charrnn info`` compute: a checkpoint's summary, a text read
through the model (surprise, guesses, unit values), and the units that follow simple
features of a text.

Imports ``charrnn.training`` and below; never ``api`` or ``cli``.
"""
