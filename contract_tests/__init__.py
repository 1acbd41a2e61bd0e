"""The modeld contract suite: clauses, oracles, connectors and the pytest plugin (`-p modeld`)."""
