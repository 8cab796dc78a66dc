"""The ``mlvault`` command line: a thin Typer layer over :mod:`vault`."""
