"""Allow ``python -m scanner``."""

from scanner.cli.entry import main

main()
