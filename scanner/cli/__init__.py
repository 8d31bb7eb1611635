"""The ``dicomscan`` command line, one module per command; ``main`` assembles them."""
