"""A whole local Localcast as real processes on loopback (demo, browser and live tests).

:class:`LocalStack` starts the control plane and N appliances (each with its
reporter, its own home and port) from a :class:`StackSpec`, and stops every
process it started when its ``with`` block ends.
"""

from localcast.devstack.spec import NodeSpec, StackSpec, topology_document
from localcast.devstack.stack import ApplianceNode, LocalStack, StackError

__all__ = [
    "ApplianceNode",
    "LocalStack",
    "NodeSpec",
    "StackError",
    "StackSpec",
    "topology_document",
]
