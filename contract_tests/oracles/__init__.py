"""Independent models of what the contract requires. Nothing here imports the code under test
(``modeldconn``, ``modeld_sim``): each oracle restates the rule from the reference documents."""
