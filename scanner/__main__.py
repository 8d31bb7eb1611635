"""Allow ``python -m scanner``."""

from scanner.cli.main import main

main()
