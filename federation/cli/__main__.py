"""``python -m federation.cli``: the ``quanta`` command."""

from . import main

main(prog_name="quanta")
