"""`python -m mmplan` runs the command-line interface."""

from mmplan.cli import main

main()
