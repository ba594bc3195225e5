"""Shared test data: a valid inventory as a dict (the recipe's topology), and helpers to write it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hakeep.inventory.load import load_inventory
from hakeep.inventory.model import Inventory
from tests.tomlgen import dumps

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "inventory.example.toml"

MASTERS = [("devops-master-01", "10.220.62.21"), ("devops-master-02", "10.220.62.22"),
           ("devops-master-03", "10.220.62.23")]


def base_doc() -> dict[str, Any]:
    """A valid inventory (the recipe's); each test mutates its own deep copy."""
    return copy.deepcopy({
        "cluster": {"name": "devops", "vip": "10.220.62.31/24", "virtual_router_id": 60,
                    "advert_int": 1, "auth_pass_env": "HAKEEP_VRRP_PASS"},
        "ssh": {"user": "root", "port": 22},
        "lb": [
            {"name": "loadbalance-left", "address": "10.220.62.32", "interface": "ens192", "priority": 100},
            {"name": "loadbalance-right", "address": "10.220.62.33", "interface": "ens192",
             "priority": 100},
        ],
        "frontend": [
            {"name": "kube-apiserver", "port": 6443, "check": "https",
             "servers": [{"name": n, "address": a, "port": 6443} for n, a in MASTERS]},
            {"name": "ingress-nginx-30080", "port": 30080,
             "servers": [{"name": n, "address": a, "port": 30080} for n, a in MASTERS]},
        ],
    })


def write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "inventory.toml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else dumps(doc))
    return path


def load(tmp_path: Path, doc: dict[str, Any]) -> Inventory:
    return load_inventory(write(tmp_path, doc))
