"""``python -m charrnn`` runs the command line."""

from charrnn.cli import main

main()
