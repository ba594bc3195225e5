"""Taking over a pair set up by hand (``hakeep import``): its live haproxy.cfg and keepalived.conf,
parsed with a tokenizer per format (:mod:`.keepalived_conf`, :mod:`.haproxy_cfg`), mapped onto an
inventory's values (:mod:`.mapping`, :mod:`.assemble`) and written as commented TOML
(:mod:`.toml_out`). Pure: the files' text comes from the caller (the CLI reads the hosts).

May import :mod:`hakeep.errors` and :mod:`hakeep.inventory` (its rules: names, balances).
"""
