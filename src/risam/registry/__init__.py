"""Models by name, in three parts that import only what they need (``risam --help`` imports no torch).

- :mod:`risam.registry.names`: model names -> configs (``list_models``, ``get_config``).
- :mod:`risam.registry.files`: the official encoder files and the files that ship in the package.
- :mod:`risam.registry.create`: ``create_model``, which chooses the precision once.
"""
