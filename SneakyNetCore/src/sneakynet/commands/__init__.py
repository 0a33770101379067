"""Sub-commands of the sneakynet CLI, one module each (see sneakynet.cli)."""
