"""``python -m swapio`` runs the command line."""

from swapio.cli import main

main()
