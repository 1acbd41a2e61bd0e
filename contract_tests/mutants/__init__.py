"""Mutation testing of the contract suite: how many realistic broken connectors does it fail?

``python -m modeld_contract.mutants`` runs the suite once against the unmodified reference connector
(the control run: it must pass on the chosen selection, else nothing can be concluded) and then once
per broken connector of :mod:`modeld_contract.mutants.library`, each in its own pytest process, in
parallel up to the core count, and prints the mutation score. A broken connector is *killed* only when
at least one clause **failed** (outcome ``failed`` in the JSON report); a set-up error, a crash of its
factory, or a run that wrote no report kills nothing.
"""
