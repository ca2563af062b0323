"""charrnn: a character-level LSTM language model in pure NumPy."""

__version__ = "0.1.0"
