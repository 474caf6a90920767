"""``python -m rlsuite`` runs the CLI."""

from rlsuite.cli import main

main()
