"""``python -m conveyor``: the command line, as ``conveyor``."""

from conveyor.cli.main import main

main()
