"""Deliberately broken variants of ``modeldconn`` for the mutation check of the contract suite.

Each module's ``make()`` returns a :class:`modeldconn.Connector` subclass with one defect; load it with
``--modeld-connector=<module>:make`` (``tests/broken_connectors`` on ``PYTHONPATH``).
"""
