"""hakeep: HAProxy + Keepalived in front of a Kubernetes control plane, from one TOML inventory."""

__version__ = "0.1.0"
