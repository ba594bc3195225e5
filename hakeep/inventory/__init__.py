"""The inventory: the user's TOML, validated into frozen dataclasses (see :mod:`.load`)."""

from hakeep.inventory.load import build_inventory, load_inventory
from hakeep.inventory.model import (
    Cluster,
    Frontend,
    HAProxySettings,
    Inventory,
    LoadBalancer,
    Server,
    SSHSettings,
    Stats,
)

__all__ = [
    "Cluster",
    "Frontend",
    "HAProxySettings",
    "Inventory",
    "LoadBalancer",
    "SSHSettings",
    "Server",
    "Stats",
    "build_inventory",
    "load_inventory",
]
