"""Stage 1 of the flow: the user's TOML, validated into a frozen :class:`~.model.Inventory` (pure).

Owns the model (:mod:`.model`), parsing the file's TOML (:mod:`.parse`), the typed readers of TOML
tables (:mod:`.fields`), loading and validation (:mod:`.load`, :mod:`.rules`) and the lint warnings
(:mod:`.lint`). May import only :mod:`hakeep.errors`.
"""
